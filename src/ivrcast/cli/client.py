"""The API client's commands: `submit` (any number of numbers, 5000 per request) and
`tasks watch`. They talk to a running server over its `/api/yunhu`, as a customer would."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ivrcast.cli.common import console, errors

UrlOption = Annotated[
    str, typer.Option(envvar="IVRCAST_URL", help="The server (its /api/yunhu is used).")
]
AppidOption = Annotated[str, typer.Option(envvar="IVRCAST_APPID", help="Your appid.")]
AccesskeyOption = Annotated[str, typer.Option(envvar="IVRCAST_ACCESSKEY", help="Your accesskey.")]


def _endpoint(url: str) -> str:
    url = url.rstrip("/")
    return url if url.endswith("/api/yunhu") else url + "/api/yunhu"


def submit(
    numbers: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="CSV of numbers.")],
    nation: Annotated[str, typer.Option(help="Nation code: in, id, ph, mx, co, tha, vn.")],
    voice: Annotated[str, typer.Option(help="Voice name (or URL with --voicetype 2).")],
    appid: AppidOption,
    accesskey: AccesskeyOption,
    url: UrlOption = "http://127.0.0.1:8080",
    voicetype: Annotated[int, typer.Option(min=1, max=2)] = 1,
    userkey: Annotated[bool, typer.Option(help="Collect a key press.")] = False,
    record: Annotated[bool, typer.Option(help="Record every answered call.")] = False,
    amd: Annotated[bool, typer.Option(help="Detect answering machines.")] = False,
    amdaction: Annotated[
        str | None, typer.Option(help="On a machine: hangup (default), play or beep.")
    ] = None,
    todayonly: Annotated[int, typer.Option(min=1, max=2)] = 1,
    waittime: Annotated[int | None, typer.Option()] = None,
    conntime: Annotated[int | None, typer.Option()] = None,
    disnumber: Annotated[str | None, typer.Option()] = None,
    chengshudu: Annotated[str | None, typer.Option()] = None,
    customuuid: Annotated[str | None, typer.Option()] = None,
    chunk_size: Annotated[int, typer.Option(min=1, max=5000)] = 5000,
    request_prefix: Annotated[
        str | None, typer.Option(help="Resume an interrupted run: the prefix it printed.")
    ] = None,
    retries: Annotated[int, typer.Option(min=0, help="Attempts of a failed HTTP request.")] = 5,
    retry_rounds: Annotated[
        int | None,
        typer.Option(help="PlayVoice `retries`: extra rounds for a number (0-5)."),
    ] = None,
    retry_interval: Annotated[
        int | None, typer.Option(help="PlayVoice `retryinterval`: minutes between rounds.")
    ] = None,
    retry_on: Annotated[
        str | None,
        typer.Option(help="PlayVoice `retryon`: outcomes retried (busy,no_answer,...)."),
    ] = None,
) -> None:
    """Submit any number of numbers, 5000 per request, and print the task ids."""
    import httpx
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from ivrcast.submit import (
        Client,
        SubmitError,
        chunks,
        count_numbers,
        new_request_prefix,
        open_numbers,
        read_numbers,
        submit_chunk,
    )

    fields = {
        "nationcode": nation,
        "voicetype": str(voicetype),
        "voicefile": voice,
        "userkey": "1" if userkey else "0",
        "todayonly": str(todayonly),
        "record": "1" if record else "0",
        "amd": "1" if amd else "0",
    }
    optional = {
        "waittime": waittime,
        "conntime": conntime,
        "disnumber": disnumber,
        "chengshudu": chengshudu,
        "customuuid": customuuid,
        "retries": retry_rounds,
        "retryinterval": retry_interval,
        "retryon": retry_on,
        "amdaction": amdaction,
    }
    fields.update({key: str(value) for key, value in optional.items() if value is not None})
    prefix = request_prefix or new_request_prefix()
    errors.print(f"request prefix {prefix} (pass --request-prefix {prefix} to resume)")
    client = Client(_endpoint(url), appid, accesskey, retries=retries)
    total = count_numbers(numbers)
    task_ids: list[str] = []
    accepted = invalid = duplicates = 0
    columns = (TextColumn("submitting"), BarColumn(), MofNCompleteColumn())
    with (
        httpx.Client(timeout=120, trust_env=False) as http,
        open_numbers(numbers) as lines,
        Progress(*columns, console=errors) as progress,
    ):
        bar = progress.add_task("numbers", total=total)
        for index, batch in enumerate(chunks(read_numbers(lines), chunk_size)):
            try:
                data = submit_chunk(client, http, batch, fields, f"{prefix}-{index}")
            except SubmitError as exc:
                errors.print(f"[red]error:[/red] request {index + 1}: {exc}", highlight=False)
                raise typer.Exit(1) from None
            # A chunk of invalid numbers only makes no task (the server's 1021).
            if "taskid" in data:
                task_ids.append(data["taskid"])
            accepted += data["accepted"]
            duplicates += data.get("duplicates", 0)
            invalid += data["invalidcount"]
            progress.advance(bar, len(batch))
    errors.print(
        f"{len(task_ids)} tasks: {accepted} numbers queued, {duplicates} duplicates, "
        f"{invalid} invalid"
    )
    for task_id in task_ids:
        console.print(task_id, highlight=False)


def tasks_watch(
    taskid: Annotated[list[str], typer.Argument(help="One or more task ids.")],
    appid: AppidOption,
    accesskey: AccesskeyOption,
    url: UrlOption = "http://127.0.0.1:8080",
    interval: Annotated[float, typer.Option(min=0.1, help="Seconds between polls.")] = 2.0,
) -> None:
    """Show live progress until every task has ended."""
    import time

    import httpx
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from ivrcast.submit import Client, SubmitError

    client = Client(_endpoint(url), appid, accesskey)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
    )
    with (
        httpx.Client(timeout=30, trust_env=False) as http,
        Progress(*columns, console=errors) as progress,
    ):
        bars = {t: progress.add_task(t[:12], total=None, detail="") for t in taskid}
        running = set(taskid)
        while running:
            for task_id in sorted(running):
                try:
                    body = client.call(http, "App.Sip_Call.TaskStatus", {"taskid": task_id})
                except SubmitError as exc:
                    errors.print(f"[red]error:[/red] {exc}", highlight=False)
                    raise typer.Exit(1) from None
                data = body.get("data") or {}
                if body.get("code") != 200 or data.get("status") == 1:
                    message = (data.get("errors") or {}).get("codemsg") or body.get("msg")
                    errors.print(f"[red]error:[/red] {task_id}: {message}", highlight=False)
                    raise typer.Exit(1)
                counts = {k: v for k, v in data["counts"].items() if v}
                detail = " ".join(f"{state} {n}" for state, n in sorted(counts.items()))
                progress.update(
                    bars[task_id], total=data["total"], completed=data["finished"], detail=detail
                )
                if data["status"] != "active" and data["finished"] == data["total"]:
                    running.discard(task_id)
            if running:
                time.sleep(interval)
    for task_id in taskid:
        console.print(f"{task_id} ended", highlight=False)


def _task_command(service: str, taskid: str, appid: str, accesskey: str, url: str) -> None:
    import httpx

    from ivrcast.submit import Client, SubmitError

    client = Client(_endpoint(url), appid, accesskey)
    try:
        with httpx.Client(timeout=30, trust_env=False) as http:
            body = client.call(http, service, {"taskid": taskid})
    except SubmitError as exc:
        errors.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None
    data = body.get("data") or {}
    if body.get("code") != 200 or data.get("status") == 1:
        message = (data.get("errors") or {}).get("codemsg") or body.get("msg")
        code = (data.get("errors") or {}).get("code") or body.get("code")
        errors.print(f"[red]error:[/red] {taskid}: {message} ({code})", highlight=False)
        raise typer.Exit(1)
    console.print(f"{taskid} {data['status']}", highlight=False)


def tasks_pause(
    taskid: Annotated[str, typer.Argument(help="The task id.")],
    appid: AppidOption,
    accesskey: AccesskeyOption,
    url: UrlOption = "http://127.0.0.1:8080",
) -> None:
    """Pause a task: no new call (retry rounds included) starts until it is resumed."""
    _task_command("App.Sip_Call.PauseTask", taskid, appid, accesskey, url)


def tasks_resume(
    taskid: Annotated[str, typer.Argument(help="The task id.")],
    appid: AppidOption,
    accesskey: AccesskeyOption,
    url: UrlOption = "http://127.0.0.1:8080",
) -> None:
    """Resume a paused task."""
    _task_command("App.Sip_Call.ResumeTask", taskid, appid, accesskey, url)

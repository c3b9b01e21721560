"""`ivrcast submit` and `ivrcast tasks watch` against a running server, over HTTP."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
from sqlalchemy import select

from ivrcast.demo_account import demo_tone
from ivrcast.store.engine import Database
from ivrcast.store.tables import tasks
from service_process import IVRCAST, RunningServer


def customer(server: RunningServer, tmp_path: Path) -> list[str]:
    assert (
        server.cli("account", "create", "--appid", "bulk", "--accesskey", "bulk-key").returncode
        == 0
    )
    voice = tmp_path / "v.wav"
    voice.write_bytes(demo_tone())
    assert server.cli("voice", "upload", "--appid", "bulk", "promo", str(voice)).returncode == 0
    return ["--url", server.url, "--appid", "bulk", "--accesskey", "bulk-key"]


def test_twenty_thousand_numbers_from_a_csv_become_four_tasks(
    api_server: RunningServer, tmp_path: Path
) -> None:
    credentials = customer(api_server, tmp_path)
    csv_file = tmp_path / "numbers.csv"
    rows = ["phone,name"] + [f"0812{i:08d},customer {i}" for i in range(20_000)]
    rows.insert(500, "0812" + "00000007,repeat")  # a duplicate within the first request
    csv_file.write_text("\n".join(rows) + "\n")
    result = api_server.cli(
        "submit", *credentials, "--nation", "id", "--voice", "promo", "--numbers", str(csv_file)
    )
    assert result.returncode == 0, result.stderr
    task_ids = result.stdout.split()
    assert len(task_ids) == 5  # 20,001 lines: four full requests and one of a single number
    assert "20000 numbers queued, 1 duplicates, 0 invalid" in result.stderr
    totals = []
    with httpx.Client() as client:
        for task_id in task_ids:
            body = client.post(
                api_server.url + "/api/yunhu",
                data={
                    "service": "App.Sip_Call.TaskStatus",
                    "appid": "bulk",
                    "accesskey": "bulk-key",
                    "taskid": task_id,
                },
            ).json()
            totals.append(body["data"]["total"])
    assert totals == [4999, 5000, 5000, 5000, 1]

    # Resuming with the same prefix finds the same tasks: nothing is queued twice.
    prefix = result.stderr.split("request prefix ")[1].split()[0]
    again = api_server.cli(
        "submit",
        *credentials,
        "--nation",
        "id",
        "--voice",
        "promo",
        "--numbers",
        str(csv_file),
        "--request-prefix",
        prefix,
    )
    assert again.stdout.split() == task_ids


def test_a_refused_submission_stops_with_the_servers_message(
    api_server: RunningServer, tmp_path: Path
) -> None:
    credentials = customer(api_server, tmp_path)
    csv_file = tmp_path / "n.csv"
    csv_file.write_text("081234567890\n")
    result = api_server.cli(
        "submit", *credentials, "--nation", "zz", "--voice", "promo", "--numbers", str(csv_file)
    )
    assert result.returncode == 1
    assert "nationcode: unknown nation code 'zz'" in result.stderr


def test_watch_follows_tasks_until_they_end(api_server: RunningServer, tmp_path: Path) -> None:
    credentials = customer(api_server, tmp_path)
    csv_file = tmp_path / "n.csv"
    csv_file.write_text("081234567890\n081234567891\n")
    task_id = api_server.cli(
        "submit", *credentials, "--nation", "id", "--voice", "promo", "--numbers", str(csv_file)
    ).stdout.strip()
    watcher = subprocess.Popen(
        [*IVRCAST, "tasks", "watch", task_id, *credentials, "--interval", "0.2"],
        env=api_server.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    httpx.post(
        api_server.url + "/api/yunhu",
        data={
            "service": "App.Sip_Call.CancelTask",
            "appid": "bulk",
            "accesskey": "bulk-key",
            "taskid": task_id,
        },
    )
    out, err = watcher.communicate(timeout=60)
    assert watcher.returncode == 0, err
    assert f"{task_id} ended" in out


def test_a_chunk_of_invalid_numbers_only_is_counted_and_the_rest_submitted(
    api_server: RunningServer, tmp_path: Path
) -> None:
    credentials = customer(api_server, tmp_path)
    csv_file = tmp_path / "n.csv"
    # Chunks of 150: the first all invalid (the server's 1021, no task; its answer lists
    # 100 of them), the second valid.
    rows = [f"1{i:03d}" for i in range(150)] + [f"0812{i:08d}" for i in range(150)]
    csv_file.write_text("\n".join(rows) + "\n")
    result = api_server.cli(
        "submit",
        *credentials,
        "--nation",
        "id",
        "--voice",
        "promo",
        "--numbers",
        str(csv_file),
        "--chunk-size",
        "150",
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.split()) == 1
    assert "1 tasks: 150 numbers queued, 0 duplicates, 150 invalid" in result.stderr


def test_submit_asks_for_recording_and_detection(api_server: RunningServer, tmp_path: Path) -> None:
    """`--record`, `--amd` and `--amdaction` reach the task; a bad action is refused with
    the server's message naming it."""
    credentials = customer(api_server, tmp_path)
    csv_file = tmp_path / "n.csv"
    csv_file.write_text("081234567890\n")
    common = [*credentials, "--nation", "id", "--voice", "promo", "--numbers", str(csv_file)]
    result = api_server.cli("submit", *common, "--record", "--amd", "--amdaction", "beep")
    assert result.returncode == 0, result.stderr
    (task_id,) = result.stdout.split()
    refused = api_server.cli("submit", *common, "--amd", "--amdaction", "shout")
    assert refused.returncode != 0
    assert "amdaction: must be hangup, play or beep" in refused.stderr
    database = Database(f"sqlite:///{Path(api_server.env['IVRCAST_DATA_DIR']) / 'ivrcast.db'}")
    try:
        with database.read() as conn:
            row = conn.execute(
                select(tasks.c.record, tasks.c.amd, tasks.c.amdaction).where(tasks.c.id == task_id)
            ).one()
    finally:
        database.dispose()
    assert tuple(row) == (True, True, "beep")

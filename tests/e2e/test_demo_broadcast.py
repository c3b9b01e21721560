"""The tour: `ivrcast serve` with its dialer and demo carrier, fed by the seed's PHP
example, really dials every number and every number ends with its magic outcome."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_server import run_example

from peers import require_executable
from service_process import start_server, stop_server


@pytest.fixture(autouse=True)
def php_installed() -> None:
    require_executable("php", "php-cli")


# Indonesian mobiles ending in each magic digit of docs/demo-carrier.md.
EXPECTED = {
    "0": ("completed", ""),
    "4": ("completed", "1"),
    "5": ("busy", ""),
    "6": ("no_answer", ""),
    "7": ("failed", ""),
    "8": ("rejected", ""),
    "9": ("completed", ""),
}


def wait_for_task(url: str, credentials: dict[str, str], task_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    with httpx.Client() as client:
        while time.monotonic() < deadline:
            data: dict[str, Any] = client.post(
                url + "/api/yunhu",
                data={"service": "App.Sip_Call.TaskStatus", "taskid": task_id, **credentials},
            ).json()["data"]
            if data["status"] == "finished":
                return data
            time.sleep(0.2)  # polling a condition (the task's state), with a deadline
    raise AssertionError(f"task {task_id} did not finish: {data}")


def test_the_php_example_reaches_the_demo_carrier_and_every_call_is_recorded(
    tmp_path: Path,
) -> None:
    config = tmp_path / "ivrcast.toml"
    config.write_text('[countries.id]\nwindow = "00:00-24:00"\n')
    server = start_server(tmp_path / "data", "--demo-account", config=config)
    try:
        demo = dict(
            line.split("=", 1)
            for line in (tmp_path / "data" / "demo-account.txt").read_text().split()
        )
        credentials = {"appid": demo["appid"], "accesskey": demo["accesskey"]}
        numbers = "，".join(f"08123456780{digit}" for digit in EXPECTED)
        fields = {
            **credentials,
            "voicetype": "1",
            "voicefile": demo["voice"],
            "destnumber": numbers,
            "disnumber": "10000",
        }
        script = run_example(tmp_path, server.url, fields, waittime=5, userkey=1)
        assert script["code"] == 200, script
        assert script["data"]["accepted"] == len(EXPECTED)
        status = wait_for_task(server.url, credentials, script["data"]["taskid"])
        assert status["finished"] == status["total"] == len(EXPECTED)
        records = httpx.post(
            server.url + "/api/yunhu",
            data={"service": "App.Sip_Cdr.GetBill", "syncflag": "3", **credentials},
        ).json()["data"]["list"]
        outcomes = {r["destnumber"][-1]: (r["status"], r["userkey"]) for r in records}
        assert outcomes == EXPECTED
        assert len({r["uuid"] for r in records}) == len(EXPECTED)
        assert all(
            r["callmethod"] == 6 and r["taskid"] == script["data"]["taskid"] for r in records
        )
    finally:
        stop_server(server)

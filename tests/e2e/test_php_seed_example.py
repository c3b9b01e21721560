"""The interface document's own PHP example, run by Debian's php-cli against the server.

Only what a customer must change is changed: the URL, the credentials and, for the
success case, the voice. Everything else is the seed's literal text, including its
invalid-looking numbers and `disnumber`.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from e2e_server import run_example

from ivrcast.demo_account import demo_tone
from service_process import RunningServer

pytestmark = pytest.mark.skipif(shutil.which("php") is None, reason="php-cli is not installed")


@pytest.fixture
def customer(api_server: RunningServer, tmp_path: Path) -> dict[str, str]:
    created = api_server.cli("account", "create", "--appid", "ACME", "--accesskey", "k3y-0f-acme")
    assert created.returncode == 0, created.stderr + created.stdout
    voice = tmp_path / "greeting.wav"
    voice.write_bytes(demo_tone())
    uploaded = api_server.cli("voice", "upload", "--appid", "ACME", "greeting", str(voice))
    assert uploaded.returncode == 0, uploaded.stderr + uploaded.stdout
    return {"appid": "ACME", "accesskey": "k3y-0f-acme"}


def test_the_example_gets_a_task_id(
    api_server: RunningServer, customer: dict[str, str], tmp_path: Path
) -> None:
    body = run_example(
        tmp_path, api_server.url, {**customer, "voicetype": "1", "voicefile": "greeting"}
    )
    assert body["code"] == 200, body
    assert body["msg"] == "successful request"
    data = body["data"]
    assert re.fullmatch(r"[0-9a-f]{32}", data["taskid"])
    assert data["desc"] == "Play command sent successfully"
    # 133, 134 and 135 are not Indonesian numbers: each item is reported, none silently lost.
    assert data["accepted"] == 0
    assert [entry["number"] for entry in data["invalid"]] == ["133", "134", "135", "135"]


def test_the_literal_voicetype_is_refused_naming_it(
    api_server: RunningServer, customer: dict[str, str], tmp_path: Path
) -> None:
    body = run_example(tmp_path, api_server.url, customer)
    assert body["code"] == 400
    assert body["msg"].startswith("voicetype: ")
    assert body["data"] == {}


def test_the_example_with_the_vendors_placeholder_credentials_is_refused(
    api_server: RunningServer, tmp_path: Path
) -> None:
    body = run_example(tmp_path, api_server.url, {"voicetype": "1"})
    assert body["code"] == 601

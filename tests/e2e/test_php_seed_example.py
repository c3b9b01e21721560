"""The interface document's own PHP example, run by Debian's php-cli against the server.

Only what a customer must change is changed: the URL, the credentials and, for the
success case, the voice. Everything else is the seed's literal text, including its
invalid-looking numbers and `disnumber`.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from e2e_server import run_example

from ivrcast.demo_account import demo_tone
from peers import require_executable
from service_process import RunningServer


@pytest.fixture(autouse=True)
def php_installed() -> None:
    require_executable("php", "php-cli")


@pytest.fixture
def customer(api_server: RunningServer, tmp_path: Path) -> dict[str, str]:
    created = api_server.cli("account", "create", "--appid", "ACME", "--accesskey", "k3y-0f-acme")
    assert created.returncode == 0, created.stderr + created.stdout
    voice = tmp_path / "greeting.wav"
    voice.write_bytes(demo_tone())
    uploaded = api_server.cli("voice", "upload", "--appid", "ACME", "greeting", str(voice))
    assert uploaded.returncode == 0, uploaded.stderr + uploaded.stdout
    return {"appid": "ACME", "accesskey": "k3y-0f-acme"}


def test_the_example_with_callable_numbers_gets_a_task_id(
    api_server: RunningServer, customer: dict[str, str], tmp_path: Path
) -> None:
    body = run_example(
        tmp_path,
        api_server.url,
        {
            **customer,
            "voicetype": "1",
            "voicefile": "greeting",
            "destnumber": "081234500001，081234500002",
        },
    )
    assert body["code"] == 200, body
    assert body["msg"] == "successful request"
    data = body["data"]
    assert re.fullmatch(r"[0-9a-f]{32}", data["taskid"])
    assert data["desc"] == "Play command sent successfully"
    assert (data["accepted"], data["invalid"], data["invalidcount"]) == (2, [], 0)


def test_the_example_s_literal_numbers_are_refused_as_illegal(
    api_server: RunningServer, customer: dict[str, str], tmp_path: Path
) -> None:
    body = run_example(
        tmp_path, api_server.url, {**customer, "voicetype": "1", "voicefile": "greeting"}
    )
    # 133, 134 and 135 are not Indonesian numbers: the vendor's 1021 (illegal number),
    # each item reported, and no task, so a client checking `code` alone is not misled
    # into thinking a broadcast went out.
    assert body["code"] == 200, body
    data = body["data"]
    assert (data["status"], data["errors"]["code"]) == (1, 1021)
    assert "taskid" not in data
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


MIGRATING_CLIENT = Path(__file__).parents[1] / "data" / "seed" / "migrating_client.php"


def test_a_client_written_for_the_vendor_finds_what_it_expects(
    api_server: RunningServer, customer: dict[str, str]
) -> None:
    """Issue 16's items 1 to 4, as a PHP client written for the vendor sees them."""
    result = subprocess.run(
        [
            "php",
            str(MIGRATING_CLIENT),
            api_server.url,
            customer["appid"],
            customer["accesskey"],
            "greeting",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    checks = seen["checks"]
    # 3. The seed's literal numbers are not answered as a success.
    assert checks["literal_is_not_a_success"], seen["literal"]
    assert seen["literal"]["data"]["errors"]["code"] == 1021
    assert seen["batch"]["data"]["accepted"] == 2
    # 2. `ret` beside `code` for the services other than PlayVoice.
    assert checks["ret_of_other_services"] == [200, 200, 200, 200]
    assert "ret" not in seen["batch"]
    # 1. and 4. The records found by the number as written, with their ids.
    assert checks["cdrs_ok"]
    assert checks["cdrs_numbers"] == ["081234500004"]
    (record_id,) = checks["cdrs_ids"]
    assert isinstance(record_id, int)
    assert record_id > 0
    pulled = {record["destnumber"]: record for record in seen["bill"]["data"]["list"]}
    assert set(pulled) == {"081234500004", "081234500005"}
    assert pulled["081234500004"]["id"] == record_id
    assert pulled["081234500004"]["e164"] == "+6281234500004"

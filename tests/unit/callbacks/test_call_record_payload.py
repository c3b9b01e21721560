"""The payload against the vendor's documented callback (shared reference) and our extras."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from ivrcast.callbacks.record import CallRecord, build_call_record

JAKARTA = ZoneInfo("Asia/Jakarta")
QUEUED = datetime(2025, 3, 1, 1, 0, tzinfo=UTC)
INVITED = datetime(2025, 3, 1, 2, 0, 0, 250_000, tzinfo=UTC)

# Field: type, from call-record-callback.md.
VENDOR_FIELDS: dict[str, type] = {
    "callmethod": int,
    "type": str,
    "starttime": str,
    "answertime": str,
    "endtime": str,
    "duration": int,
    "billsec": int,
    "hangupdirection": int,
    "hangupcause": int,
    "disnumber": str,
    "destnumber": str,
    "uuid": str,
    "userkey": str,
    "customuuid": str,
    "chengshudu": str,
    "taskid": str,
    "round": int,
    "recordurl": str,
}
BOOKKEEPING = (
    "companycode",
    "memberid",
    "userid",
    "crmid",
    "extnumber",
    "recordfilename",
    "downloadip",
)
TASK = {"id": "f" * 32, "customuuid": "order-7", "chengshudu": "客户 data"}


def call(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": 41,
        "uuid": "0b6f8f3e-6a39-4a8e-9a51-2d1e6c0d1f00",
        "status": "completed",
        "number": "+6281234567890",
        "submitted_number": "081234567890",
        "nationcode": "id",
        "round": 1,
        "trunk": "id-main",
        "disnumber": "622150001000",
        "queued_at": QUEUED,
        "invited_at": INVITED,
        "answered_at": INVITED + timedelta(seconds=7, milliseconds=500),
        "ended_at": INVITED + timedelta(seconds=29, milliseconds=100),
        "sip_code": 200,
        "sip_reason": "OK",
        "q850_cause": None,
        "hangup_cause": 10001,
        "hangup_direction": 10041,
        "keys": "12",
        "final": True,
    }
    row.update(overrides)
    return row


def test_every_vendor_field_is_present_with_its_documented_type() -> None:
    record: dict[str, object] = dict(build_call_record(call(), TASK, timezone=JAKARTA))
    for name, kind in VENDOR_FIELDS.items():
        assert type(record[name]) is kind, name
    assert all(record[name] == "" for name in BOOKKEEPING)
    # The record's id is the call's, as the pull interfaces show it.
    assert record["id"] == 41
    assert record["callmethod"] == 6
    assert record["type"] == "callout"


def test_an_answered_call() -> None:
    record = build_call_record(call(), TASK, timezone=JAKARTA)
    assert record["starttime"] == "2025-03-01 09:00:00"  # UTC+7
    assert record["answertime"] == "2025-03-01 09:00:07"
    assert record["endtime"] == "2025-03-01 09:00:29"
    assert record["duration"] == 30  # 29.1 s: a started second counts
    assert record["billsec"] == 22  # 21.6 s
    assert (record["hangupcause"], record["hangupdirection"]) == (10001, 10041)
    # As submitted; E.164 beside it.
    assert record["destnumber"] == "081234567890"
    assert record["userkey"] == "12"
    assert record["keys"] == ["1", "2"]
    assert record["customuuid"] == "order-7"
    assert record["chengshudu"] == "客户 data"
    assert record["taskid"] == TASK["id"]
    assert record["round"] == 1
    assert record["recordurl"] == ""
    assert record["status"] == "completed"
    assert record["sipcode"] == 200
    assert record["e164"] == "+6281234567890"
    assert record["starttime_iso"] == "2025-03-01T09:00:00.250+07:00"
    assert record["queuedtime_iso"] == "2025-03-01T08:00:00.000+07:00"
    assert record["endtime_iso"] == record["finishtime_iso"] == "2025-03-01T09:00:29.350+07:00"


def test_iso_times_in_utc_end_with_z() -> None:
    record = build_call_record(call(), TASK, timezone=ZoneInfo("UTC"))
    assert record["starttime"] == "2025-03-01 02:00:00"
    assert record["starttime_iso"] == "2025-03-01T02:00:00.250Z"


def test_a_call_never_answered() -> None:
    record = build_call_record(
        call(
            status="busy",
            answered_at=None,
            sip_code=486,
            sip_reason="Busy Here",
            hangup_cause=10006,
            keys="",
        ),
        TASK,
        timezone=JAKARTA,
    )
    assert record["answertime"] == ""
    assert record["answertime_iso"] is None
    assert record["billsec"] == 0
    assert record["duration"] == 30
    assert record["userkey"] == ""
    assert record["keys"] == []
    assert (record["hangupcause"], record["hangupdirection"]) == (10006, 10041)


@pytest.mark.parametrize(
    ("status", "cause"), [("canceled", 10002), ("expired", 10011), ("interrupted", 10007)]
)
def test_platform_final_states_get_their_codes(status: str, cause: int) -> None:
    dialed = status == "interrupted"
    record = build_call_record(
        call(
            status=status,
            invited_at=INVITED if dialed else None,
            answered_at=None,
            sip_code=None,
            sip_reason=None,
            hangup_cause=None,
            hangup_direction=None,
            disnumber=None,
            trunk=None,
            keys="",
        ),
        TASK,
        timezone=JAKARTA,
    )
    assert (record["hangupcause"], record["hangupdirection"]) == (cause, 10040)
    assert record["sipcode"] is None
    assert record["disnumber"] == ""
    if not dialed:
        # Never left the platform: the vendor's times keep their type and are the final
        # moment, the durations 0; the ISO extras say it was never dialed.
        assert (record["starttime"], record["endtime"]) == ("2025-03-01 09:00:29",) * 2
        assert record["answertime"] == ""
        assert (record["duration"], record["billsec"]) == (0, 0)
        assert record["starttime_iso"] is None
        assert record["endtime_iso"] is None
        assert record["finishtime_iso"] == "2025-03-01T09:00:29.350+07:00"


def test_a_row_stored_before_submitted_numbers_were_kept_reports_e164_digits() -> None:
    record = build_call_record(call(submitted_number=None), TASK, timezone=JAKARTA)
    assert record["destnumber"] == "6281234567890"


def test_the_payload_is_plain_json() -> None:
    record = build_call_record(call(), TASK, timezone=JAKARTA)
    assert json.loads(json.dumps(record, ensure_ascii=False)) == record


def documented_fields() -> set[str]:
    """The field column of the payload table in docs/callbacks.md."""
    doc = (Path(__file__).parents[3] / "docs" / "callbacks.md").read_text()
    table = doc.split("| field | type | meaning |")[1].split("\n\n")[0]
    names: set[str] = set()
    for line in table.strip().splitlines()[1:]:
        names.update(re.findall(r"`(\w+)`", line.split("|")[1]))
    return names


def test_the_payload_has_exactly_the_typed_and_documented_fields() -> None:
    record = build_call_record(call(), TASK, timezone=JAKARTA)
    assert list(record) == list(CallRecord.__annotations__)
    assert set(record) == documented_fields()

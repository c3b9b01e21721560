"""docs/api.md shows exactly the error table the code uses."""

from __future__ import annotations

from pathlib import Path

from ivrcast.api import envelope
from ivrcast.api.envelope import ERROR_TABLE, OWN_CODES_FROM, classify
from ivrcast.api.errors import NationNotAllowed, UnknownService
from ivrcast.numbers import UnknownNation
from ivrcast.store.tasks import TaskNotFound

DOC = Path(__file__).parents[3] / "docs" / "api.md"


def documented_rows() -> list[tuple[str, int, str, int, str]]:
    text = DOC.read_text()
    table = text.split("<!-- error-table:start -->")[1].split("<!-- error-table:end -->")[0]
    rows = []
    for line in table.strip().splitlines()[2:]:
        name, code, form, status, meaning = (cell.strip() for cell in line.strip("|").split("|"))
        rows.append((name.strip("`"), int(code), form, int(status), meaning))
    return rows


def test_the_documented_table_is_the_code_table() -> None:
    in_code = [
        (cls.__name__, e.code, e.form, e.http_status, e.meaning) for cls, e in ERROR_TABLE.items()
    ]
    assert documented_rows() == in_code


def test_errors_take_their_nearest_listed_class() -> None:
    assert classify(UnknownNation("xx")).code == 400
    assert classify(UnknownService("x")).code == 400
    assert classify(NationNotAllowed("ph")).code == 603
    assert classify(TaskNotFound()).code == 1024
    assert classify(KeyError("x")).code == 500


def test_own_codes_start_where_the_docs_and_the_envelope_say() -> None:
    status_codes = {e.code for e in ERROR_TABLE.values() if e.form == "status"}
    own = status_codes - set(range(1001, 1030))  # the vendor's
    assert min(own) == OWN_CODES_FROM
    assert f"ivrcast's own start at {OWN_CODES_FROM}." in " ".join(DOC.read_text().split())
    assert f"start at {OWN_CODES_FROM} " in " ".join((envelope.__doc__ or "").split())

"""Two dialer nodes on one database and one SIPp trunk: each call keeps the node that
dialed it, each node reports its share of the trunk with its heartbeat, and `/metrics`
shows both nodes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from dialer_helpers import (
    call_rows,
    count_final,
    id_numbers,
    running_dialer,
    seed_account,
    settings_for,
    start_sipp,
    submit,
)
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from ivrcast.api.metrics import render
from ivrcast.clock import SystemClock
from ivrcast.store.engine import Database
from ivrcast.store.tables import nodes
from waiting import wait_for

NUMBERS = 120


def node_reports(db: Database) -> dict[str, dict[str, Any]]:
    with db.read() as conn:
        rows = conn.execute(select(nodes.c.id, nodes.c.stats).where(nodes.c.stopped_at.is_(None)))
        return {node_id: json.loads(stats) for node_id, stats in rows if stats}


def both_report_half_the_trunk(db: Database) -> bool:
    reports = node_reports(db)
    return len(reports) == 2 and all(
        r["trunks"]["id-main"]["channels"] == 10 for r in reports.values()
    )


@pytest.mark.timeout(120)
async def test_two_nodes_share_a_trunk_and_keep_who_dialed_what(
    database: Database, database_url: str, tmp_path: Path
) -> None:
    sipp = await start_sipp(tmp_path / "sipp", "uas_dialer_answer.xml", calls=NUMBERS)
    account_id, voice_id = seed_account(database)
    settings = settings_for(
        database_url,
        tmp_path,
        trunks=[sipp.trunk("id-main", max_channels=20, max_cps=1000, callerids=["6221500"])],
        heartbeat_seconds=0.2,
    )
    async with running_dialer(settings), running_dialer(settings):
        # Both nodes beat, see each other, and report half of the trunk's 20 channels.
        await wait_for(lambda: both_report_half_the_trunk(database), "both reports", limit=20)
        task_id = submit(database, account_id, voice_id, id_numbers(NUMBERS))
        await wait_for(lambda: count_final(database, task_id) == NUMBERS, "every call", limit=60)
        await wait_for(
            lambda: sum(int(r["finished"]) for r in node_reports(database).values()) == NUMBERS,
            "the nodes to report every call ended",
            limit=10,
        )
        scrape = render(database, settings, SystemClock().now()).decode()
        reports = node_reports(database)
    await sipp.finish()
    rows = call_rows(database, task_id)
    assert {row["status"] for row in rows} == {"completed"}
    # Ended, released by its node (node_id), yet each call names the node that dialed it.
    assert all(row["node_id"] is None for row in rows)
    dialed_by = {row["dialed_by"] for row in rows}
    assert dialed_by == set(reports), dialed_by
    for node_id, report in reports.items():
        assert report["finished"] == sum(row["dialed_by"] == node_id for row in rows) > 0
    found = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(scrape)
        for sample in family.samples
    }
    assert found[("ivrcast_nodes", (("state", "live"),))] == 2
    for node_id in reports:
        labels = (("node", node_id), ("trunk", "id-main"))
        assert found[("ivrcast_dialer_node_trunk_channels", labels)] == 10
        assert found[("ivrcast_dialer_node_trunk_max_cps", labels)] == 500

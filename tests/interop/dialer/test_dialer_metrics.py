"""`/metrics`: gauges from the database and the dialer process's own counters."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
from dialer_helpers import (
    ALWAYS_OPEN,
    count_final,
    running_dialer,
    seed_account,
    settings_for,
    submit,
)
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from ivrcast.api.context import ApiContext
from ivrcast.api.metrics import router
from ivrcast.clock import SystemClock
from ivrcast.config import SecuritySettings
from ivrcast.metric_snapshots import snapshot_dir
from ivrcast.store.engine import Database
from waiting import wait_for_in_thread

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Samples:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def total(
    found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    wanted = set(labels.items())
    return sum(v for (n, lab), v in found.items() if n == name and wanted <= lab)


async def test_metrics_merge_database_gauges_and_dialer_counters(
    database: Database, database_url: str, tmp_path: Path
) -> None:
    account_id, voice_id = seed_account(database, "metered")
    submit(database, account_id, voice_id, [f"+628120000{n:02d}0" for n in range(6)])
    # Mexico's window opens six hours from now: its calls wait in the queue.
    opens = datetime.now(ZoneInfo("America/Mexico_City")) + timedelta(hours=6)
    window = f"{opens:%H}:00-{(opens + timedelta(hours=1)):%H}:00"
    settings = settings_for(
        database_url, tmp_path, countries={"id": ALWAYS_OPEN, "mx": {"window": window}}
    ).model_copy(update={"security": SecuritySettings(operator_token="scrape-token")})
    app = FastAPI()
    app.state.ctx = ApiContext(settings=settings, db=database, clock=SystemClock(), key=b"k" * 32)
    app.include_router(router)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
    async with client, running_dialer(settings):
        await wait_for_in_thread(lambda: count_final(database) == 6, "6 calls", limit=20)
        submit(database, account_id, voice_id, ["+525512345678"], nationcode="mx")

        def snapshot_counts_six() -> bool:
            path = next(snapshot_dir(tmp_path).glob("dialer-*.prom"), None)
            return (
                path is not None
                and "ivrcast_dialer_invites_total" in path.read_text()
                and (total(samples(path.read_text()), "ivrcast_dialer_calls_finished_total") == 6)
            )

        await wait_for_in_thread(snapshot_counts_six, "the dialer's snapshot", limit=10)
        response = await client.get("/metrics", headers={"authorization": "Bearer scrape-token"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = samples(response.text)
    assert total(found, "ivrcast_calls", nationcode="id", status="completed") == 6
    assert total(found, "ivrcast_queue_depth", nationcode="mx", appid="metered") == 1
    assert total(found, "ivrcast_calls", nationcode="mx", status="queued") == 1
    assert total(found, "ivrcast_dialer_invites_total", trunk="demo") == 6
    assert total(found, "ivrcast_dialer_claim_seconds_count") >= 1
    assert all(
        dict(labels).get("node") for (name, labels) in found if name.startswith("ivrcast_dialer_")
    )
    # After the dialer stopped, its snapshot is gone.
    assert not list(snapshot_dir(tmp_path).glob("dialer-*.prom"))

"""Round robin across accounts and tasks, within every limit."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

from ivrcast.config import TrunkSettings
from ivrcast.dialer.fairness import FairShare
from ivrcast.dialer.limits import TrunkState
from ivrcast.dialer.routing import Router
from ivrcast.store.transitions import DueTask

T0 = datetime(2025, 3, 10, 3, 0, tzinfo=UTC)


def task(
    task_id: str,
    account_id: int,
    queued: int,
    *,
    nation: str = "id",
    minutes: int = 0,
    max_concurrency: int = 1000,
) -> DueTask:
    return DueTask(
        id=task_id,
        account_id=account_id,
        nationcode=nation,
        voice_id=1,
        userkey=False,
        todayonly=2,
        waittime=30,
        conntime=60,
        disnumber=None,
        local_day=date(2025, 3, 10),
        created_at=T0 + timedelta(minutes=minutes),
        queued=queued,
        max_concurrency=max_concurrency,
    )


def router(*countries: str) -> Router:
    trunks = [
        TrunkState.create(
            TrunkSettings(name=f"t-{c}", countries=[c], proxy="127.0.0.1:5070", max_channels=1000)
        )
        for c in countries or ("id",)
    ]
    return Router(trunks)


def plan(
    fair: FairShare,
    tasks: list[DueTask],
    slots: int,
    *,
    active: dict[int, int] | None = None,
    routes: Router | None = None,
    open_: set[str] | None = None,
) -> list[str]:
    routes = routes or router()
    allowance = {name: slots for name in routes.trunks}
    result = fair.plan(
        tasks,
        dialable=lambda t: open_ is None or t.nationcode in open_,
        account_active=active or {},
        allowance=allowance,
        router=routes,
    )
    return [slot.task.id for slot in result]


def test_a_small_task_after_a_big_one_of_the_same_account_takes_turns() -> None:
    fair = FairShare()
    big, small = task("big", 1, 5000), task("small", 1, 10, minutes=5)
    given = plan(fair, [big, small], 20)
    assert Counter(given) == {"big": 10, "small": 10}
    assert given[:4] == ["big", "small", "big", "small"]


def test_accounts_take_turns_before_their_tasks_do() -> None:
    fair = FairShare()
    tasks = [task("a1", 1, 5000), task("a2", 1, 5000), task("b1", 2, 5000, minutes=9)]
    given = plan(fair, tasks, 12)
    assert Counter(given) == {"a1": 3, "a2": 3, "b1": 6}


def test_turns_carry_over_between_rounds() -> None:
    fair = FairShare()
    big, small = task("big", 1, 5000), task("small", 2, 5000, minutes=1)
    rounds = [plan(fair, [big, small], 1)[0] for _ in range(6)]
    assert rounds == ["big", "small", "big", "small", "big", "small"]


def test_account_max_concurrency_counts_calls_in_progress() -> None:
    fair = FairShare()
    limited = task("limited", 1, 5000, max_concurrency=5)
    other = task("other", 2, 5000)
    given = plan(fair, [limited, other], 40, active={1: 3})
    assert Counter(given) == {"limited": 2, "other": 38}
    assert plan(FairShare(), [limited], 40, active={1: 5}) == []


def test_a_task_gets_no_more_slots_than_queued_calls() -> None:
    given = plan(FairShare(), [task("few", 1, 3), task("many", 1, 100)], 50)
    assert Counter(given) == {"few": 3, "many": 47}


def test_closed_countries_and_countries_without_capacity_get_nothing() -> None:
    routes = router("id", "mx")
    tasks = [task("jakarta", 1, 100), task("mexico", 2, 100, nation="mx")]
    assert set(plan(FairShare(), tasks, 10, routes=routes, open_={"id"})) == {"jakarta"}
    allowance = {"t-id": 0, "t-mx": 4}
    slots = FairShare().plan(
        tasks, dialable=lambda t: True, account_active={}, allowance=allowance, router=routes
    )
    assert [s.task.id for s in slots] == ["mexico"] * 4
    assert allowance == {"t-id": 0, "t-mx": 0}


def test_a_nation_with_no_trunk_is_skipped() -> None:
    given = plan(FairShare(), [task("vn", 1, 10, nation="vn"), task("id", 2, 10)], 5)
    assert given == ["id"] * 5


def test_a_round_hands_out_at_most_the_claim_batch() -> None:
    routes = router()
    slots = FairShare().plan(
        [task("a", 1, 100), task("b", 2, 100)],
        dialable=lambda t: True,
        account_active={},
        allowance={"t-id": 50},
        router=routes,
        limit=7,
    )
    assert len(slots) == 7


def test_a_count_stopped_short_is_taken_further_only_as_far_as_the_round_goes() -> None:
    queues = {"few": 3, "many": 100, "other": 30}
    owners = {"few": 1, "many": 1, "other": 2}
    exact = [task(t, owners[t], n, minutes=i) for i, (t, n) in enumerate(queues.items())]
    counted_to_two = [replace(t, queued=min(t.queued, 2), more_queued=t.queued > 2) for t in exact]
    asked: list[tuple[str, int]] = []

    def recount(task_id: str, up_to: int) -> int:
        asked.append((task_id, up_to))
        return min(queues[task_id], up_to)

    def run(tasks: list[DueTask]) -> list[str]:
        slots = FairShare().plan(
            tasks,
            dialable=lambda t: True,
            account_active={},
            allowance={"t-id": 50},
            router=router(),
            limit=40,
            recount=recount,
        )
        return [slot.task.id for slot in slots]

    assert run(counted_to_two) == run(exact)
    assert Counter(run(exact)) == {"few": 3, "many": 17, "other": 20}
    # Once a task, when it has had its two slots, and no further than the round can go.
    assert sorted(task_id for task_id, _ in asked) == ["few", "many", "other"]
    assert all(up_to <= 40 for _, up_to in asked)

"""Sharing the free capacity among tasks: which queued calls to claim next.

Every free slot (a trunk channel with a pacer slot soon) goes to the account served
least recently, and within that account to its task served least recently. That is
round robin across accounts, then across an account's tasks, and it carries over from
one claim round to the next. So a 5000-number task takes turns with a 10-number task
submitted after it, of the same account or another, instead of running first.

An account gets no slot beyond its `max_concurrency` (calls in progress on every
node), a task none beyond its queued calls, and a country none outside its window.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import count

from ivrcast.dialer.limits import TrunkState
from ivrcast.dialer.routing import Router
from ivrcast.store.transitions import DueTask


@dataclass(frozen=True)
class Slot:
    task: DueTask
    trunk: TrunkState


class FairShare:
    """Round-robin state, kept across claim rounds."""

    def __init__(self) -> None:
        self._turn = count()
        self._account_served: dict[int, int] = {}
        self._task_served: dict[str, int] = {}

    def plan(
        self,
        tasks: Sequence[DueTask],
        *,
        dialable: Callable[[DueTask], bool],
        account_active: Mapping[int, int],
        allowance: dict[str, int],
        router: Router,
        limit: int | None = None,
        recount: Callable[[str, int], int] | None = None,
    ) -> list[Slot]:
        """Slots for this round (at most `limit`), in the order they were given.
        `allowance` (calls each trunk may take now) is consumed as slots are handed out.

        A task whose count stopped short (`DueTask.more_queued`) is counted again with
        `recount(task_id, up_to)` once it has had as many slots as counted, up to the most it
        could still get this round: the count is only ever as deep as the round."""
        headroom: dict[int, int] = {}
        remaining: dict[str, int] = {}
        uncounted: set[str] = set()
        by_account: dict[int, list[DueTask]] = {}
        for task in tasks:
            if not dialable(task):
                continue
            headroom[task.account_id] = task.max_concurrency - account_active.get(
                task.account_id, 0
            )
            remaining[task.id] = task.queued
            if task.more_queued:
                uncounted.add(task.id)
            by_account.setdefault(task.account_id, []).append(task)
        self._forget(tasks)
        for account_id in [a for a, room in headroom.items() if room <= 0]:
            del by_account[account_id]

        def has_trunk(trunk: TrunkState) -> bool:
            return allowance.get(trunk.name, 0) > 0

        slots: list[Slot] = []
        while by_account and (limit is None or len(slots) < limit):
            # Tasks are listed oldest first, so ties (never served) go to the oldest.
            account_id = min(by_account, key=lambda a: self._account_served.get(a, -1))
            candidates = by_account[account_id]
            slot: Slot | None = None
            for task in sorted(candidates, key=lambda t: self._task_served.get(t.id, -1)):
                trunk = router.pick(task.nationcode, has_trunk)
                if trunk is not None:
                    slot = Slot(task, trunk)
                    break
                # No capacity for this task's country this round.
                candidates.remove(task)
            if slot is None:
                del by_account[account_id]
                continue
            turn = next(self._turn)
            self._account_served[account_id] = turn
            self._task_served[slot.task.id] = turn
            allowance[slot.trunk.name] -= 1
            headroom[account_id] -= 1
            remaining[slot.task.id] -= 1
            slots.append(slot)
            if remaining[slot.task.id] <= 0 and recount and slot.task.id in uncounted:
                uncounted.discard(slot.task.id)
                room = min(sum(allowance.values()), headroom[account_id])
                if limit is not None:
                    room = min(room, limit - len(slots))
                if room > 0:
                    given = slot.task.queued
                    remaining[slot.task.id] = recount(slot.task.id, given + room) - given
            if remaining[slot.task.id] <= 0:
                candidates.remove(slot.task)
            if headroom[account_id] <= 0 or not candidates:
                del by_account[account_id]
        return slots

    def _forget(self, tasks: Sequence[DueTask]) -> None:
        """Drop the turns of tasks that are no longer due, so the state stays small."""
        due = {task.id for task in tasks}
        for task_id in [t for t in self._task_served if t not in due]:
            del self._task_served[task_id]

"""The transfer worker's wake-up filter: a burst of events costs one check, and only
keys with work become jobs; a failing check never loses a wake-up."""

import asyncio
import uuid

from api.nfts.runtime.scheduler import Scheduler, WakeFilter


def run_filter(find_results: list[object], keys: list[uuid.UUID]) -> tuple[list[list[uuid.UUID]],
                                                                           list[uuid.UUID]]:
    """Submit ``keys`` in one burst; ``find`` answers from ``find_results`` in turn (a
    list of due keys, or an exception to raise). Returns (checks asked, keys run)."""
    asked: list[list[uuid.UUID]] = []
    ran: list[uuid.UUID] = []

    async def find(batch: list[uuid.UUID]) -> list[uuid.UUID]:
        asked.append(batch)
        await asyncio.sleep(0)
        answer = find_results[len(asked) - 1]
        if isinstance(answer, Exception):
            raise answer
        assert isinstance(answer, list)
        return [k for k in batch if k in answer]

    async def job(key: uuid.UUID) -> None:
        ran.append(key)

    async def main() -> None:
        scheduler = Scheduler(job, concurrency=4)
        wakes = WakeFilter(scheduler, find, batch=3)
        for key in keys:
            wakes.submit(key)
        await wakes.settle()  # what shutdown does: the check finishes, then jobs drain
        await scheduler.drain(1.0)

    asyncio.run(main())
    return asked, ran


def test_a_burst_is_checked_in_batches_and_only_due_keys_run() -> None:
    keys = [uuid.uuid4() for _ in range(5)]
    due = [keys[1], keys[4]]
    asked, ran = run_filter([due, due], [*keys, keys[0]])  # a duplicate wake-up too
    assert asked == [keys[:3], keys[3:]]
    assert sorted(ran) == sorted(due)


def test_a_failed_check_submits_every_key() -> None:
    keys = [uuid.uuid4() for _ in range(2)]
    asked, ran = run_filter([ConnectionError("postgres restarting")], keys)
    assert asked == [keys]
    assert sorted(ran) == sorted(keys)

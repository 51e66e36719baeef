"""What a backfill of the gold partitions may cover, and how its run is tagged.

Shared by ``ece warehouse backfill`` and the tests. A range is refused when it is
reversed, reaches into the future (today's partition is the last one), starts
before the first partition, or spans more than two years (730 days): a typo like
``--from 2020-01-01`` should not start a week of rebuilding.
"""

from datetime import date

from orchestration.assets.gold_partitions import GOLD_START

MAX_DAYS = 730
# Dagster's tags for a run over a partition range (one run, single-run backfill policy)
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


class BadRange(ValueError):
    """A backfill range the CLI refuses (exit 2 with this message)."""


def check_range(start: date, end: date, today: date) -> int:
    """The number of days in ``start`` .. ``end``, or :class:`BadRange` saying why not."""
    if end < start:
        raise BadRange(f"reversed range: --to {end} is before --from {start}")
    if end > today:
        raise BadRange(f"range in the future: --to {end} is after today ({today}, UTC); "
                       "the last partition is today's")
    count = (end - start).days + 1
    if count > MAX_DAYS:
        raise BadRange(f"range over two years: {count} days from {start} to {end} "
                       f"(at most {MAX_DAYS}); split it into several backfills")
    if start < GOLD_START:
        raise BadRange(f"--from {start} is before the first partition ({GOLD_START})")
    return count


def range_tags(start: date, end: date) -> dict[str, str]:
    return {RANGE_START_TAG: start.isoformat(), RANGE_END_TAG: end.isoformat()}

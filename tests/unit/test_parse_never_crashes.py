"""Every stream parser turns a message of any shape into a result or a MalformedEvent.

A parse step that raised anything else would fail its Flink job, which restarts from
the checkpoint and reads the same message again: a restart loop instead of one DLQ
record. Two layers keep that from happening, and each is tested here:

- the parsers themselves check every field they read: Hypothesis builds Debezium-like
  envelopes whose fields have the wrong types (lists for objects, strings for numbers,
  missing keys) and plain garbage, and feeds them to the undecorated parsers;
- :func:`malformed_on_shape_errors`, on every parser, turns a shape error a future
  change lets through into a MalformedEvent (a DLQ record) all the same.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ece.contracts.change_event import MalformedEvent, malformed_on_shape_errors
from streaming.jobs import card_cache, cdc_rows, chain_reconciliation, market_data, market_events

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                    st.text(max_size=12))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8)
TABLES = sorted(cdc_rows.COLUMNS)


@st.composite
def messages(draw: st.DrawFn) -> str:
    """A JSON text: garbage, or an envelope of a real table with mistyped fields."""
    if draw(st.booleans()):
        return json.dumps(draw(VALUES))
    table = draw(st.sampled_from(TABLES + ["cards", "nfts", "card_valuations"]))
    columns = list(cdc_rows.COLUMNS.get(table, {})) + ["id", "version", "owner_id"]

    def image() -> Any:
        return draw(st.one_of(VALUES, st.fixed_dictionaries(
            {}, optional={c: VALUES for c in columns})))

    envelope: dict[str, Any] = {
        "op": draw(st.sampled_from(["c", "u", "r", "d", "x", 1])),
        "before": image(), "after": image(),
        "source": draw(st.one_of(VALUES, st.fixed_dictionaries(
            {"table": st.just(table)}, optional={"ts_ms": VALUES, "lsn": VALUES})))}
    for key in draw(st.lists(st.sampled_from(sorted(envelope)), max_size=2)):
        envelope.pop(key, None)
    return json.dumps(envelope)


def _parsers() -> list[tuple[str, Any]]:
    """The parsers without their safety net (``__wrapped__``), so their own checks count."""
    parse_cdc, parse_rows = market_events.parse_cdc.__wrapped__, cdc_rows.parse.__wrapped__
    parsers: list[tuple[str, Any]] = [
        ("card_cache", lambda raw: card_cache.parse_change.__wrapped__(raw, 60)),
        ("chain_reconciliation", chain_reconciliation.parse_change.__wrapped__),
        ("market_activity", market_events.parse_activity.__wrapped__),
        ("market_data", lambda raw: market_data.parse_input.__wrapped__(
            raw, "ece.market.activity", "ece")),
    ]
    for table in TABLES:
        parsers.append((f"cdc_rows[{table}]", lambda raw, t=table: parse_rows(t, raw)))
    for table in market_data.CDC_TABLES:
        parsers.append((f"market_events[{table}]", lambda raw, t=table: parse_cdc(t, raw)))
    return parsers


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=messages())
def test_every_parser_reports_a_bad_message_as_malformed(raw: str) -> None:
    for name, parse in _parsers():
        try:
            parse(raw)
        except MalformedEvent:
            pass
        except Exception as exc:  # the failure this test exists to catch
            raise AssertionError(f"{name} raised {type(exc).__name__} on {raw!r}") from exc


@pytest.mark.parametrize("error", [KeyError("after"), TypeError("list indices"),
                                   AttributeError("no get"), IndexError("out of range")])
def test_the_safety_net_turns_a_shape_error_into_a_dlq_record(error: Exception) -> None:
    @malformed_on_shape_errors
    def careless(raw: str) -> None:
        raise error

    with pytest.raises(MalformedEvent, match=type(error).__name__):
        careless("{}")


def test_the_safety_net_lets_other_failures_through() -> None:
    """A broken connection is not the message's fault: the job must fail and retry."""

    @malformed_on_shape_errors
    def offline(raw: str) -> None:
        raise ConnectionError("redis is down")

    with pytest.raises(ConnectionError):
        offline("{}")

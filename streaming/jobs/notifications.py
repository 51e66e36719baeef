"""Pipeline ``notifications``: who must hear about what, to ``ece.notifications`` (key user_id).

Inputs and why they come the way they do:

- the activity events and the auction / card_history changes come from
  :func:`streaming.jobs.market_activity.activity_streams`, the in-job stream of
  the card-keyed activity step, each with the card's name (for the titles) and,
  per card, in the order that step saw them. Re-reading ``ece.market.activity``
  would add a Kafka round trip to the commit -> socket latency and lose the name;
- ``watchlists`` (keyed by card, beside the auctions: :class:`CardNotifier`),
  ``price_alerts`` (broadcast state: an alert may match any card, by set or
  rarity, so every instance needs all of them: :class:`AlertMatcher`) and
  ``trade_offers`` (no card, no state: :class:`OfferNotifier`) are read through
  the shared checked sources (:mod:`streaming.jobs.realtime_sources`).

No database query per event: everything a rule needs is in state. The rules
themselves are :mod:`streaming.jobs.notification_rules`; ids are deterministic,
so a replay repeats exactly the same notifications, which the delivery worker
drops as already stored.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from ece.contracts.topics import notifications_topic
from streaming.jobs import market_activity, realtime_sources
from streaming.jobs import notification_rules as rules
from streaming.jobs.cdc_rows import parse, to_ms
from streaming.jobs.runtime import JobContext, ensure_topics

NAME = "notifications"
TABLES = ("trade_offers", "watchlists", "price_alerts")


def _rows(notes: list[dict[str, Any]]) -> Iterator[Any]:
    from pyflink.common import Row

    for note in notes:
        yield Row(k=note["user_id"], v=rules.dumps(note))


def _by_card(source: Any) -> Any:
    """Watchers and auctions per card: watched_card_listed, outbid, won/ended, ending soon."""
    from pyflink.common import Types
    from pyflink.datastream import KeyedProcessFunction, RuntimeContext
    from pyflink.datastream.state import MapStateDescriptor, ValueStateDescriptor

    from streaming.jobs.dlq import keyed_type

    class CardNotifier(KeyedProcessFunction):  # type: ignore[misc]
        def open(self, runtime_context: RuntimeContext) -> None:
            self.watchers = runtime_context.get_map_state(
                MapStateDescriptor("watchers", Types.STRING(), Types.LONG()))
            self.auctions = runtime_context.get_map_state(
                MapStateDescriptor("auctions", Types.STRING(), Types.STRING()))
            self.name = runtime_context.get_state(ValueStateDescriptor("name", Types.STRING()))

        def process_element(self, value: Any, ctx: Any) -> Iterator[Any]:
            card_id, table, raw, name = value[0], value[1], value[2], value[3]
            if name is not None:
                self.name.update(name)
            if table == "activity":
                event = json.loads(raw)
                watchers = (dict(self.watchers.items())
                            if event["type"] in ("listing_created", "auction_started") else {})
                yield from _rows(rules.from_activity(event, name, watchers))
                return
            change = parse(table, raw)
            if change is None:
                return
            if table == "watchlists":
                if change.op == "d":
                    self.watchers.remove(change.row["user_id"])
                else:
                    self.watchers.put(change.row["user_id"], to_ms(change.row["created_at"]))
            elif table == "card_history":
                yield from _rows(rules.from_card_history(change, name))
            elif table == "auctions":
                yield from _rows(rules.from_auction(change, name))
                yield from self._track(ctx, card_id, change)

        def _track(self, ctx: Any, card_id: str, change: Any) -> Iterator[Any]:
            auction_id = change.row["id"]
            old_text = self.auctions.get(auction_id)
            old = rules.AuctionState.loads(old_text) if old_text else None
            state = rules.track_auction(old, change)
            if state is None:
                if old is not None:
                    self.auctions.remove(auction_id)
                return
            now = ctx.timer_service().current_processing_time()
            if rules.ending_soon_due(state, now):
                yield from self._warn(card_id, auction_id, state)
            elif state.notified_ends_ms != state.ends_ms and state.due_ms > now:
                ctx.timer_service().register_processing_time_timer(state.due_ms)
            self.auctions.put(auction_id, state.dumps())

        def _warn(self, card_id: str, auction_id: str,
                  state: rules.AuctionState) -> Iterator[Any]:
            watchers = list(self.watchers.keys())
            yield from _rows(rules.ending_soon(card_id, auction_id, state, watchers,
                                               self.name.value()))
            state.notified_ends_ms = state.ends_ms

        def on_timer(self, timestamp: int, ctx: Any) -> Iterator[Any]:
            now = ctx.timer_service().current_processing_time()
            card_id = ctx.get_current_key()
            for auction_id, text in list(self.auctions.items()):
                state = rules.AuctionState.loads(text)
                if rules.ending_soon_due(state, max(now, timestamp)):
                    yield from self._warn(card_id, auction_id, state)
                    self.auctions.put(auction_id, state.dumps())

    return (source.key_by(lambda row: row[0], key_type=Types.STRING())
            .process(CardNotifier(), output_type=keyed_type())
            .uid(f"{NAME}-by-card").name(f"{NAME}: watchers + auctions"))


def _broadcast_values(state: Any) -> list[str]:
    """The values of a read-only broadcast state.

    In thread mode PyFlink 2.0 maps ``values()`` (and ``items()``) to Java methods the
    read-only broadcast state does not have; its ``immutableEntries()`` is what exists.
    """
    try:
        return list(state.values())
    except AttributeError:
        return [state._v_converter.to_internal(entry.getValue())
                for entry in state._state.immutableEntries()]


def _price_alerts(listings: Any, alerts: Any) -> Any:
    """New listings against every price alert (broadcast state, key = alert id)."""
    from pyflink.common import Types
    from pyflink.datastream import BroadcastProcessFunction
    from pyflink.datastream.state import MapStateDescriptor

    from streaming.jobs.dlq import keyed_type

    def descriptor() -> Any:
        # Built anew where used: one that went through broadcast() holds a Java object,
        # which cannot be pickled into the function. Broadcast state is found by name.
        return MapStateDescriptor("price_alerts", Types.STRING(), Types.STRING())

    class AlertMatcher(BroadcastProcessFunction):  # type: ignore[misc]
        def open(self, runtime_context: Any) -> None:
            self.descriptor = descriptor()

        def process_element(self, value: Any, ctx: Any) -> Iterator[Any]:
            if value[1] != "activity":
                return
            event = json.loads(value[2])
            if event["type"] != "listing_created":
                return
            state = ctx.get_broadcast_state(self.descriptor)
            known = [json.loads(text) for text in _broadcast_values(state)]
            yield from _rows(rules.price_alerts(event, value[3], known))

        def process_broadcast_element(self, value: Any, ctx: Any) -> None:
            change = parse("price_alerts", value[2])
            if change is None:
                return
            state = ctx.get_broadcast_state(self.descriptor)
            alert_id = change.row["id"]
            if change.op == "d":
                if state.contains(alert_id):
                    state.remove(alert_id)
            else:
                state.put(alert_id, json.dumps(rules.alert_record(change)))

    return (listings.connect(alerts.broadcast(descriptor()))
            .process(AlertMatcher(), output_type=keyed_type())
            .uid(f"{NAME}-price-alerts").name(f"{NAME}: price alerts"))


def _trade_offers(offers: Any) -> Any:
    from pyflink.datastream import ProcessFunction

    from streaming.jobs.dlq import keyed_type

    class OfferNotifier(ProcessFunction):  # type: ignore[misc]
        def process_element(self, value: Any, _ctx: Any) -> Iterator[Any]:
            change = parse("trade_offers", value[2])
            if change is not None:
                yield from _rows(rules.from_trade_offer(change))

    return (offers.process(OfferNotifier(), output_type=keyed_type())
            .uid(f"{NAME}-trade-offers").name(f"{NAME}: trade offers"))


def build(ctx: JobContext) -> None:
    """activity + auctions/card_history (shared) + watchlists, alerts, offers -> notifications."""
    topic = notifications_topic(ctx.settings.topic_prefix)
    ensure_topics(ctx.settings, [topic])
    enriched = market_activity.activity_streams(ctx).enriched
    parsed = realtime_sources.parsed_streams(ctx, NAME, TABLES)
    by_card = _by_card(enriched.union(parsed["watchlists"]))
    alerts = _price_alerts(enriched, parsed["price_alerts"])
    offers = _trade_offers(parsed["trade_offers"])
    ctx.keyed_sink(by_card.union(alerts, offers), topic, NAME)

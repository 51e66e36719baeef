"""The delivery store's pure rules: what is a valid notification, which repeats are
replays and which are corrupt, and how seqs continue per user."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from api.notifications.incoming import InvalidNotification, first_of_each, number, parse
from api.notifications.store import StoredNotification, last_seq_per_user
from ece.contracts.realtime import notification_id

USER = str(uuid.uuid4())


def value(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "id": notification_id("e1", "outbid", USER), "user_id": USER, "kind": "outbid",
        "payload": {"title": "Outbid", "auction_id": str(uuid.uuid4())},
        "source_event_id": "e1", "created_at": "2026-12-01T11:00:00.123Z",
    }
    base.update(changes)
    return base


def test_a_contract_value_parses_with_its_utc_time() -> None:
    item = parse(value())
    assert item.user_id == uuid.UUID(USER) and item.kind == "outbid"
    assert item.created_at == datetime(2026, 12, 1, 11, 0, 0, 123000, tzinfo=UTC)
    assert item.natural_key == (uuid.UUID(USER), "e1", "outbid")


@pytest.mark.parametrize(("changes", "reason"), [
    ({"kind": "new_listing"}, "unknown kind"),
    ({"kind": None}, "unknown kind"),
    ({"user_id": "nobody"}, "user_id is not a UUID"),
    ({"user_id": 7}, "user_id must be a UUID string"),
    ({"id": None}, "id must be a UUID string"),
    ({"source_event_id": ""}, "source_event_id"),
    ({"source_event_id": "x" * 201}, "source_event_id"),
    ({"payload": ["title"]}, "payload must be a JSON object"),
    ({"payload": {"title": "a\u0000b"}}, "NUL"),
    ({"created_at": "yesterday"}, "created_at is not ISO-8601"),
])
def test_invalid_values_are_refused_with_a_reason(changes: dict[str, object],
                                                  reason: str) -> None:
    with pytest.raises(InvalidNotification, match=reason):
        parse(value(**changes))


def test_not_an_object_is_refused() -> None:
    with pytest.raises(InvalidNotification, match="not a JSON object"):
        parse(["outbid"])


def test_a_missing_time_means_now() -> None:
    before = datetime.now(UTC)
    assert parse(value(created_at=None)).created_at >= before


def test_repeats_in_a_batch_are_replays_but_a_reused_id_is_corrupt() -> None:
    a = parse(value())
    replay = parse(value(payload={"title": "again"}))  # same natural key: a replay
    other_kind = parse(value(kind="auction_won", id=notification_id("e1", "auction_won", USER)))
    reused_id = parse(value(source_event_id="e2"))  # same id, another key
    kept, rejected = first_of_each(enumerate([a, replay, other_kind, reused_id]))
    assert [i for i, _ in kept] == [0, 2]
    assert [i for i, _ in rejected] == [3]


def test_seqs_continue_per_user_in_input_order() -> None:
    u1, u2 = uuid.uuid4(), uuid.uuid4()

    def item(user: uuid.UUID, source: str) -> object:
        return parse(value(user_id=str(user), source_event_id=source,
                           id=notification_id(source, "outbid", str(user))))

    items = [item(u1, "a"), item(u2, "b"), item(u1, "c"), item(u2, "d"), item(u1, "e")]
    last = {u1: 7}
    assert number(items, last) == [8, 1, 9, 2, 10]  # type: ignore[arg-type]
    assert last == {u1: 10, u2: 2}


def test_the_doorbell_announces_each_users_highest_seq() -> None:
    u1, u2 = uuid.uuid4(), uuid.uuid4()
    now = datetime.now(UTC)
    rows = [StoredNotification(uuid.uuid4(), u, s, "outbid", {}, now, False)
            for u, s in [(u1, 3), (u2, 1), (u1, 4)]]
    assert last_seq_per_user(rows) == {u1: 4, u2: 1}

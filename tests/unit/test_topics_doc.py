"""docs/topics.md is generated from the topic list and the JSON Schemas, and kept fresh."""

from ece.contracts.topics import CAPTURED_TABLES, cdc_topic
from streaming.topics import docs


def test_topics_doc_is_up_to_date() -> None:
    assert docs.DOC_PATH.exists(), f"docs/topics.md missing: run `{docs.COMMAND}`"
    assert docs.DOC_PATH.read_text() == docs.render(), (
        f"docs/topics.md is stale: run `{docs.COMMAND}` and commit the result"
    )


def test_topics_doc_names_every_topic() -> None:
    text = docs.render()
    for table in CAPTURED_TABLES:
        assert f"### `{cdc_topic(table)}`" in text
    derived = docs.derived_topics()
    assert {"ece.dlq", "ece.chain.reconciliation"} <= {name for name, _ in derived}
    for name, _ in derived:
        assert f"| `{name}` |" in text


def test_excluded_columns_are_not_documented_as_fields() -> None:
    text = docs.render()
    assert "| `password_hash` |" not in text

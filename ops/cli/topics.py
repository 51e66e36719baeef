"""`ece topics`: see the event stream the way a real-time consumer does."""

from __future__ import annotations

import json
import uuid

import typer
from rich.console import Console
from rich.table import Table

from ece.settings import get_settings

topics_app = typer.Typer(help="List and follow the Kafka topics.", no_args_is_help=True)


@topics_app.command("list")
def list_topics() -> None:
    """Every topic on the broker with its partition count, and the broker's epoch."""
    from ece import kafka

    settings = get_settings()
    meta = kafka.admin(settings).list_topics(timeout=10)
    table = Table(title=f"topics on {settings.kafka_bootstrap} (cluster {kafka.epoch_of(meta)})")
    table.add_column("topic")
    table.add_column("partitions", justify="right")
    for name in sorted(meta.topics):
        table.add_row(name, str(len(meta.topics[name].partitions)))
    Console().print(table)


@topics_app.command()
def tail(
    topic: str = typer.Argument(..., help="e.g. ece.public.cards"),
    from_beginning: bool = typer.Option(
        True,
        "--from-beginning/--new-only",
        help="replay the topic (default: the local broker reports a wrong end offset)",
    ),
    limit: int = typer.Option(0, help="stop after this many messages (0 = follow forever)"),
) -> None:
    """Print each message as one JSON line: key, value (null for tombstones), offset."""
    from confluent_kafka import Consumer

    from ece.kafka import consumer_config

    settings = get_settings()
    consumer = Consumer(consumer_config(
        settings,
        f"ece-tail-{uuid.uuid4().hex[:8]}",  # never steals a real group's offsets
        auto_commit=False,
        offset_reset="earliest" if from_beginning else "latest",
    ))
    consumer.subscribe([topic])
    seen = 0
    try:
        while not limit or seen < limit:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            if msg.error():
                typer.echo(f"error: {msg.error()}", err=True)
                continue
            value = msg.value()
            typer.echo(json.dumps({
                "partition": msg.partition(),
                "offset": msg.offset(),
                "key": _decode(msg.key()),
                "value": _decode(value) if value is not None else None,
            }))
            seen += 1
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()


def _decode(raw: bytes | None) -> object:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")

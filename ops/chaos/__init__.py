"""``ece chaos``: kill -9 each long-running part under ``ece demo`` load, then check it all.

The point is to prove, on a running ``ece up``, that a part killed mid-traffic comes
back by itself (the supervisor restarts it, its dependents reconnect) and that
nothing was lost or doubled: the same comparisons as ``ece check``, the lake
against what the REST API acknowledged, and ``ece demo``'s own invariants.

Modules: ``plan`` (which parts, in which order, from the supervisor's state file),
``kill`` (SIGKILL to a part's process group), ``heal`` (bounded wait until the state
file and the parts' health checks say healthy again), ``load`` (``ece demo``
traffic in a background thread), ``verify`` (lake refresh, ``ece check``, the lake
against REST counts, the invariants), ``report`` (the table). The command is
``ops.cli.chaos``; docs/chaos.md says how to read its output.
"""

"""The local stack: one module per part, started in order by the supervisor.

The same code starts the platform for ``make up`` (fixed ports, ``data/``) and for
the test session (free ports, a temporary data folder), so tests exercise
exactly what developers run.
"""

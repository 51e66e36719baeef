"""structlog configuration: JSON lines when stderr is not a terminal, readable otherwise.

A redaction processor runs last-but-one so no event can carry a password, token or
secret into the logs, whatever a caller passes.
"""

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

SENSITIVE = re.compile(r"pass(word)?|secret|token|authorization|cookie|api[_-]?key|kek", re.I)


def redact(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event):
        if SENSITIVE.search(key):
            event[key] = "[redacted]"
    return event


def configure_logging(level: int = logging.INFO) -> None:
    renderer: Any = (
        structlog.dev.ConsoleRenderer()
        if sys.stderr.isatty()
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )

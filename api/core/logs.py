"""API logging: the platform's shared setup (``ece.log``) plus secret redaction.

Every ECE process logs the same way (JSON lines when stderr is not a TTY); the API
adds one processor so no event can carry a password, token or secret into the
logs, whatever a caller passes as a keyword.
"""

import logging
import re
from collections.abc import MutableMapping
from typing import Any

import structlog

from ece.log import configure

SENSITIVE = re.compile(r"pass(word)?|secret|token|authorization|cookie|api[_-]?key|kek", re.I)


def redact(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event):
        if SENSITIVE.search(key):
            event[key] = "[redacted]"
    return event


def configure_logging(level: int | str = logging.INFO) -> None:
    configure(logging.getLevelName(level) if isinstance(level, int) else level)
    processors = list(structlog.get_config()["processors"])
    if redact not in processors:
        processors.insert(len(processors) - 1, redact)  # before the final renderer hand-off
        structlog.configure(processors=processors)

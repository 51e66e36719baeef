"""A terse progress logger for ``ece warehouse refresh``.

Dagster's console logger prefixes every line with the job, run id and step and
prints each engine event; at a terminal the operator wants our progress lines and
failures only. Runs in the UI keep the full event log either way (that lives in
the instance, not in loggers).
"""

import logging
import sys
from typing import Any

from dagster import Field, InitLoggerContext, logger

_EVENTS_SHOWN = {"STEP_FAILURE", "RUN_FAILURE", "ASSET_CHECK_EVALUATION"}


class _ProgressHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        meta: dict[str, Any] = getattr(record, "dagster_meta", {}) or {}
        event = meta.get("dagster_event")
        step = meta.get("step_key") or "run"
        if event is not None:
            kind = event.event_type_value
            if kind not in _EVENTS_SHOWN:
                return
            if kind == "ASSET_CHECK_EVALUATION":
                return  # the checks log their own outcome lines
            text = f"{kind.lower().replace('_', ' ')}: {meta.get('orig_message', '')}"
            if event.event_specific_data is not None and \
                    getattr(event.event_specific_data, "error", None) is not None:
                text += "\n" + event.event_specific_data.error.to_string()
        else:
            text = str(meta.get("orig_message", record.getMessage()))
        self.stream().write(f"[{step}] {text}\n")
        self.stream().flush()

    @staticmethod
    def stream() -> Any:
        return sys.stderr


@logger(config_schema={"log_level": Field(str, is_required=False, default_value="INFO")},
        description="Our progress lines and failures only (used by `ece warehouse refresh`).")
def progress_logger(init_context: InitLoggerContext) -> logging.Logger:
    log = logging.getLogger("ece.warehouse.refresh")
    log.setLevel(init_context.logger_config["log_level"])
    log.propagate = False
    log.handlers = [_ProgressHandler()]
    return log

"""Structured logging to stderr: one JSON object per line (``ts``, ``level``, ``logger``, ``msg``, extras).

Level from ``--log-level`` or ``ASRPRO_LOG_LEVEL`` (debug, info, warning, error; default info).
Tracebacks go here, never on the wire.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

import msgspec

_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}
_encoder = msgspec.json.Encoder(enc_hook=repr)


class JsonLineFormatter(logging.Formatter):
    """Formats a record as one JSON line; ``extra={...}`` fields become top-level keys."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return _encoder.encode(entry).decode("utf-8", "replace")


def configure_logging(level: str | None = None) -> None:
    """Send every logger's output to stderr as JSON lines at ``level``."""
    name = (level or os.environ.get("ASRPRO_LOG_LEVEL") or "info").upper()
    os.environ["ASRPRO_LOG_LEVEL"] = name.lower()  # engine host processes inherit it
    handler = logging.StreamHandler(sys.__stderr__)
    handler.setFormatter(JsonLineFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, name, logging.INFO))
    logging.captureWarnings(True)

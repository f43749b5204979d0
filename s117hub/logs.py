"""Structured logs that carry ids, never NHS numbers or names.

Callers log ids only; the redacting filter is the safety net for anything that slips through
(an exception message quoting a payload, a library logging a URL).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

import hl7.containers
import hl7.util

from register_core.domain import nhs_number

# SQLAlchemy's StatementError text quotes the statement's parameters (a name, free text, an
# NHS number) on one line "[parameters: …]" (a repr, so never a raw line break); PostgreSQL's
# DETAIL line may quote a row's values ("Key (x)=(…) already exists").
_SQL_PARAMETERS = re.compile(r"\[parameters: [^\n]*")
_DB_DETAIL = re.compile(r"^(DETAIL:)[^\n]*", re.MULTILINE)


def redact(text: str) -> str:
    text = _DB_DETAIL.sub(r"\1 [redacted]", _SQL_PARAMETERS.sub("[parameters: redacted]", text))
    return nhs_number.redact(text, "[nhs-number]")


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in ("person_id", "message_id", "source", "delivery_id", "exception_id"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_text:
            entry["exc"] = record.exc_text
        return json.dumps(entry)


def configure_logging(level: str = "INFO", as_json: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter() if as_json else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # python-hl7 logs a field it cannot unescape with the field's text (a name, an NHS
    # number) at ERROR; the mapping keeps the raw text instead, so that record says nothing
    # an operator needs and would put personal data in the log. (Its loggers are named by
    # file path, not module.)
    for module in (hl7.util, hl7.containers):
        logging.getLogger(module.__file__).setLevel(logging.CRITICAL)

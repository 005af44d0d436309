"""Structured logs: every line one JSON object (or a readable console line), through structlog.

structlog renders everything: its own loggers (the access line) and the standard library's
(Shelfkeeper's modules, uvicorn, asyncpg, alembic), which reach it through
`structlog.stdlib.ProcessorFormatter` on the root handler. Every line carries `timestamp`
(RFC 3339, UTC), `level`, `logger` and `event`, plus the fields bound to the request being
served (`request_id`, `tenant`, `actor`; see `kit.context`).

What is never logged: request or response bodies, headers, query strings, and so no
personal data or credentials. `redact` is the backstop for a mistake: it blanks fields
whose names suggest secrets or personal data and scrubs e-mail addresses, bearer tokens,
JWTs, API keys, webhook secrets and URL passwords from every text, tracebacks included.
"""

from __future__ import annotations

import logging
import logging.config
import re
import sys
from collections.abc import Mapping
from typing import Any, Literal

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

LogFormat = Literal["json", "console"]

REDACTED = "[REDACTED]"

SENSITIVE_KEY = re.compile(
    r"authori[sz]ation|cookie|passw|secret|token|api[-_]?key|credential|e-?mail|phone"
    r"|address|customer|body|headers?$|query|^name$|^key$",
    re.IGNORECASE,
)
"""Field names whose values are never logged, whatever they hold."""
STRUCTURAL_KEYS = frozenset({"event", "level", "logger", "timestamp", "exception"})
"""Fields that are scrubbed for secrets like any text, but never blanked by name."""

SENSITIVE_TEXT: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)\bbearer\s+[^\s,;\"']+"), "Bearer " + REDACTED),
    (re.compile(r"\beyJ[\w-]+\.[\w-]+\.[\w-]*"), REDACTED),  # a JWT
    (re.compile(r"\bsk_[a-z0-9-]+_[\w-]+"), REDACTED),  # a tenant API key
    (re.compile(r"\bwhsec_[\w+/=-]+"), REDACTED),  # a webhook signing secret
    (re.compile(r"(?i)[\w.+-]+(?:@|%40)[\w-]+(?:\.[\w-]+)+"), REDACTED),  # an e-mail address
    (re.compile(r"://[^/\s:@]*:[^/\s@]+@"), "://" + REDACTED + "@"),  # a URL's password
)


def scrub(text: str) -> str:
    """`text` without anything `SENSITIVE_TEXT` recognises."""
    for pattern, replacement in SENSITIVE_TEXT:
        text = pattern.sub(replacement, text)
    return text


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, Mapping):
        return {
            key: REDACTED if SENSITIVE_KEY.search(str(key)) else _redacted(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [_redacted(item) for item in value]
    return value


def redact(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """A structlog processor: the backstop against personal data and secrets in logs."""
    for key, value in list(event_dict.items()):
        if key not in STRUCTURAL_KEYS and SENSITIVE_KEY.search(key):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _redacted(value)
    return event_dict


SHARED_PROCESSORS: list[Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]
"""What every line gets, from structlog or from the standard library."""


def configure_structlog() -> None:
    """Send structlog's loggers through the standard library's handlers (idempotent)."""
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *SHARED_PROCESSORS,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: a logger used before `configure_structlog` would otherwise keep
        # structlog's default configuration for good.
        cache_logger_on_first_use=False,
    )


def formatter(log_format: LogFormat = "json", colors: bool = False) -> logging.Formatter:
    """The formatter of the root handler: JSON objects, or aligned console lines."""
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=colors)
    )
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=SHARED_PROCESSORS,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            # Tracebacks become text before `redact`, so they are scrubbed too.
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ],
    )


def logging_config(log_format: LogFormat = "json", level: str = "INFO") -> dict[str, Any]:
    """A `logging.config.dictConfig` configuration: one handler on the root logger (standard
    error) rendering every line through structlog. uvicorn takes it as `log_config` and
    applies it in every worker process.
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "structured": {
                "()": "shelfkeeper.observability.logging.formatter",
                "log_format": log_format,
                "colors": log_format == "console" and sys.stderr.isatty(),
            }
        },
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "structured",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["default"], "level": level},
        "loggers": {
            # uvicorn's own lines go to the root handler like everyone's.
            "uvicorn": {"handlers": [], "propagate": True, "level": level},
            "uvicorn.error": {"handlers": [], "propagate": True, "level": level},
            # Shelfkeeper writes its own access line (route template, tenant, request id).
            "uvicorn.access": {"handlers": [], "propagate": False, "level": "WARNING"},
            # The Redis client reports every retry at INFO; the HTTP client every request,
            # with its URL (a webhook's may carry a token in its query string).
            "coredis": {"level": "WARNING"},
            "httpx": {"level": "WARNING"},
            "httpcore": {"level": "WARNING"},
            # Alembic announces each of its plugins when imported (in every worker).
            "alembic.runtime.plugins": {"level": "WARNING"},
        },
    }


def configure_logging(log_format: LogFormat = "json", level: str = "INFO") -> None:
    """Configure this process's logging: structlog, and the standard library through it."""
    configure_structlog()
    logging.config.dictConfig(logging_config(log_format, level))

"""Structured JSON logs carrying request id, user id and tenant id. Secrets never get here:
tokens, cookies and the gateway secret are not logged anywhere, and a scrubbing filter masks
values of known secret-bearing keys as a second line of defence."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

from flask import g, has_request_context

_SECRET_RE = re.compile(
    r"(?i)(secret|token|password|authorization|cookie|api[_-]?key)(\"?\s*[:=]\s*\"?)((?:bearer|basic)\s+)?([^\s\",;]+)"
)
_STD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


def scrub(text: str) -> str:
    return _SECRET_RE.sub(lambda m: f"{m.group(1)}{m.group(2)}{m.group(3) or ''}[redacted]", text)


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if has_request_context():
            record.request_id = g.get("request_id")
            actor = g.get("_login_user")  # flask-login's loaded user (None before it is resolved)
            record.user_id = getattr(actor, "user_id", None)
            record.tenant_id = getattr(actor, "tenant_id", None)
        trace_api = sys.modules.get("opentelemetry.trace")  # loaded only when tracing is on
        if trace_api is not None:
            ctx = trace_api.get_current_span().get_span_context()
            if ctx.is_valid:
                record.trace_id = format(ctx.trace_id, "032x")
                record.span_id = format(ctx.span_id, "016x")
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": scrub(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _STD and value is not None and not key.startswith("_"):
                out[key] = value if isinstance(value, (int, float, bool)) else scrub(str(value))
        if record.exc_info:
            out["exc"] = scrub(self.formatException(record.exc_info))
        return json.dumps(out, default=str)


def setup(level: str = "INFO", json_logs: bool = True) -> None:
    root = logging.getLogger()
    if any(getattr(h, "_glyphoxa", False) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler._glyphoxa = True  # type: ignore[attr-defined]
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if json_logs else logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("werkzeug").setLevel("WARNING")

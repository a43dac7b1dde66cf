"""Structured logs: text or one JSON object per line (``TSTREAM_LOG_FORMAT``).

Every request is one line with status, method, path, client, bytes sent and
duration; engine events (torrent resumed, evicted, resume data saved) are
ordinary log records, and fields given as ``extra={...}`` become JSON keys.
Query values named ``token`` are masked before a URL is logged.
"""
from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

__all__ = ["setup_logging", "JsonFormatter", "log_request", "redact_uri"]

_STD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                  + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for k, v in vars(record).items():
            if k not in _STD and not k.startswith("_"):
                out[k] = v
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def setup_logging(fmt: str = "text", level: str = "info", stream: Any = None) -> None:
    """Configure the root logger once (replaces earlier handlers)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    # tornado's own access log would duplicate ours
    logging.getLogger("tornado.access").setLevel(logging.WARNING)


def redact_uri(uri: str) -> str:
    """>>> redact_uri('/?token=abc&x=1')
    '/?token=***&x=1'"""
    return re.sub(r"([?&](?:token|api_token)=)[^&]*", r"\1***", uri)


def log_request(handler: Any, logger: logging.Logger) -> None:
    """One line per request: status, method, path, client, bytes, duration."""
    status = handler.get_status()
    req = handler.request
    ms = round(1000.0 * req.request_time(), 1)
    sent = getattr(handler, "bytes_sent", None)
    if sent is None:
        sent = int(handler._headers.get("Content-Length", 0) or 0)
    level = logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR
    uri = redact_uri(req.uri)[:300]
    logger.log(level, "%d %s %s %s %.1fms bytes=%d", status, req.method, uri, req.remote_ip, ms, sent,
               extra={"event": "request", "status": status, "method": req.method, "path": uri,
                      "client": req.remote_ip, "bytes": sent, "ms": ms,
                      "range": req.headers.get("Range")})

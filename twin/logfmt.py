"""Log lines in each runtime's own format, as the real images print them.

`shared/reference/online-boutique.md` section 5 lists the shapes: logrus JSON
(Go services), pino (Node.js), python-json-logger, the .NET console logger,
log4j2 compact JSON (Java), Redis, Locust, and plain text.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from twin.behavior import LogStyle

_LOGRUS_LEVEL = {"debug": "debug", "info": "info", "warning": "warning", "error": "error"}
_PINO_LEVEL = {"debug": "debug", "info": "info", "warning": "warn", "error": "error"}
_DOTNET_LEVEL = {"debug": "dbug", "info": "info", "warning": "warn", "error": "fail"}
_REDIS_LEVEL = {"debug": ".", "info": "*", "warning": "#", "error": "#"}


def format_line(
    style: LogStyle,
    severity: str,
    message: str,
    ts: datetime,
    *,
    logger: str = "",
    hostname: str = "",
    fields: dict[str, Any] | None = None,
) -> str:
    """One log line. `severity` is debug, info, warning or error."""
    fields = dict(fields or {})
    ts = ts.astimezone(UTC)
    if style == "logrus":
        body = {**fields, "message": message, "severity": _LOGRUS_LEVEL.get(severity, severity)}
        body["timestamp"] = ts.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"
        return json.dumps(dict(sorted(body.items())), separators=(",", ":"))
    if style == "pino":
        body = {
            "severity": _PINO_LEVEL.get(severity, severity),
            "time": int(ts.timestamp() * 1000),
            "pid": 1,
            "hostname": hostname,
            "name": logger,
            **fields,
            "message": message,
        }
        return json.dumps(body, separators=(",", ":"))
    if style == "python-json":
        body = {
            "timestamp": round(ts.timestamp(), 6),
            "severity": severity.upper(),
            "name": logger,
            "message": message,
            **fields,
        }
        return json.dumps(body)
    if style == "dotnet":
        level = _DOTNET_LEVEL.get(severity, severity)
        category = logger or "Microsoft.Hosting.Lifetime[0]"
        return f"{level}: {category}\n      {message}"
    if style == "log4j":
        body = {
            "instant": {
                "epochSecond": int(ts.timestamp()),
                "nanoOfSecond": ts.microsecond * 1000,
            },
            "thread": "grpc-default-executor-0",
            "level": "WARN" if severity == "warning" else severity.upper(),
            "loggerName": logger or "hipstershop.AdService",
            "message": message,
            "endOfBatch": False,
            "loggerFqcn": "org.apache.logging.log4j.spi.AbstractLogger",
            "threadId": 20,
            "threadPriority": 5,
            "logging.googleapis.com/trace": "${ctx:traceId}",
            "logging.googleapis.com/spanId": "${ctx:spanId}",
            "logging.googleapis.com/traceSampled": "${ctx:traceSampled}",
            "time": ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z",
        }
        return json.dumps(body, separators=(",", ":"))
    if style == "redis":
        stamp = ts.strftime("%d %b %Y %H:%M:%S.") + f"{ts.microsecond // 1000:03d}"
        return f"1:M {stamp} {_REDIS_LEVEL.get(severity, '*')} {message}"
    if style == "locust":
        stamp = ts.strftime("%Y-%m-%d %H:%M:%S,") + f"{ts.microsecond // 1000:03d}"
        level = {"warning": "WARNING"}.get(severity, severity.upper())
        return f"[{stamp}] {hostname}/{level}/{logger or 'locust.main'}: {message}"
    return message

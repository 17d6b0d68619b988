"""host.json -> the settings the queue trigger and the host honour.

Defaults are the real host's (Functions v4, storage extension v5): ``maxPollingInterval``
1 minute, ``visibilityTimeout`` 0, ``batchSize`` 16, ``newBatchThreshold`` batchSize/2,
``maxDequeueCount`` 5, ``messageEncoding`` base64. ``functionTimeout`` defaults to 30
minutes (Flex Consumption's default); ``-1`` means unbounded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from shared.errors import SettingsError

_TIMESPAN = re.compile(r"^(?:(?P<d>\d+)\.)?(?P<h>\d{1,2}):(?P<m>\d{1,2}):(?P<s>\d{1,2}(?:\.\d{1,7})?)$")
MIN_POLLING_INTERVAL = timedelta(milliseconds=100)
DEFAULT_FUNCTION_TIMEOUT = timedelta(minutes=30)
# How long a received message stays invisible between renewals while its function runs (fixed in the
# real host; --lease-seconds shortens it in tests).
LEASE = timedelta(seconds=60)


def parse_timespan(value: object, name: str) -> timedelta:
    """A .NET TimeSpan string ("hh:mm:ss[.fff]", "d.hh:mm:ss") or a number of milliseconds."""
    if isinstance(value, bool):
        raise SettingsError(f"host.json {name}: expected a time span like '00:00:30', got {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise SettingsError(f"host.json {name}: must not be negative, got {value!r}")
        return timedelta(milliseconds=value)
    match = _TIMESPAN.match(str(value).strip())
    if not match:
        raise SettingsError(f"host.json {name}: expected a time span like '00:00:30', got {value!r}")
    return timedelta(
        days=int(match["d"] or 0), hours=int(match["h"]), minutes=int(match["m"]), seconds=float(match["s"])
    )


@dataclass(frozen=True)
class QueuesConfig:
    """``extensions.queues`` of host.json."""

    max_polling_interval: timedelta = timedelta(minutes=1)
    visibility_timeout: timedelta = timedelta(0)
    batch_size: int = 16
    new_batch_threshold: int = 8
    max_dequeue_count: int = 5
    message_encoding: str = "base64"  # or "none"


@dataclass(frozen=True)
class HostConfig:
    queues: QueuesConfig = QueuesConfig()
    function_timeout: timedelta | None = DEFAULT_FUNCTION_TIMEOUT  # None: unbounded
    http_route_prefix: str = "api"  # extensions.http.routePrefix


def _int(doc: Mapping[str, Any], key: str, default: int, low: int, high: int | None = None) -> int:
    value = doc.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bounds = f"{low}..{high}" if high is not None else f">= {low}"
        raise SettingsError(f"host.json extensions.queues.{key}: expected an integer {bounds}, got {value!r}")
    return value


def parse_queues(doc: Mapping[str, Any]) -> QueuesConfig:
    batch_size = _int(doc, "batchSize", 16, 1, 32)
    polling = parse_timespan(doc.get("maxPollingInterval", "00:01:00"), "extensions.queues.maxPollingInterval")
    if polling < MIN_POLLING_INTERVAL:
        raise SettingsError("host.json extensions.queues.maxPollingInterval: must be at least 100 ms")
    encoding = str(doc.get("messageEncoding", "base64")).lower()
    if encoding not in ("base64", "none"):
        raise SettingsError(f"host.json extensions.queues.messageEncoding: 'base64' or 'none', got {encoding!r}")
    return QueuesConfig(
        max_polling_interval=polling,
        visibility_timeout=parse_timespan(doc.get("visibilityTimeout", 0), "extensions.queues.visibilityTimeout"),
        batch_size=batch_size,
        new_batch_threshold=_int(doc, "newBatchThreshold", batch_size // 2, 0),
        max_dequeue_count=_int(doc, "maxDequeueCount", 5, 1),
        message_encoding=encoding,
    )


def parse_host_config(doc: Mapping[str, Any]) -> HostConfig:
    """Parse a host.json document. Raises SettingsError naming the bad key."""
    queues = (doc.get("extensions") or {}).get("queues") or {}
    if not isinstance(queues, Mapping):
        raise SettingsError("host.json extensions.queues: expected an object")
    raw_timeout = doc.get("functionTimeout")
    timeout: timedelta | None = DEFAULT_FUNCTION_TIMEOUT
    if raw_timeout is not None:
        timeout = None if str(raw_timeout).strip() == "-1" else parse_timespan(raw_timeout, "functionTimeout")
    http = (doc.get("extensions") or {}).get("http") or {}
    prefix = http.get("routePrefix", "api") if isinstance(http, Mapping) else None
    if not isinstance(prefix, str):
        raise SettingsError("host.json extensions.http.routePrefix: expected a string")
    return HostConfig(queues=parse_queues(queues), function_timeout=timeout, http_route_prefix=prefix.strip("/"))


def load_host_config(path: Path) -> HostConfig:
    """Read host.json; a missing file gives the defaults, as the real host does."""
    if not path.is_file():
        return HostConfig()
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise SettingsError(f"{path.name}: not valid JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise SettingsError(f"{path.name}: expected a JSON object")
    return parse_host_config(doc)

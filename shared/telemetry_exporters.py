"""Which span and log exporters the settings ask for, and how each is built.

Each exporter is imported only when configured: the Azure Monitor exporter alone costs
a few hundred milliseconds of import, which a cold start would pay for nothing.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from shared.settings import PROJECT_ROOT, Settings

if TYPE_CHECKING:
    from opentelemetry.sdk._logs.export import LogRecordExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

_log = logging.getLogger(__name__)

EXPORT_TIMEOUT_S = 5.0  # a dead endpoint must not hold a function invocation for long
DEFAULT_TRACE_FILE = PROJECT_ROOT / ".localdev" / "traces.jsonl"
HONEYCOMB_HEADER = "x-honeycomb-team"

# The exporter's documented opt-outs exist only as environment variables (1.0.0b58 has no
# kwargs for them), so setup sets them. Statsbeat and SDK stats would start a second meter
# pipeline and background sends; the control plane polls settings.sdk.monitor.azure.com.
# None of that is worth cold-start time or stray traffic from a short-lived function.
AZURE_MONITOR_OPT_OUTS = {
    "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
    "APPLICATIONINSIGHTS_SDKSTATS_DISABLED": "true",
    "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
}


def parse_otlp_headers(raw: str | None) -> dict[str, str]:
    """``k=v,k2=v2`` (OTEL_EXPORTER_OTLP_HEADERS, values URL-encoded) -> a dict.

    Malformed entries are skipped with a warning naming only the position (values may be keys).
    """
    out: dict[str, str] = {}
    for i, item in enumerate((raw or "").split(",")):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        key, value = unquote(key).strip().lower(), unquote(value).strip()
        if not sep or not key:
            _log.warning("OTEL_EXPORTER_OTLP_HEADERS: entry %d is not key=value; skipped", i + 1)
            continue
        out[key] = value
    return out


def otlp_targets(settings: Settings, signal: str = "traces") -> list[tuple[str, dict[str, str]]]:
    """(URL, headers) for each OTLP destination the settings name, for ``signal`` (traces or logs).

    A signal-specific traces endpoint (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) ending in /v1/traces
    gives logs its sibling /v1/logs; any other one is for traces only.
    """
    targets: list[tuple[str, dict[str, str]]] = []
    base = f"{settings.otlp_endpoint.rstrip('/')}/v1/{signal}" if settings.otlp_endpoint else None
    specific = settings.otlp_traces_endpoint
    if specific and signal != "traces":
        specific = specific.removesuffix("/v1/traces") + f"/v1/{signal}" if specific.endswith("/v1/traces") else None
        specific = specific or base
    generic = specific or base
    headers = parse_otlp_headers(settings.otlp_headers.reveal() if settings.otlp_headers else None)
    honeycomb = f"{settings.honeycomb_api_endpoint.rstrip('/')}/v1/{signal}"
    key = settings.honeycomb_api_key.reveal() if settings.honeycomb_api_key else None
    if generic:
        # The API key only ever goes to Honeycomb's own host, never to a collector.
        if key and urlsplit(generic).netloc == urlsplit(honeycomb).netloc:
            headers.setdefault(HONEYCOMB_HEADER, key)
            key = None
        targets.append((generic, headers))
    if key:
        targets.append((honeycomb, {HONEYCOMB_HEADER: key}))
    return targets


def otlp_exporter(url: str, headers: dict[str, str]) -> SpanExporter:
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=url, headers=headers, timeout=EXPORT_TIMEOUT_S, compression=Compression.Gzip)


def otlp_log_exporter(url: str, headers: dict[str, str]) -> LogRecordExporter:
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

    return OTLPLogExporter(endpoint=url, headers=headers, timeout=EXPORT_TIMEOUT_S, compression=Compression.Gzip)


def _azure_monitor_kwargs(settings: Settings) -> dict[str, object]:
    assert settings.appinsights_connection_string is not None
    os.environ.update(AZURE_MONITOR_OPT_OUTS)
    return {
        "connection_string": settings.appinsights_connection_string.reveal(),
        "disable_offline_storage": True,
        "timeout": EXPORT_TIMEOUT_S,
        "read_timeout": EXPORT_TIMEOUT_S,  # azure-core's default is 300 s
        "retry_total": 1,
    }


def azure_monitor_log_exporter(settings: Settings) -> LogRecordExporter:
    """Log records to App Insights: ``traces`` (``exceptions`` with exception.* attributes), in the
    command's operation (ai.operation.id = trace id, ai.operation.parentId = the current span)."""
    from azure.monitor.opentelemetry.exporter import AzureMonitorLogExporter

    exporter: LogRecordExporter = AzureMonitorLogExporter(**_azure_monitor_kwargs(settings))
    return exporter


def azure_monitor_exporter(settings: Settings, provider: TracerProvider) -> SpanExporter:
    """The App Insights exporter: no offline storage on disk, no statsbeat, bounded network time."""
    from azure.monitor.opentelemetry.exporter import AzureMonitorTraceExporter

    # tracer_provider: for its resource envelope; the global may not be set yet
    exporter: SpanExporter = AzureMonitorTraceExporter(tracer_provider=provider, **_azure_monitor_kwargs(settings))
    return exporter


def file_exporter(settings: Settings) -> SpanExporter:
    from shared.trace_file import JsonLinesSpanExporter

    return JsonLinesSpanExporter(settings.local_trace_file or DEFAULT_TRACE_FILE)


def _otlp_label(url: str) -> str:
    parts = urlsplit(url)  # the label drops any user:password@
    return f"otlp {parts.scheme}://{parts.hostname}{':' + str(parts.port) if parts.port else ''}{parts.path}"


def _writes_file(settings: Settings) -> bool:
    return not settings.exporters_configured or bool(settings.local_trace_file)


def build_exporters(settings: Settings, provider: TracerProvider) -> list[tuple[str, SpanExporter]]:
    """(label, exporter) for every destination the settings configure; labels never hold secrets."""
    exporters: list[tuple[str, SpanExporter]] = []
    for url, headers in otlp_targets(settings):
        exporters.append((_otlp_label(url), otlp_exporter(url, headers)))
    if settings.appinsights_connection_string:
        exporters.append(("azure-monitor", azure_monitor_exporter(settings, provider)))
    if _writes_file(settings):
        exporter = file_exporter(settings)
        exporters.append((f"file {getattr(exporter, 'path', '')}", exporter))
    return exporters


def build_log_exporters(settings: Settings) -> list[tuple[str, LogRecordExporter]]:
    """The same destinations for log records: OTLP /v1/logs, App Insights, the local span file."""
    exporters: list[tuple[str, LogRecordExporter]] = [
        (_otlp_label(url), otlp_log_exporter(url, headers)) for url, headers in otlp_targets(settings, "logs")
    ]
    if settings.appinsights_connection_string:
        exporters.append(("azure-monitor", azure_monitor_log_exporter(settings)))
    if _writes_file(settings):
        from shared.trace_file import JsonLinesLogExporter

        path = settings.local_trace_file or DEFAULT_TRACE_FILE
        exporters.append((f"file {path}", JsonLinesLogExporter(path)))
    return exporters

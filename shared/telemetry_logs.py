"""Python ``logging`` as OpenTelemetry logs, inside the trace.

:class:`TraceLogHandler` is a plain ``logging.Handler`` that ``shared.telemetry.setup_telemetry``
adds to the root logger, so it works in-process and under a Functions worker that installs its
own handler beside it. Each record at INFO or above becomes an OpenTelemetry log record carrying
the trace and span ids of the span that was current when it was logged; the exporters are the
span exporters' siblings (OTLP ``/v1/logs``, App Insights ``traces``/``exceptions``, the local
span file as ``"type": "log"`` lines). Messages, arguments and tracebacks are redacted first:
the process's secrets (token, keys, connection strings) and interaction tokens in webhook paths.

The exporters' own loggers (opentelemetry, azure, urllib3, requests) are not exported: their
records are about the export itself and would feed it back into itself.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import traceback
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.context import get_current

from shared.settings import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor
    from opentelemetry.sdk._logs.export import LogRecordExporter
    from opentelemetry.sdk.resources import Resource

    from shared.telemetry_deferred import DeferredLogExport

_log = logging.getLogger(__name__)

LEVEL = logging.INFO
EXCLUDED_LOGGERS = ("opentelemetry", "azure", "urllib3", "requests", "shared.telemetry", "shared.trace_file")
# The project's own loggers are raised to INFO when the process left them quieter (a Functions
# worker's root logger is not ours to change); libraries keep their levels.
OWN_LOGGERS = ("gateway_listener", "function_runtime", "command_functions", "shared", "function_app", "ops")
REDACTED = "***"
_PATTERNS = (
    re.compile(r"(/(?:webhooks|interactions)/\d+/)[^/\s?\"']+"),  # interaction tokens in webhook paths
    re.compile(r"((?:AccountKey|SharedAccessSignature|InstrumentationKey)=)[^;\s\"']+", re.IGNORECASE),
    re.compile(r"((?:[?&]sig=))[^&\s\"']+", re.IGNORECASE),
    re.compile(r"((?:Bot|Bearer) )[A-Za-z0-9._\-]{20,}"),
)


class Redactor:
    """Replaces the settings' secret values and secret-shaped substrings with ``***``."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self._secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)

    @classmethod
    def for_settings(cls, settings: Settings) -> Redactor:
        values = [settings.discord_token, settings.honeycomb_api_key, settings.otlp_headers,
                  settings.appinsights_connection_string, settings.storage.connection_string]
        secrets = [v.reveal() for v in values if v]
        # Each part of a connection string or header list counts on its own too (a key logged alone).
        for v in list(secrets):
            secrets += [part.split("=", 1)[1] for part in re.split(r"[;,]", v) if "=" in part]
        return cls(secrets)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        for pattern in _PATTERNS:
            text = pattern.sub(rf"\1{REDACTED}", text)
        return text


class TraceLogHandler(logging.Handler):
    """Emits each record to ``provider`` as an OpenTelemetry log record in the current span's context."""

    def __init__(self, provider: LoggerProvider, redact: Redactor, level: int = LEVEL) -> None:
        super().__init__(level=level)
        self._provider = provider
        self._redact = redact
        self._busy = threading.local()  # a record logged while emitting one is dropped, not looped

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(EXCLUDED_LOGGERS) or getattr(self._busy, "on", False):
            return
        self._busy.on = True
        try:
            self._emit(record)
        except Exception:  # a log call must never fail the caller
            self.handleError(record)
        finally:
            self._busy.on = False

    def _emit(self, record: logging.LogRecord) -> None:
        severity = _SEVERITY.get(record.levelno, (SeverityNumber.INFO, "INFO"))
        attributes: dict[str, str | int] = {
            "code.function.name": record.funcName,
            "code.line.number": record.lineno,
            "code.file.path": record.pathname,
            "thread.name": record.threadName or "",
        }
        if record.exc_info and record.exc_info[0] is not None:
            exc_type, exc, tb = record.exc_info
            attributes["exception.type"] = exc_type.__name__
            attributes["exception.message"] = self._redact(str(exc))
            attributes["exception.stacktrace"] = self._redact("".join(traceback.format_exception(exc_type, exc, tb)))
        self._provider.get_logger(record.name).emit(LogRecord(
            timestamp=int(record.created * 1e9),
            observed_timestamp=time.time_ns(),
            context=get_current(),
            severity_number=severity[0],
            severity_text=severity[1],
            body=self._redact(record.getMessage()),
            attributes=attributes,
        ))


_SEVERITY = {
    logging.DEBUG: (SeverityNumber.DEBUG, "DEBUG"),
    logging.INFO: (SeverityNumber.INFO, "INFO"),
    logging.WARNING: (SeverityNumber.WARN, "WARN"),
    logging.ERROR: (SeverityNumber.ERROR, "ERROR"),
    logging.CRITICAL: (SeverityNumber.FATAL, "FATAL"),
}


def build_logger_provider(
    settings: Settings, resource: Resource, *, extra_exporters: Sequence[LogRecordExporter] = (),
    simple: bool = False, defer: bool = False,
) -> tuple[LoggerProvider, DeferredLogExport | None]:
    """A LoggerProvider with the settings' log exporters (``extra_exporters`` attached at once); with
    ``defer``, the configured ones are built at the first flush (as the span exporters are)."""
    from opentelemetry.sdk._logs import LoggerProvider

    provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
    for exporter in extra_exporters:
        provider.add_log_record_processor(_processor(exporter, simple))

    def export_processors() -> list[LogRecordProcessor]:
        from shared import telemetry_exporters

        exporters = telemetry_exporters.build_log_exporters(settings)
        _log.debug("telemetry logs -> %s", ", ".join(label for label, _ in exporters) or "nothing")
        return [_processor(exporter, simple) for _, exporter in exporters]

    if defer:
        from shared.telemetry_deferred import DeferredLogExport

        deferred = DeferredLogExport(export_processors)
        provider.add_log_record_processor(deferred)
        return provider, deferred
    for processor in export_processors():
        provider.add_log_record_processor(processor)
    return provider, None


def _processor(exporter: LogRecordExporter, simple: bool) -> LogRecordProcessor:
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, SimpleLogRecordProcessor

    if simple:
        return SimpleLogRecordProcessor(exporter)
    return BatchLogRecordProcessor(exporter, max_queue_size=4096, schedule_delay_millis=500, max_export_batch_size=512)


def install_handler(
    provider: LoggerProvider, settings: Settings, root: logging.Logger | None = None
) -> TraceLogHandler:
    """Add the handler to the root logger (once per provider) and let the project's INFO records through."""
    root = root or logging.getLogger()
    handler = TraceLogHandler(provider, Redactor.for_settings(settings))
    root.addHandler(handler)
    for name in OWN_LOGGERS:
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() > LEVEL:
            logger.setLevel(LEVEL)
    return handler

"""The TracerProvider recipe: resource, sampler, processors and exporters (no global state).

:func:`build_provider` is what ``shared.telemetry.setup_telemetry`` installs; tests call it
directly to get as many independent providers as they need. The SDK is imported inside
the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal

from shared.settings import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

_log = logging.getLogger(__name__)

Component = Literal["listener", "functions", "scale_controller", "ops"]
SERVICE_NAMES: Mapping[str, str] = {
    "listener": "discord-bot-listener",
    "functions": "discord-bot-functions",
    "scale_controller": "discord-bot-scale-controller",  # localdev's stand-in for the platform's
    "ops": "discord-bot-ops",  # the on-call tools (python -m ops.poison replay starts traces)
}
SHARD_FIELD = "discord.shard.id"  # the listener's gateway shard: travels as baggage, not as an envelope field
TRACE_FIELDS: tuple[str, ...] = (
    "app.command",
    "discord.guild.id",
    "discord.channel.id",
    "discord.author.id",
    SHARD_FIELD,
    "SampleRate",
)


def sampling_ratio(settings: Settings) -> float:
    """The head-sampling ratio: always_on/always_off (or parentbased_*) win, else OTEL_TRACES_SAMPLER_ARG."""
    name = (settings.traces_sampler or "").lower().removeprefix("parentbased_")
    if name == "always_on":
        return 1.0
    if name == "always_off":
        return 0.0
    return settings.traces_sampler_arg


def sample_rate(settings: Settings) -> int:
    """Honeycomb's SampleRate: how many traces each kept trace stands for (1 when keeping all or none)."""
    ratio = sampling_ratio(settings)
    return max(1, round(1 / ratio)) if ratio > 0 else 1


_instance_id: str | None = None  # service.instance.id, one per process


def service_name(settings: Settings, component: Component) -> str:
    """Each process is its own service. OTEL_SERVICE_NAME names the bot; both processes
    usually share one environment, so the component is appended rather than the two
    services being merged into one (e.g. ``mybot`` -> ``mybot-listener``, ``mybot-functions``)."""
    if not settings.service_name:
        return SERVICE_NAMES[component]
    suffix = SERVICE_NAMES[component].removeprefix("discord-bot")
    return settings.service_name if settings.service_name.endswith(suffix) else settings.service_name + suffix


def _import_sdk() -> None:
    """Import the SDK without psutil, which costs a cold start tens of milliseconds.

    ``opentelemetry.sdk.resources`` imports psutil (if installed: the Azure Monitor exporter
    depends on it) only for ProcessResourceDetector, which these processes never run. A
    ``None`` entry in sys.modules makes that import fail softly; it is removed again at once,
    so an exporter that needs psutil later imports it as usual.
    """
    if "opentelemetry.sdk.resources" in sys.modules or "psutil" in sys.modules:
        return
    sys.modules["psutil"] = None  # type: ignore[assignment]
    try:
        import opentelemetry.sdk.resources  # noqa: F401
    finally:
        if "psutil" in sys.modules and sys.modules["psutil"] is None:
            del sys.modules["psutil"]


def build_resource(settings: Settings, component: Component) -> Resource:
    _import_sdk()
    from opentelemetry.sdk.resources import Resource

    global _instance_id
    if _instance_id is None:
        import uuid

        _instance_id = str(uuid.uuid4())
    env = settings.deployment_environment
    return Resource.create(
        {
            **settings.azure_resource,
            "service.name": service_name(settings, component),
            "service.version": settings.service_version,
            # The platform's instance id (WEBSITE_INSTANCE_ID, also faas.instance) when there is
            # one, so a span says which instance ran it; else one random id per process.
            "service.instance.id": settings.azure_resource.get("faas.instance") or _instance_id,
            "deployment.environment": env,
            "deployment.environment.name": env,
        }
    )


def build_provider(
    settings: Settings,
    component: Component,
    *,
    extra_exporters: Sequence[SpanExporter] = (),
    use_simple_processor: bool = False,
    defer_export: bool = False,
) -> TracerProvider:
    """A configured TracerProvider, not installed globally (tests build as many as they like).

    ``defer_export``: the configured exporters are built (and their modules imported) only
    when the provider is first flushed; until then ended spans wait in memory
    (shared/telemetry_deferred.py). ``extra_exporters`` are always attached at once.
    """
    _import_sdk()
    from opentelemetry.sdk.trace import TracerProvider

    from shared import telemetry_processors

    provider = TracerProvider(
        resource=build_resource(settings, component),
        sampler=telemetry_processors.make_sampler(sampling_ratio(settings), component),
        shutdown_on_exit=False,  # setup_telemetry registers a bounded shutdown instead
    )
    provider.add_span_processor(telemetry_processors.TraceFieldsProcessor(TRACE_FIELDS))
    if settings.appinsights_connection_string:
        provider.add_span_processor(telemetry_processors.AppInsightsSampleRate())
    for exporter in extra_exporters:
        provider.add_span_processor(_export_processor(exporter, use_simple_processor))

    def export_processors() -> list[SpanProcessor]:
        from shared import telemetry_exporters

        exporters = telemetry_exporters.build_exporters(settings, provider)
        _log.info("telemetry: %s -> %s", provider.resource.attributes.get("service.name"),
                  ", ".join(label for label, _ in exporters) or "nothing")
        return [_export_processor(exporter, use_simple_processor) for _, exporter in exporters]

    if defer_export:
        from shared.telemetry_deferred import DeferredExport

        provider.add_span_processor(DeferredExport(export_processors))
    else:
        for processor in export_processors():
            provider.add_span_processor(processor)
    return provider


def _export_processor(exporter: SpanExporter, simple: bool) -> SpanProcessor:
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    if simple:
        return SimpleSpanProcessor(exporter)
    # Short delay: a function's spans should leave before the instance idles.
    return BatchSpanProcessor(exporter, max_queue_size=4096, schedule_delay_millis=500, max_export_batch_size=512)

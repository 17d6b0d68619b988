"""Settings, read once at start-up into a frozen object and passed in.

Sources, highest priority first: the process environment, then the ``Values`` of
``local.settings.json`` in the project root (as Azure Functions Core Tools does), then
the defaults in DESIGN.md. Nothing else in the bot's processes reads ``os.environ`` for
settings. Telemetry setup writes to it (never reads it): two libraries take options only
as environment variables, the Azure Monitor exporter's opt-outs
(``shared/telemetry_exporters.py``) and the requests instrumentation's
``OTEL_SEMCONV_STABILITY_OPT_IN`` (``shared/telemetry_processors.py``). The local tools
(``localdev/``, ``bench/``) pass the environment on to the processes they start.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from shared.errors import SettingsError
from shared.useragent import DEFAULT_VERSION

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FLAGS_FILE = PROJECT_ROOT / "feature_flags.example.json"
AZURITE_CONNECTION_STRING = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
    "QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"
    "TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;"
)


class Secret(str):
    """A string that never shows itself in repr(), str(), f-strings or %-formatting.

    Code that needs the value asks for it by name with :meth:`reveal`.
    """

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __format__(self, spec: str) -> str:
        return "***"

    def reveal(self) -> str:
        return str.__str__(self)


@dataclass(frozen=True)
class StorageSettings:
    """Where the queues (and the reminders table) live: a connection string or identity-based URIs."""

    connection_string: Secret | None = None
    queue_service_uri: str | None = None
    table_service_uri: str | None = None  # AzureWebJobsStorage__tableServiceUri (identity-based tables)

    @property
    def is_azurite(self) -> bool:
        cs = (self.connection_string or "").lower()
        return "usedevelopmentstorage=true" in cs or "devstoreaccount1" in cs


@dataclass(frozen=True)
class Settings:
    storage: StorageSettings
    discord_token: Secret | None = None
    discord_api_base_url: str = "https://discord.com/api/v10"
    discord_gateway_url: str | None = None
    bot_prefix: str = "!"
    catfact_api_url: str = "https://catfact.ninja/fact"
    scryfall_api_url: str = "https://api.scryfall.com"
    relationships_api_url: str = "https://buildingrelationships.dev"
    otlp_endpoint: str | None = None
    otlp_headers: Secret | None = None
    otlp_traces_endpoint: str | None = None
    service_name: str | None = None
    traces_sampler: str | None = None
    traces_sampler_arg: float = 1.0
    honeycomb_api_key: Secret | None = None
    honeycomb_api_endpoint: str = "https://api.honeycomb.io"
    appinsights_connection_string: Secret | None = None
    feature_flags_file: Path = DEFAULT_FLAGS_FILE
    appconfig_endpoint: str | None = None
    local_trace_file: Path | None = None
    deployment_environment: str = "local"
    service_version: str = DEFAULT_VERSION
    azure_resource: Mapping[str, str] = field(default_factory=dict)
    listener_buffer_capacity: int = 1000
    discord_public_key: bytes | None = None  # Ed25519 verify key of the application (interactions endpoint)
    functions_http_port: int = 7071  # the local functions host's HTTP port (Core Tools' default; 0 = any free)
    minecraft_rcon_address: tuple[str, int] | None = None  # !mc's server (host, RCON port)
    minecraft_rcon_password: Secret | None = None
    redis_url: Secret | None = None  # shared rate-limit coordination (shared/discord_limits.py); may hold a password
    discord_global_rate_limit: int = 50  # the bot's global REST budget, requests per second
    discord_invalid_request_limit: int = 2500  # invalid requests (401/403/429) per 10 min before pausing typing/sync

    @property
    def exporters_configured(self) -> bool:
        return bool(
            self.otlp_endpoint
            or self.otlp_traces_endpoint
            or self.honeycomb_api_key
            or self.appinsights_connection_string
        )


def read_local_settings(root: Path) -> dict[str, str]:
    """The ``Values`` of ``local.settings.json``, or {} when there is none."""
    path = root / "local.settings.json"
    if not path.is_file():
        return {}
    try:
        values = json.loads(path.read_text(encoding="utf-8")).get("Values", {})
    except (ValueError, AttributeError) as exc:
        raise SettingsError(f"local.settings.json: not valid JSON with a 'Values' object ({exc})") from exc
    if not isinstance(values, dict):
        raise SettingsError("local.settings.json: 'Values' must be an object")
    return {str(k): str(v) for k, v in values.items()}


def _url(values: Mapping[str, str], name: str, default: str | None) -> str | None:
    raw = values.get(name, "").strip()
    if not raw:
        return default
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https", "ws", "wss") or not parts.netloc:
        # The value is not echoed: a mistaken paste here is often a connection string with a key.
        raise SettingsError(f"{name}: expected an http(s) URL like https://host/path (value not shown)")
    return raw.rstrip("/")


def _secret(values: Mapping[str, str], name: str) -> Secret | None:
    raw = values.get(name, "").strip()
    return Secret(raw) if raw else None


def _storage(values: Mapping[str, str], require: bool) -> StorageSettings:
    cs = values.get("AzureWebJobsStorage", "").strip()
    uri = _url(values, "AzureWebJobsStorage__queueServiceUri", None)
    if cs and "=" not in cs:
        raise SettingsError("AzureWebJobsStorage: expected a connection string (Key=Value;...)")
    lowered = cs.lower()
    if cs and "usedevelopmentstorage=true" not in lowered and "accountkey=" not in lowered:
        raise SettingsError("AzureWebJobsStorage: a connection string needs AccountName and AccountKey "
                            "(or use AzureWebJobsStorage__queueServiceUri with a managed identity)")
    if not cs and not uri and require:
        raise SettingsError(
            "AzureWebJobsStorage: required (a storage connection string, 'UseDevelopmentStorage=true' "
            "for Azurite, or AzureWebJobsStorage__queueServiceUri for managed identity)"
        )
    return StorageSettings(connection_string=Secret(cs) if cs else None, queue_service_uri=uri,
                           table_service_uri=_url(values, "AzureWebJobsStorage__tableServiceUri", None))


def _sampler_arg(values: Mapping[str, str]) -> float:
    raw = values.get("OTEL_TRACES_SAMPLER_ARG", "").strip()
    if not raw:
        return 1.0
    try:
        ratio = float(raw)
    except ValueError:
        raise SettingsError(f"OTEL_TRACES_SAMPLER_ARG: expected a number between 0 and 1, got {raw!r}") from None
    if not 0.0 <= ratio <= 1.0:
        raise SettingsError(f"OTEL_TRACES_SAMPLER_ARG: expected a number between 0 and 1, got {raw!r}")
    return ratio


def _bounded_int(values: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = values.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}: expected an integer {low}-{high}, got {raw!r}") from None
    if not low <= value <= high:
        raise SettingsError(f"{name}: expected an integer {low}-{high}, got {raw!r}")
    return value


PUBLIC_KEY_BYTES = 32  # an Ed25519 public key


def _public_key(values: Mapping[str, str]) -> bytes | None:
    """DISCORD_PUBLIC_KEY: the application's "Public Key" (developer portal), 64 hex digits."""
    raw = values.get("DISCORD_PUBLIC_KEY", "").strip()
    if not raw:
        return None
    try:
        key = bytes.fromhex(raw)
    except ValueError:
        key = b""
    if len(key) != PUBLIC_KEY_BYTES:
        raise SettingsError(f"DISCORD_PUBLIC_KEY: expected {PUBLIC_KEY_BYTES * 2} hex digits "
                            "(the application's Public Key in the developer portal)")
    return key


def _rcon_address(values: Mapping[str, str]) -> tuple[str, int] | None:
    """MINECRAFT_RCON_ADDRESS: ``host:port`` (``[v6]:port``) of the Minecraft server's RCON."""
    raw = values.get("MINECRAFT_RCON_ADDRESS", "").strip()
    if not raw:
        return None
    host, sep, port = raw.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SettingsError(f"MINECRAFT_RCON_ADDRESS: expected host:port, e.g. mc.example.com:25575, got {raw[:80]!r}")
    return host, int(port)
def _redis_url(values: Mapping[str, str]) -> Secret | None:
    """REDIS_URL: redis:// or rediss:// (the value may carry a password: never echoed)."""
    raw = values.get("REDIS_URL", "").strip()
    if not raw:
        return None
    parts = urlsplit(raw)
    if parts.scheme not in ("redis", "rediss", "unix") or not (parts.hostname or parts.path):
        raise SettingsError("REDIS_URL: expected redis://host:port/db or rediss://host:port (value not shown)")
    return Secret(raw)


def _azure_resource(values: Mapping[str, str]) -> dict[str, str]:
    """Resource attributes the Functions/App Service platform exposes as app settings."""
    out: dict[str, str] = {}
    if site := values.get("WEBSITE_SITE_NAME"):
        out["cloud.provider"] = "azure"
        out["cloud.platform"] = "azure_functions"
        out["faas.name"] = site
    if region := values.get("REGION_NAME"):
        out["cloud.region"] = region
    if instance := values.get("WEBSITE_INSTANCE_ID"):
        out["faas.instance"] = instance
    return out


def setting_values(environ: Mapping[str, str] | None = None, root: Path = PROJECT_ROOT) -> dict[str, str]:
    """Every raw setting: ``local.settings.json``'s Values, overridden by the environment."""
    values: dict[str, str] = read_local_settings(root)
    values.update(os.environ if environ is None else environ)
    return values


def load_settings(
    environ: Mapping[str, str] | None = None,
    root: Path = PROJECT_ROOT,
    *,
    require_storage: bool = True,
) -> Settings:
    """Build the settings once. Raises SettingsError with one line naming the bad setting."""
    values = setting_values(environ, root)

    prefix = values.get("BOT_PREFIX", "!")
    if not prefix.strip() or len(prefix) > 10 or any(c.isspace() for c in prefix):
        raise SettingsError(f"BOT_PREFIX: expected 1-10 non-space characters, got {prefix!r}")

    flags_file = values.get("FEATURE_FLAGS_FILE", "").strip()
    trace_file = values.get("LOCAL_TRACE_FILE", "").strip()
    return Settings(
        storage=_storage(values, require_storage),
        discord_token=_secret(values, "DISCORD_TOKEN"),
        discord_api_base_url=_url(values, "DISCORD_API_BASE_URL", "https://discord.com/api/v10") or "",
        discord_gateway_url=_url(values, "DISCORD_GATEWAY_URL", None),
        bot_prefix=prefix,
        catfact_api_url=_url(values, "CATFACT_API_URL", "https://catfact.ninja/fact") or "",
        scryfall_api_url=_url(values, "SCRYFALL_API_URL", "https://api.scryfall.com") or "",
        relationships_api_url=_url(values, "RELATIONSHIPS_API_URL", "https://buildingrelationships.dev") or "",
        otlp_endpoint=_url(values, "OTEL_EXPORTER_OTLP_ENDPOINT", None),
        otlp_traces_endpoint=_url(values, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", None),
        otlp_headers=_secret(values, "OTEL_EXPORTER_OTLP_HEADERS"),
        service_name=values.get("OTEL_SERVICE_NAME") or None,
        traces_sampler=values.get("OTEL_TRACES_SAMPLER") or None,
        traces_sampler_arg=_sampler_arg(values),
        honeycomb_api_key=_secret(values, "HONEYCOMB_API_KEY"),
        honeycomb_api_endpoint=_url(values, "HONEYCOMB_API_ENDPOINT", "https://api.honeycomb.io") or "",
        appinsights_connection_string=_secret(values, "APPLICATIONINSIGHTS_CONNECTION_STRING"),
        feature_flags_file=Path(flags_file) if flags_file else DEFAULT_FLAGS_FILE,
        appconfig_endpoint=_url(values, "AZURE_APPCONFIG_ENDPOINT", None),
        local_trace_file=Path(trace_file) if trace_file else None,
        deployment_environment=values.get(
            "DEPLOYMENT_ENVIRONMENT", "azure" if values.get("WEBSITE_SITE_NAME") else "local"
        ),
        service_version=values.get("SERVICE_VERSION", DEFAULT_VERSION),
        azure_resource=_azure_resource(values),
        listener_buffer_capacity=_bounded_int(values, "LISTENER_BUFFER_CAPACITY", 1000, 1, 1_000_000),
        discord_public_key=_public_key(values),
        functions_http_port=_bounded_int(values, "FUNCTIONS_HTTP_PORT", 7071, 0, 65535),  # 0: any free port
        minecraft_rcon_address=_rcon_address(values),
        minecraft_rcon_password=_secret(values, "MINECRAFT_RCON_PASSWORD"),
        redis_url=_redis_url(values),
        discord_global_rate_limit=_bounded_int(values, "DISCORD_GLOBAL_RATE_LIMIT", 50, 1, 100_000),
        discord_invalid_request_limit=_bounded_int(values, "DISCORD_INVALID_REQUEST_LIMIT", 2500, 1, 9_999),
    )

"""Feature flags: Microsoft's ``featuremanagement`` over a JSON file or Azure App Configuration.

Flags gate commands (``CommandSpec.flag``) and act as permissions without server-admin
rights. They use the ``feature_management`` schema::

    {"feature_management": {"feature_flags": [
        {"id": "roll", "enabled": true, "description": "why it exists",
         "conditions": {"client_filters": [{"name": "Microsoft.Targeting", "parameters": {"Audience": {
             "Users": ["<user id>"],
             "Groups": [{"Name": "guild:<guild id>", "RolloutPercentage": 100},
                        {"Name": "role:<role id>", "RolloutPercentage": 50}],
             "DefaultRolloutPercentage": 0,
             "Exclusion": {"Users": ["<user id>"], "Groups": ["role:<role id>"]}}}}]}}]}}

JSON has no comments, so each flag may carry a ``description`` (the schema allows it and
the library ignores it). The targeting context of a message is its author: user id =
the author's snowflake, groups = ``guild:<guild id>`` and ``role:<role id>`` for each of
the author's roles. Percentages are deterministic per user (the library hashes user id
and flag name). A flag that does not exist is off (logged once at warning).

Sources (:func:`load_flag_source`):
- ``FEATURE_FLAGS_FILE`` (default feature_flags.example.json): re-read when its mtime or
  size changes, checked at most every :data:`FILE_CHECK_INTERVAL_S` seconds, so edits
  apply without a restart; a broken edit keeps the last good flags (logged).
- ``AZURE_APPCONFIG_ENDPOINT``: Azure App Configuration with the managed identity
  (DefaultAzureCredential); ``provider.refresh()`` on each evaluation, which the provider
  rate-limits itself (:data:`APPCONFIG_REFRESH_INTERVAL_S`). ``feature_flag_refresh_enabled``
  watches the flags themselves, so no sentinel key (``refresh_on``) is needed.

Each evaluation adds a ``feature_flag.evaluation`` event to the current span (the
wrapper's ``feature_flags`` span) per the OpenTelemetry feature-flag conventions.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from featuremanagement import FeatureManager, TargetingContext
from opentelemetry import trace
from opentelemetry.util.types import AttributeValue

from function_runtime.context import FlagSource
from shared.envelope import Envelope
from shared.settings import Settings

_log = logging.getLogger(__name__)

PROVIDER_NAME = "featuremanagement"
EVENT_NAME = "feature_flag.evaluation"
FILE_CHECK_INTERVAL_S = 3.0
APPCONFIG_REFRESH_INTERVAL_S = 30
APPCONFIG_STARTUP_TIMEOUT_S = 15
APPCONFIG_RETRY_AFTER_S = 60.0  # after a failed first load, fail fast until then

Config = Mapping[str, Any]


class ConfigSource(Protocol):
    """Where the ``feature_management`` configuration comes from; ``current()`` may refresh."""

    def current(self) -> Config: ...


def targeting_context(envelope: Envelope) -> TargetingContext:
    groups = [f"guild:{envelope.ids.guild}"] if envelope.ids.guild else []
    groups += [f"role:{role}" for role in envelope.roles]
    return TargetingContext(user_id=envelope.ids.author, groups=groups)


class FileConfig:
    """A ``feature_management`` JSON file, re-read when it changes."""

    def __init__(
        self, path: Path, *, check_interval_s: float = FILE_CHECK_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._path = path
        self._interval = check_interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._config: Config = {}
        self._signature: tuple[int, int] | None = None
        self._checked_at: float | None = None

    def current(self) -> Config:
        with self._lock:
            now = self._clock()
            if self._checked_at is None or now - self._checked_at >= self._interval:
                self._checked_at = now
                self._reload_if_changed()
            return self._config

    def _reload_if_changed(self) -> None:
        try:
            stat = self._path.stat()
        except OSError:
            if self._signature != (-1, -1):
                _log.warning("feature flags file %s not found: every flag is off", self._path)
                self._signature, self._config = (-1, -1), {}
            return
        signature = (stat.st_mtime_ns, stat.st_size)
        if signature == self._signature:
            return
        self._signature = signature
        try:
            doc = json.loads(self._path.read_text(encoding="utf-8"))
            if not isinstance(doc, dict) or not isinstance(doc.get("feature_management", {}), dict):
                raise ValueError("expected an object with a 'feature_management' object")
        except (OSError, ValueError) as exc:
            _log.error("feature flags file %s unreadable (%s); keeping the previous flags", self._path, exc)
            return
        _log.info("feature flags loaded from %s", self._path)
        self._config = doc


class AppConfig:
    """Azure App Configuration, loaded on first use with the managed identity, then refreshed."""

    def __init__(self, endpoint: str, *, loader: Callable[[str], Any] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._endpoint = endpoint
        self._loader = loader or _load_app_configuration
        self._clock = clock
        self._lock = threading.Lock()
        self._provider: Any = None
        self._failed_at: float | None = None

    def current(self) -> Config:
        with self._lock:
            if self._provider is None:
                if self._failed_at is not None and self._clock() - self._failed_at < APPCONFIG_RETRY_AFTER_S:
                    raise RuntimeError("Azure App Configuration unavailable (recent load failed)")
                try:
                    self._provider = self._loader(self._endpoint)
                except Exception:
                    self._failed_at = self._clock()
                    raise
            else:
                self._provider.refresh()  # no-op until refresh_interval has passed
            return self._provider


def _load_app_configuration(endpoint: str) -> Any:
    # Imported only here: local runs never pay for (or need) the Azure SDKs.
    from azure.appconfiguration.provider import SettingSelector, load
    from azure.identity import DefaultAzureCredential

    def on_refresh_error(exc: Exception) -> None:
        _log.warning("feature flag refresh from App Configuration failed; keeping the last flags: %s", exc)

    return load(
        endpoint=endpoint,
        credential=DefaultAzureCredential(),
        feature_flag_enabled=True,
        feature_flag_refresh_enabled=True,
        refresh_interval=APPCONFIG_REFRESH_INTERVAL_S,
        on_refresh_error=on_refresh_error,
        startup_timeout=APPCONFIG_STARTUP_TIMEOUT_S,
        # Only the flags are used: without a narrow selector the provider also loads every
        # unlabelled key-value in the store on the first invocation.
        selects=[SettingSelector(key_filter="discord-bot:*")],
        # A refresh runs inside an invocation: bound it (azure-core's read timeout is 300 s).
        connection_timeout=5,
        read_timeout=10,
    )


class FeatureFlags(FlagSource):
    """Evaluates flags for a message's author with ``featuremanagement`` and traces each result."""

    def __init__(self, source: ConfigSource) -> None:
        self._source = source
        self._lock = threading.Lock()
        self._manager: FeatureManager | None = None
        self._manager_config: Config | None = None
        self._warned: set[str] = set()

    def _current_manager(self) -> FeatureManager:
        config = self._source.current()
        with self._lock:
            # A reloaded file is a new object; App Configuration's provider mutates in place and
            # the manager notices that itself (it compares the feature_management object).
            if self._manager is None or config is not self._manager_config:
                self._manager, self._manager_config = FeatureManager(config), config
            return self._manager

    def evaluate(self, names: list[str], envelope: Envelope) -> dict[str, bool]:
        manager = self._current_manager()
        known = set(manager.list_feature_flag_names())
        target = targeting_context(envelope)
        span = trace.get_current_span()
        results: dict[str, bool] = {}
        for name in names:
            attrs: dict[str, AttributeValue] = {
                "feature_flag.key": name,
                "feature_flag.provider.name": PROVIDER_NAME,
                "feature_flag.context.id": target.user_id,
            }
            results[name] = self._evaluate_one(manager, name, known, target, attrs)
            attrs["feature_flag.result.value"] = results[name]
            span.add_event(EVENT_NAME, attrs)
        return results

    def _evaluate_one(
        self, manager: FeatureManager, name: str, known: set[str], target: TargetingContext,
        attrs: dict[str, AttributeValue],
    ) -> bool:
        if name not in known:
            self._warn_once(name)
            attrs.update({"error.type": "flag_not_found", "feature_flag.result.reason": "error"})
            return False
        try:
            # a TargetingContext is accepted at runtime (and documented); the stubs only list str
            return bool(manager.is_enabled(name, target))  # type: ignore[call-overload]
        except Exception as exc:  # a malformed flag is off; the others still evaluate
            _log.exception("feature flag %r could not be evaluated; treating it as off", name)
            attrs.update({"error.type": type(exc).__name__, "feature_flag.result.reason": "error"})
            return False

    def _warn_once(self, name: str) -> None:
        with self._lock:
            if name in self._warned:
                return
            self._warned.add(name)
        _log.warning("feature flag %r is not defined: treating it as off", name)


def load_flag_source(settings: Settings) -> FlagSource:
    """App Configuration when AZURE_APPCONFIG_ENDPOINT is set, else the flags file."""
    if settings.appconfig_endpoint:
        _log.info("feature flags from Azure App Configuration %s", settings.appconfig_endpoint)
        return FeatureFlags(AppConfig(settings.appconfig_endpoint))
    return FeatureFlags(FileConfig(settings.feature_flags_file))

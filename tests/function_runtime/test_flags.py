"""Feature flags: featuremanagement targeting over a JSON file (re-read on edit) or App Configuration."""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider

from function_runtime.flags import EVENT_NAME, AppConfig, FeatureFlags, FileConfig, load_flag_source
from shared.envelope import Envelope, Ids
from shared.settings import DEFAULT_FLAGS_FILE, load_settings


def envelope(author: str = "111", guild: str | None = "222", roles: tuple[str, ...] = ()) -> Envelope:
    return Envelope(kind="message", command="roll", args="", ids=Ids(message="1", channel="2", author=author,
                    guild=guild), author_name="someone", received_at=datetime.now(UTC), roles=roles)


def targeting(audience: dict[str, Any], *, enabled: bool = True) -> dict[str, Any]:
    return {"enabled": enabled, "conditions": {"client_filters": [
        {"name": "Microsoft.Targeting", "parameters": {"Audience": {"DefaultRolloutPercentage": 0, **audience}}}]}}


def config(**flags: dict[str, Any]) -> dict[str, Any]:
    return {"feature_management": {"feature_flags": [{"id": name, **flag} for name, flag in flags.items()]}}


def write(path: Path, doc: dict[str, Any], mtime_ns: int | None = None) -> None:
    path.write_text(json.dumps(doc), encoding="utf-8")
    if mtime_ns is not None:  # explicit, so a rewrite within the filesystem's mtime granularity still shows
        os.utime(path, ns=(mtime_ns, mtime_ns))


def file_flags(tmp_path: Path, doc: dict[str, Any]) -> FeatureFlags:
    path = tmp_path / "flags.json"
    write(path, doc)
    return FeatureFlags(FileConfig(path, check_interval_s=0))


def test_users_groups_and_roles(tmp_path: Path) -> None:
    flags = file_flags(tmp_path, config(
        by_user=targeting({"Users": ["111"]}),
        by_guild=targeting({"Groups": [{"Name": "guild:222", "RolloutPercentage": 100}]}),
        by_role=targeting({"Groups": [{"Name": "role:333", "RolloutPercentage": 100}]}),
    ))
    names = ["by_user", "by_guild", "by_role"]
    assert flags.evaluate(names, envelope()) == {"by_user": True, "by_guild": True, "by_role": False}
    assert flags.evaluate(names, envelope(author="999", guild="555", roles=("444", "333"))) == {
        "by_user": False, "by_guild": False, "by_role": True}
    assert flags.evaluate(names, envelope(author="999", guild=None)) == dict.fromkeys(names, False)


def test_exclusions_win(tmp_path: Path) -> None:
    flags = file_flags(tmp_path, config(roll=targeting({
        "Users": ["111"], "DefaultRolloutPercentage": 100,
        "Exclusion": {"Users": ["666"], "Groups": ["role:13", "guild:777"]}})))
    assert flags.evaluate(["roll"], envelope(author="123")) == {"roll": True}
    assert flags.evaluate(["roll"], envelope(author="666")) == {"roll": False}
    assert flags.evaluate(["roll"], envelope(author="111", roles=("13",))) == {"roll": False}
    assert flags.evaluate(["roll"], envelope(author="123", guild="777")) == {"roll": False}


def test_disabled_and_unconditional_flags(tmp_path: Path) -> None:
    flags = file_flags(tmp_path, config(off=targeting({"Users": ["111"]}, enabled=False), on={"enabled": True}))
    assert flags.evaluate(["off", "on"], envelope()) == {"off": False, "on": True}


def test_rollout_percentage_is_deterministic_per_user(tmp_path: Path) -> None:
    flags = file_flags(tmp_path, config(
        half=targeting({"DefaultRolloutPercentage": 50}),
        half_of_guild=targeting({"Groups": [{"Name": "guild:222", "RolloutPercentage": 50}]}),
    ))
    users = [str(100000000000000000 + i * 7919) for i in range(200)]
    first = [flags.evaluate(["half", "half_of_guild"], envelope(author=u)) for u in users]
    again = [flags.evaluate(["half", "half_of_guild"], envelope(author=u)) for u in users]
    assert first == again
    for key in ("half", "half_of_guild"):
        share = sum(r[key] for r in first) / len(users)
        assert 0.3 < share < 0.7, (key, share)
    outside = [flags.evaluate(["half_of_guild"], envelope(author=u, guild="999")) for u in users]
    assert not any(r["half_of_guild"] for r in outside)


def test_missing_flag_is_off_and_warned_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    flags = file_flags(tmp_path, config(roll={"enabled": True}))
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            assert flags.evaluate(["nope", "roll"], envelope()) == {"nope": False, "roll": True}
    warnings = [r for r in caplog.records if "nope" in r.getMessage()]
    assert len(warnings) == 1


def test_a_malformed_flag_is_off_and_the_others_still_evaluate(tmp_path: Path) -> None:
    bad = {"enabled": True, "conditions": {"client_filters": [{"name": "Microsoft.Targeting", "parameters": {
        "Audience": {"DefaultRolloutPercentage": 300}}}]}}
    flags = file_flags(tmp_path, config(bad=bad, good={"enabled": True}))
    assert flags.evaluate(["bad", "good"], envelope()) == {"bad": False, "good": True}


def test_file_edits_apply_without_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    write(path, config(roll={"enabled": False}), mtime_ns=1_000_000_000_000_000_000)
    flags = FeatureFlags(FileConfig(path, check_interval_s=0))
    assert flags.evaluate(["roll"], envelope()) == {"roll": False}
    write(path, config(roll={"enabled": True}), mtime_ns=1_000_000_001_000_000_000)
    assert flags.evaluate(["roll"], envelope()) == {"roll": True}
    path.write_text("{ broken", encoding="utf-8")  # a half-saved edit keeps the last good flags
    os.utime(path, ns=(1_000_000_002_000_000_000,) * 2)
    assert flags.evaluate(["roll"], envelope()) == {"roll": True}
    path.unlink()
    assert flags.evaluate(["roll"], envelope()) == {"roll": False}


def test_file_is_checked_at_most_every_interval(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    write(path, config(roll={"enabled": False}), mtime_ns=1_000_000_000_000_000_000)
    now = [100.0]
    flags = FeatureFlags(FileConfig(path, check_interval_s=3.0, clock=lambda: now[0]))
    assert flags.evaluate(["roll"], envelope()) == {"roll": False}
    write(path, config(roll={"enabled": True}), mtime_ns=1_000_000_001_000_000_000)
    now[0] += 1.0
    assert flags.evaluate(["roll"], envelope()) == {"roll": False}  # not looked at yet
    now[0] += 2.0
    assert flags.evaluate(["roll"], envelope()) == {"roll": True}


def test_evaluations_are_span_events(tmp_path: Path) -> None:
    flags = file_flags(tmp_path, config(roll={"enabled": True}, relationships=targeting({"Users": ["999"]})))
    # A private SDK provider: the events land on whatever span is current, and reading them from
    # the span itself does not depend on which provider other tests left installed globally.
    with TracerProvider().get_tracer(__name__).start_as_current_span("feature_flags") as span:
        flags.evaluate(["roll", "relationships", "ghost"], envelope(author="111"))
    assert isinstance(span, ReadableSpan)
    evaluations = [dict(e.attributes or {}) for e in span.events if e.name == EVENT_NAME]
    events = {str(a["feature_flag.key"]): a for a in evaluations}
    assert len(evaluations) == 3
    common = {"feature_flag.provider.name": "featuremanagement", "feature_flag.context.id": "111"}
    assert events["roll"] == {**common, "feature_flag.key": "roll", "feature_flag.result.value": True}
    assert events["relationships"] == {**common, "feature_flag.key": "relationships",
                                       "feature_flag.result.value": False}
    assert events["ghost"]["feature_flag.result.value"] is False
    assert events["ghost"]["error.type"] == "flag_not_found"


class FakeProvider(dict[str, Any]):
    """Stands in for azure-appconfiguration-provider's provider: a Mapping with refresh()."""

    def __init__(self, doc: dict[str, Any]) -> None:
        super().__init__(doc)
        self.refreshes = 0
        self.next: dict[str, Any] | None = None

    def refresh(self) -> None:
        self.refreshes += 1
        if self.next is not None:
            self.update(self.next)  # the provider swaps in new objects, as the real one does


def test_app_configuration_loads_once_then_refreshes() -> None:
    provider = FakeProvider(config(roll={"enabled": False}))
    loads: list[str] = []

    def loader(endpoint: str) -> FakeProvider:
        loads.append(endpoint)
        return provider

    flags = FeatureFlags(AppConfig("https://example.azconfig.io", loader=loader))
    assert loads == []  # nothing happens until the first evaluation
    assert flags.evaluate(["roll"], envelope()) == {"roll": False}
    provider.next = config(roll={"enabled": True})
    assert flags.evaluate(["roll"], envelope()) == {"roll": True}
    assert loads == ["https://example.azconfig.io"] and provider.refreshes == 1


def test_app_configuration_failure_backs_off() -> None:
    attempts: list[str] = []
    now = [0.0]

    def loader(endpoint: str) -> FakeProvider:
        attempts.append(endpoint)
        raise ConnectionError("no route to App Configuration")

    flags = FeatureFlags(AppConfig("https://example.azconfig.io", loader=loader, clock=lambda: now[0]))
    with pytest.raises(ConnectionError):
        flags.evaluate(["roll"], envelope())
    with pytest.raises(RuntimeError, match="recent load failed"):
        flags.evaluate(["roll"], envelope())
    now[0] += 120
    with pytest.raises(ConnectionError):
        flags.evaluate(["roll"], envelope())
    assert len(attempts) == 2


def test_load_flag_source_picks_the_source(tmp_path: Path) -> None:
    local = load_flag_source(load_settings(environ={}, require_storage=False, root=tmp_path))
    assert isinstance(local, FeatureFlags) and isinstance(local._source, FileConfig)
    azure = load_flag_source(load_settings(environ={"AZURE_APPCONFIG_ENDPOINT": "https://x.azconfig.io"},
                                           require_storage=False, root=tmp_path))
    assert isinstance(azure, FeatureFlags) and isinstance(azure._source, AppConfig)


def test_the_example_file_works_out_of_the_box() -> None:
    flags = FeatureFlags(FileConfig(DEFAULT_FLAGS_FILE, check_interval_s=0))
    names = ["roll", "relationships"]
    # any emulator user in any guild: roll on, relationships off
    assert flags.evaluate(names, envelope(author="4242", guild="4343")) == {"roll": True, "relationships": False}
    # the documented examples
    assert flags.evaluate(names, envelope(author="100000000000000001")) == {"roll": False, "relationships": False}
    assert flags.evaluate(names, envelope(roles=("100000000000000002",)))["roll"] is False
    assert flags.evaluate(names, envelope(author="100000000000000003"))["relationships"] is True
    assert flags.evaluate(names, envelope(guild="100000000000000004"))["relationships"] is True
    for flag in json.loads(DEFAULT_FLAGS_FILE.read_text())["feature_management"]["feature_flags"]:
        assert flag["description"]

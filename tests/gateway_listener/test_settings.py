"""DISCORD_SHARD_COUNT / DISCORD_SHARD_IDS / LISTENER_HEALTH_*: parsed once, bad values named."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway_listener.settings import (
    ListenerSettings,
    ShardPlan,
    format_shard_ids,
    load_listener_settings,
    parse_shard_ids,
)
from shared.errors import SettingsError

NOWHERE = Path("/nonexistent")


def _load(**env: str) -> ListenerSettings:
    return load_listener_settings(env, root=NOWHERE)


def test_defaults_are_one_connection_and_no_health_server() -> None:
    got = _load()
    assert got.shards == ShardPlan(count=1, ids=None) and got.shards.resolve(7) == (1, (0,))
    assert got.health_port is None and got.health_host == "127.0.0.1"


@pytest.mark.parametrize(("count", "ids", "recommended", "expected"), [
    ("4", "", 1, (4, (0, 1, 2, 3))),
    ("8", "0-3,7", 1, (8, (0, 1, 2, 3, 7))),
    ("8", " 5 , 1-2 ", 1, (8, (1, 2, 5))),
    ("auto", "", 3, (3, (0, 1, 2))),
    ("AUTO", "1", 2, (2, (1,))),
])
def test_shard_plans(count: str, ids: str, recommended: int, expected: tuple[int, tuple[int, ...]]) -> None:
    env = {"DISCORD_SHARD_COUNT": count, **({"DISCORD_SHARD_IDS": ids} if ids else {})}
    assert _load(**env).shards.resolve(recommended) == expected


@pytest.mark.parametrize(("env", "message"), [
    ({"DISCORD_SHARD_COUNT": "0"}, r"^DISCORD_SHARD_COUNT: expected 'auto' or an integer"),
    ({"DISCORD_SHARD_COUNT": "-2"}, r"^DISCORD_SHARD_COUNT: "),
    ({"DISCORD_SHARD_COUNT": "2.5"}, r"^DISCORD_SHARD_COUNT: "),
    ({"DISCORD_SHARD_COUNT": "2", "DISCORD_SHARD_IDS": "2"}, r"^DISCORD_SHARD_IDS: 2 is not a shard of 2"),
    ({"DISCORD_SHARD_COUNT": "4", "DISCORD_SHARD_IDS": "3-1"}, r"^DISCORD_SHARD_IDS: empty range '3-1'"),
    ({"DISCORD_SHARD_COUNT": "4", "DISCORD_SHARD_IDS": "0,,1"}, r"^DISCORD_SHARD_IDS: expected ids and ranges"),
    ({"DISCORD_SHARD_COUNT": "4", "DISCORD_SHARD_IDS": "one"}, r"^DISCORD_SHARD_IDS: expected ids and ranges"),
    ({"DISCORD_SHARD_COUNT": "4", "DISCORD_SHARD_IDS": "0-1,1"}, r"^DISCORD_SHARD_IDS: an id appears twice"),
    ({"DISCORD_SHARD_IDS": "0"}, r"^DISCORD_SHARD_IDS: needs DISCORD_SHARD_COUNT"),
    ({"LISTENER_HEALTH_PORT": "0"}, r"^LISTENER_HEALTH_PORT: expected a TCP port"),
    ({"LISTENER_HEALTH_PORT": "8080", "LISTENER_HEALTH_HOST": "http://x/"}, r"^LISTENER_HEALTH_HOST: "),
])
def test_bad_values_name_the_setting(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        _load(**env)


def test_auto_with_ids_is_checked_against_discords_count() -> None:
    plan = _load(DISCORD_SHARD_COUNT="auto", DISCORD_SHARD_IDS="3").shards
    assert plan.resolve(4) == (4, (3,))
    with pytest.raises(SettingsError, match=r"^DISCORD_SHARD_IDS: 3 is not a shard of 2"):
        plan.resolve(2)


def test_health_settings() -> None:
    got = _load(LISTENER_HEALTH_PORT="8081", LISTENER_HEALTH_HOST="0.0.0.0")
    assert (got.health_host, got.health_port) == ("0.0.0.0", 8081)


@pytest.mark.parametrize("ids", [(0,), (0, 1, 2, 3, 7), (1, 3, 5), (4, 5, 9, 10, 11)])
def test_shard_ids_format_round_trips(ids: tuple[int, ...]) -> None:
    assert parse_shard_ids(format_shard_ids(ids)) == ids

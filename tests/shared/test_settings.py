from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.errors import SettingsError
from shared.settings import load_settings

STORAGE = {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}


def test_defaults_match_design(tmp_path: Path) -> None:
    s = load_settings(STORAGE, root=tmp_path)
    assert s.discord_api_base_url == "https://discord.com/api/v10"
    assert s.bot_prefix == "!"
    assert s.catfact_api_url == "https://catfact.ninja/fact"
    assert s.discord_gateway_url is None and s.discord_token is None
    assert s.storage.is_azurite and not s.exporters_configured
    assert s.discord_public_key is None and s.functions_http_port == 7071


def test_public_key_is_read_as_bytes_and_never_echoed(tmp_path: Path) -> None:
    s = load_settings({**STORAGE, "DISCORD_PUBLIC_KEY": " " + "AB" * 32 + " "}, root=tmp_path)
    assert s.discord_public_key == bytes([0xAB]) * 32
    with pytest.raises(SettingsError) as info:
        load_settings({**STORAGE, "DISCORD_PUBLIC_KEY": "Bot MTIz.secret"}, root=tmp_path)
    assert "MTIz" not in str(info.value)


def test_environment_wins_over_local_settings(tmp_path: Path) -> None:
    (tmp_path / "local.settings.json").write_text(json.dumps(
        {"IsEncrypted": False, "Values": {"BOT_PREFIX": "?", "CATFACT_API_URL": "http://127.0.0.1:1/fact",
                                          "AzureWebJobsStorage": "UseDevelopmentStorage=true"}}))
    s = load_settings({"BOT_PREFIX": "$"}, root=tmp_path)
    assert s.bot_prefix == "$"
    assert s.catfact_api_url == "http://127.0.0.1:1/fact"


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({}, "AzureWebJobsStorage"),
        ({**STORAGE, "DISCORD_API_BASE_URL": "discord.com/api"}, "DISCORD_API_BASE_URL"),
        ({**STORAGE, "OTEL_TRACES_SAMPLER_ARG": "lots"}, "OTEL_TRACES_SAMPLER_ARG"),
        ({**STORAGE, "OTEL_TRACES_SAMPLER_ARG": "2"}, "OTEL_TRACES_SAMPLER_ARG"),
        ({**STORAGE, "BOT_PREFIX": "a b"}, "BOT_PREFIX"),
        ({"AzureWebJobsStorage": "garbage"}, "AzureWebJobsStorage"),
        ({**STORAGE, "DISCORD_PUBLIC_KEY": "ab" * 31}, "DISCORD_PUBLIC_KEY"),  # 31 bytes
        ({**STORAGE, "DISCORD_PUBLIC_KEY": "zz" * 32}, "DISCORD_PUBLIC_KEY"),  # not hex
        ({**STORAGE, "DISCORD_PUBLIC_KEY": "Bot MTIz.secret"}, "DISCORD_PUBLIC_KEY"),  # a token pasted by mistake
        ({**STORAGE, "FUNCTIONS_HTTP_PORT": "70000"}, "FUNCTIONS_HTTP_PORT"),
        ({**STORAGE, "FUNCTIONS_HTTP_PORT": "-1"}, "FUNCTIONS_HTTP_PORT"),
    ],
)
def test_bad_setting_names_itself_in_one_line(tmp_path: Path, env: dict[str, str], name: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(env, root=tmp_path)
    assert str(info.value).startswith(name) and "\n" not in str(info.value)


def test_malformed_local_settings_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "local.settings.json").write_text("{nope")
    with pytest.raises(SettingsError, match=r"local\.settings\.json"):
        load_settings(STORAGE, root=tmp_path)


def test_secrets_do_not_show_in_repr(tmp_path: Path) -> None:
    s = load_settings({**STORAGE, "DISCORD_TOKEN": "tok-SECRET", "HONEYCOMB_API_KEY": "hc-SECRET",
                       "APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=ik-SECRET"}, root=tmp_path)
    assert "SECRET" not in repr(s)
    assert s.discord_token is not None and s.discord_token.reveal() == "tok-SECRET"


def test_identity_based_storage_accepted(tmp_path: Path) -> None:
    s = load_settings({"AzureWebJobsStorage__queueServiceUri": "https://acct.queue.core.windows.net"}, root=tmp_path)
    assert s.storage.connection_string is None
    assert s.storage.queue_service_uri == "https://acct.queue.core.windows.net"


def test_secret_hides_in_str_and_format_but_reveals_on_request() -> None:
    from shared.settings import Secret

    s = Secret("tok-SECRET")
    assert "SECRET" not in f"{s} {s!s} {s!r}" + "%s" % (s,) + str(s)  # noqa: UP031 - %-formatting on purpose
    assert s.reveal() == "tok-SECRET"


def test_bad_url_error_does_not_echo_the_value(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings({**STORAGE, "AZURE_APPCONFIG_ENDPOINT": "Endpoint=x;Id=y;Secret=hush"}, root=tmp_path)
    assert "hush" not in str(info.value) and str(info.value).startswith("AZURE_APPCONFIG_ENDPOINT")


def test_connection_string_without_a_key_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="AccountKey"):
        load_settings({"AzureWebJobsStorage": "DefaultEndpointsProtocol=https;AccountName=acct"}, root=tmp_path)

"""Scaling groups from the app's trigger types, as Flex Consumption forms them."""

from __future__ import annotations

import azure.functions as func
import pytest

from localdev.scale_controller.groups import index_functions, parse_always_ready, scale_groups, single_group
from shared.errors import SettingsError


def _app() -> func.FunctionApp:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
    for name in ("ping", "catfact"):
        trigger = app.queue_trigger(arg_name="msg", queue_name=f"cmd-{name}", connection="AzureWebJobsStorage")
        app.function_name(name)(trigger(lambda msg: None))
    for name in ("interactions", "health"):  # names say nothing: the trigger type decides
        app.function_name(name)(app.route(route=name)(lambda req: func.HttpResponse("ok")))
    return app


def test_each_queue_function_scales_alone_and_http_functions_share_one_group() -> None:
    groups = scale_groups(index_functions(_app()))
    assert [(g.name, g.functions, g.queues) for g in groups] == [
        ("function:ping", ("ping",), ("cmd-ping",)),
        ("function:catfact", ("catfact",), ("cmd-catfact",)),
        ("http", ("interactions", "health"), ()),
    ]
    assert [g.label for g in groups] == ["ping", "catfact", "http"]


def test_single_host_is_one_group_of_everything() -> None:
    [group] = single_group(index_functions(_app()))
    assert group.functions == ("ping", "catfact", "interactions", "health")
    assert group.queues == ("cmd-ping", "cmd-catfact")


def test_always_ready_accepts_labels_and_iac_names() -> None:
    groups = scale_groups(index_functions(_app()))
    assert parse_always_ready("ping=1, function:catfact=2,http=1", groups) == {
        "function:ping": 1, "function:catfact": 2, "http": 1}
    assert parse_always_ready("", groups) == {}
    assert parse_always_ready("*=1,ping=2", groups) == {"function:ping": 2, "function:catfact": 1, "http": 1}


@pytest.mark.parametrize(("raw", "message"), [
    ("pong=1", "no scaling group 'pong'"),
    ("ping", "expected NAME=COUNT"),
    ("ping=-1", "expected NAME=COUNT"),
])
def test_always_ready_errors_are_clear(raw: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        parse_always_ready(raw, scale_groups(index_functions(_app())))

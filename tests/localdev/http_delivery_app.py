"""The gateway-less bot for tests/localdev/test_http_delivery.py, run by the host's worker process:
the ``interactions`` endpoint and the ``roll`` and ``ping`` commands, every feature flag on.

Settings come from the worker's environment (the emulator's URL, token and public key, the storage,
``LOCAL_TRACE_FILE`` for the spans the test reads back).
"""

from __future__ import annotations

import time

import azure.functions as func
import requests

from command_functions import ping, roll
from function_runtime import interactions, startup
from function_runtime import runtime as runtime_module
from function_runtime.discord_rest import DiscordRest
from function_runtime.interactions import InteractionsEndpoint
from function_runtime.queue_sender import make_sender
from function_runtime.runtime import Runtime, _queue_poison_sink
from function_runtime.signature import Verifier
from function_runtime.startup import StartupMarks
from function_runtime.triggers import command_blueprint
from shared import telemetry
from shared.envelope import Envelope


class AllFlagsOn:
    def evaluate(self, names: list[str], envelope: Envelope) -> dict[str, bool]:
        return dict.fromkeys(names, True)


settings = startup.startup()  # settings and telemetry, from the environment
telemetry.instrument_requests()  # CLIENT spans for the Discord calls made with the plain Session below
assert settings.discord_public_key is not None, "DISCORD_PUBLIC_KEY is required"
marks = StartupMarks(process_start_ns=time.time_ns())  # no cold start: the test measures delivery
runtime_module.use_runtime(Runtime(
    settings=settings, rest=DiscordRest(settings.discord_api_base_url, settings.discord_token),
    http=requests.Session(), flags=AllFlagsOn(), poison=_queue_poison_sink(settings), marks=marks))
interactions.use_endpoint(InteractionsEndpoint(Verifier.from_public_key(settings.discord_public_key),
                                               make_sender(settings.storage), marks=marks))

app = func.FunctionApp()
app.register_functions(interactions.bp)
for module in (roll, ping):
    app.register_functions(command_blueprint(module.SPEC, module.handle))

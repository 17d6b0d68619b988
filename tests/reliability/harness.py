"""The bot's real processes for fault tests: emulator + Azurite + functions host + listener.

A :class:`Stack` starts the children on demand (each test picks what it needs and may
kill, stop or restart them) and stops every child it started, by PID, at the end.
Queues are the real ``cmd-<command>`` names on the session's Azurite, emptied first.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueClient

from localdev.azurite import Azurite
from localdev.discord_emulator import EmulatorThread
from localdev.stack import Child, child_env
from localdev.traces import load_traces
from shared.envelope import Envelope, Ids, encode
from shared.registry import COMMANDS, poison_queue_name

T = TypeVar("T")
DATA = Path(__file__).resolve().parent.parent / "data"
CREATE_MESSAGE = "POST /channels/{channel_id}/messages"
# Fast polling, quick redelivery, few retries: the same rules as host.json, on a test clock.
FAST_HOST_JSON = {"extensions": {"queues": {
    "maxPollingInterval": "00:00:00.200", "visibilityTimeout": "00:00:00", "maxDequeueCount": 3,
    "batchSize": 16, "newBatchThreshold": 8, "messageEncoding": "base64"}}}


def wait_until[T](check: Callable[[], T], timeout: float, what: str, interval: float = 0.1) -> T:
    """Poll ``check`` until it returns something truthy; AssertionError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def queue(connection_string: str, name: str, *, raw: bool = False) -> QueueClient:
    """A sync client; base64 text like the producers (``raw``: no encoding, see exactly what is stored)."""
    from azure.storage.queue import BinaryBase64DecodePolicy, TextBase64EncodePolicy

    if raw:
        return QueueClient.from_connection_string(connection_string, name)
    return QueueClient.from_connection_string(
        connection_string, name,
        message_encode_policy=TextBase64EncodePolicy(), message_decode_policy=BinaryBase64DecodePolicy(),
    )  # fmt: skip


def peek_texts(connection_string: str, name: str) -> list[str]:
    """Up to 32 visible messages, base64 removed (the host's poison copies and the wrapper's documents)."""
    try:
        stored = [str(m.content) for m in queue(connection_string, name, raw=True).peek_messages(max_messages=32)]
    except ResourceNotFoundError:
        return []
    out = []
    for text in stored:
        try:
            out.append(base64.b64decode(text, validate=True).decode("utf-8"))
        except ValueError:
            out.append(text)
    return out


def poison_documents(connection_string: str, command: str) -> list[dict[str, Any]]:
    """The invocation wrapper's poison documents (JSON with a reason) in ``cmd-<command>-poison``."""
    out = []
    for text in peek_texts(connection_string, poison_queue_name(COMMANDS[command].queue)):
        try:
            doc = json.loads(text)
        except ValueError:
            continue  # the host's own poison entries are the raw (base64) message
        if isinstance(doc, dict) and "reason" in doc:
            out.append(doc)
    return out


def approximate_count(connection_string: str, name: str) -> int:
    try:
        props = queue(connection_string, name).get_queue_properties()
    except ResourceNotFoundError:
        return 0
    return int(props.approximate_message_count or 0)


@dataclass
class Stack:
    azurite: Azurite
    emulator: EmulatorThread
    tmp: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    children: list[Child] = field(default_factory=list)

    @property
    def cs(self) -> str:
        return self.azurite.connection_string

    @property
    def trace_file(self) -> Path:
        return self.tmp / "traces.jsonl"

    def env(self, **overrides: str) -> dict[str, str]:
        base = child_env({
            "AzureWebJobsStorage": self.cs,
            "DISCORD_TOKEN": self.emulator.token,
            "DISCORD_API_BASE_URL": self.emulator.api_url,
            "DISCORD_GATEWAY_URL": self.emulator.gateway_url,
            "LOCAL_TRACE_FILE": str(self.trace_file),
            "FEATURE_FLAGS_FILE": str(DATA / "flags_all_on.json"),
            "CATFACT_API_URL": "http://127.0.0.1:9/unreachable",
            "SCRYFALL_API_URL": "http://127.0.0.1:9/unreachable",
            "RELATIONSHIPS_API_URL": "http://127.0.0.1:9/unreachable",
            # Any free port for the app's HTTP trigger: a fixed 7071 collides with any other host running.
            "FUNCTIONS_HTTP_PORT": "0",
            **self.extra_env,
        })
        for key in [k for k in base if k.startswith(("OTEL_", "APPLICATIONINSIGHTS_", "HONEYCOMB_"))]:
            if key not in overrides and key not in self.extra_env:
                del base[key]  # nothing from the developer's shell leaks into a test's telemetry
        base.update(overrides)
        return base

    def host_json(self, **queues: Any) -> Path:
        doc = json.loads(json.dumps(FAST_HOST_JSON))
        doc["extensions"]["queues"].update(queues)
        path = self.tmp / f"host-{len(list(self.tmp.glob('host-*.json')))}.json"
        path.write_text(json.dumps(doc))
        return path

    def start_host(self, *, args: Sequence[str] = (), host_json: Path | None = None, log: str = "host.log",
                   env: Mapping[str, str] | None = None) -> Child:
        argv = ["--host-json", str(host_json or self.host_json()), *args]
        child = Child("functions_host", "localdev.functions_host", self.env(**(env or {})), self.tmp / log,
                      args=argv)
        offset = self.log_size(log)
        self.children.append(child.start())
        wait_until(lambda: "Functions host ready" in self.log(log)[offset:] or not child.running, 60, "host ready")
        assert child.running, self.log(log)
        return child

    def start_listener(self, *, log: str = "listener.log", env: Mapping[str, str] | None = None) -> Child:
        identified = len(self.emulator.identify_payloads)
        child = Child("listener", "gateway_listener", self.env(**(env or {})), self.tmp / log)
        self.children.append(child.start())
        wait_until(lambda: len(self.emulator.identify_payloads) > identified or not child.running, 60,
                   "listener IDENTIFY")
        assert child.running, self.log(log)
        wait_until(lambda: "listener ready" in self.log(log), 30, "listener ready")
        return child

    def log(self, name: str) -> str:
        path = self.tmp / name
        return path.read_text(errors="replace") if path.exists() else ""

    def log_size(self, name: str) -> int:
        return len(self.log(name))

    def stop_all(self) -> None:
        for child in reversed(self.children):
            child.stop()

    # -- traffic -------------------------------------------------------------------------------

    def envelope(self, content: str, **over: Any) -> Envelope:
        """An envelope for a real emulator message (so the reply can reference it), as the listener builds it."""
        command, _, args = content.lstrip("!").partition(" ")
        sent = self.emulator.send_message(content)  # no listener running: only the ids are used
        fields: dict[str, Any] = {
            "kind": "message", "command": command, "args": args, "author_name": "you",
            "ids": Ids(message=sent["id"], channel=sent["channel_id"], author=sent["author"]["id"],
                       guild=self.emulator.guild_id),
            "received_at": datetime.now(UTC),
        }
        fields.update(over)
        return Envelope(**fields)

    def enqueue_text(self, command: str, text: str) -> None:
        client = queue(self.cs, COMMANDS[command].queue)
        client.send_message(text)

    def enqueue_raw(self, command: str, body: bytes) -> None:
        """Exactly these bytes as the message body the function sees (base64 on the wire)."""
        client = queue(self.cs, COMMANDS[command].queue, raw=True)
        client.send_message(base64.b64encode(body).decode("ascii"))

    def enqueue(self, env: Envelope) -> str:
        self.enqueue_text(env.command, encode(env))
        return env.ids.message

    def replies_to(self, message_id: str) -> list[dict[str, Any]]:
        return [m for m in self.emulator.bot_messages
                if (m.get("message_reference") or {}).get("message_id") == message_id]

    def wait_reply(self, message_id: str, timeout: float = 30) -> dict[str, Any]:
        return wait_until(lambda: self.replies_to(message_id), timeout, f"a reply to {message_id}")[0]

    def say(self, content: str, timeout: float = 30) -> tuple[dict[str, Any], dict[str, Any]]:
        """Through the gateway (needs a listener): the user's message and the bot's reply to it."""
        sent = self.emulator.send_message(content)
        return sent, self.wait_reply(sent["id"], timeout)

    def traces(self) -> dict[str, list[dict[str, Any]]]:
        return load_traces(self.trace_file) if self.trace_file.exists() else {}

    def process_spans(self, command: str) -> list[dict[str, Any]]:
        name = f"{COMMANDS[command].queue} process"
        return [s for spans in self.traces().values() for s in spans if s["name"] == name]

    def executions(self, command: str, message_id: str | None = None, log: str = "host.log") -> list[str]:
        """The host's "Executed '<fn>' (...)" lines (optionally for one storage message id)."""
        lines = [ln for ln in self.log(log).splitlines() if f"Executed '{command}'" in ln]
        return [ln for ln in lines if message_id is None or f"message={message_id}" in ln]


def reset_queues(connection_string: str, commands: Iterator[str] | Sequence[str] = tuple(COMMANDS)) -> None:
    """Start from empty ``cmd-*`` queues (the session's Azurite is shared with other tests)."""
    for command in commands:
        name = COMMANDS[command].queue
        for qname in (name, poison_queue_name(name)):
            with suppress(ResourceNotFoundError):
                queue(connection_string, qname).delete_queue()


@contextmanager
def running_stack(azurite: Azurite, tmp: Path, *, emulator_kwargs: Mapping[str, Any] | None = None,
                  **extra_env: str) -> Iterator[Stack]:
    if not azurite.running:  # an earlier test's outage must not leak into this one
        azurite.start()
    reset_queues(azurite.connection_string)
    with EmulatorThread(**(emulator_kwargs or {})) as emulator:
        stack = Stack(azurite, emulator, tmp, dict(extra_env))
        try:
            yield stack
        finally:
            stack.stop_all()
            if not azurite.running:
                azurite.start()

"""``!mc <command>``: run a command on the Minecraft server over RCON; its answer is the reply.

``!mc whitelist add|remove <player>`` and ``!mc whitelist list`` need the ``mc`` flag; any
other ``!mc <command>`` (``op``, ``say``, ``list``...) needs ``mc-admin``. The server is
``MINECRAFT_RCON_ADDRESS`` with ``MINECRAFT_RCON_PASSWORD`` (a Key Vault secret on Azure);
unset, the command says it is not configured. The RCON exchange is one CLIENT span,
``minecraft.rcon`` (``server.address``, ``server.port``, ``app.mc.subcommand``).

A refused connection, a wrong password, a server that does not answer within 5 s or an
answer that is not UTF-8 is a clear reply and an error on the ``minecraft.rcon`` span,
never a retry or a poison message: asking again at once would fail the same way.

At most once per Discord message (DESIGN.md "Reliability rules"): a command that changes the
server (anything but :data:`READ_ONLY`) is claimed first in the ``commandruns`` table
(function_runtime/once.py), keyed by the message or interaction id. A redelivered message, or
the same message from two listeners, is answered without sending it again (``app.mc.duplicate``
on the command's span): with the stored answer, or, when the first run died between sending
and storing, by saying so. A failure before the command left (refused, wrong password, no
login answer) releases the claim; after it left (no answer) the claim stays: the server may
have run it. An answer that is not UTF-8 is an answer: stored like any other.
"""

from __future__ import annotations

import logging
import re

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from function_runtime import once, rcon
from function_runtime.context import CommandContext
from function_runtime.errors import ExternalApiError, UsageError
from shared.registry import COMMANDS

SPEC = COMMANDS["mc"]
USER_FLAG, ADMIN_FLAG = "mc", "mc-admin"
WHITELIST_ACTIONS = ("add", "remove", "list")
PLAYER_NAME = re.compile(r"^[A-Za-z0-9_]{1,16}$")  # Java edition names; older accounts may be short
FORMATTING_CODE = re.compile("§.")  # Minecraft's colour/format codes mean nothing on Discord
# Subcommands that only read: sent again on a redelivery, no claim (and no table call) needed.
READ_ONLY = frozenset({"whitelist list", "list", "help", "banlist", "seed"})
CLAIM_WAIT_MARGIN_S = 2.0  # a copy running now is waited for: RCON's deadline plus this

_tracer = trace.get_tracer(__name__)
_log = logging.getLogger(__name__)


def usage(prefix: str) -> str:
    return (f"Usage: `{prefix}mc whitelist add <player>`, `{prefix}mc whitelist remove <player>`, "
            f"`{prefix}mc whitelist list` (flag `{USER_FLAG}`); `{prefix}mc <server command>` (flag `{ADMIN_FLAG}`).")


def parse(args: str, prefix: str = "!") -> tuple[str, str, str]:
    """``"whitelist add Steve"`` -> (subcommand, server command, flag it needs). UsageError otherwise."""
    words = args.split()
    if not words or words[0].lower() in ("help", "?"):
        raise UsageError(usage(prefix))
    if words[0].lower() != "whitelist":
        command = " ".join(words).removeprefix("/")
        return command.split(" ", 1)[0].lower()[:32], command, ADMIN_FLAG
    action = words[1].lower() if len(words) > 1 else ""
    if action not in WHITELIST_ACTIONS or len(words) != (2 if action == "list" else 3):
        raise UsageError(usage(prefix))
    if action == "list":
        return "whitelist list", "whitelist list", USER_FLAG
    player = words[2]
    if not PLAYER_NAME.match(player):
        raise UsageError("A Minecraft player name is 1-16 letters, digits or underscores.")
    return f"whitelist {action}", f"whitelist {action} {player}", USER_FLAG


def handle(ctx: CommandContext) -> str:
    prefix = ctx.settings.bot_prefix
    subcommand, command, flag = parse(ctx.args, prefix)
    if not ctx.flags.get(flag, False):
        return f"Command not allowed: `{prefix}mc {subcommand}` needs the `{flag}` permission."
    address, password = ctx.settings.minecraft_rcon_address, ctx.settings.minecraft_rcon_password
    if address is None or password is None:
        return (f"`{prefix}mc` is not configured: the bot has no Minecraft server "
                "(MINECRAFT_RCON_ADDRESS and MINECRAFT_RCON_PASSWORD).")
    host, port = address
    claim: once.Claim | None = None
    if subcommand not in READ_ONLY:
        got = _claim(ctx, command)
        if isinstance(got, once.PreviousRun):
            return _duplicate_reply(got, command)
        claim = got
    with _tracer.start_as_current_span(
        "minecraft.rcon", kind=SpanKind.CLIENT, record_exception=False, set_status_on_exception=False,
        attributes={"server.address": host, "server.port": port, "app.mc.subcommand": subcommand,
                    "network.transport": "tcp", "rpc.system": "source_rcon"},
    ) as span:
        try:
            answer = rcon.execute(host, port, password.reveal(), command, timeout=rcon.TIMEOUT_S)
        except rcon.RconError as exc:
            span.set_attribute("error.type", exc.kind)
            span.set_status(Status(StatusCode.ERROR, f"{exc.kind}: {exc}"))
            if not exc.command_sent:
                _settle(ctx, claim, None)
                return f"The Minecraft server could not be asked: {exc}."
            span.set_attribute("app.mc.command_sent", True)  # the claim stays "running": not sent twice
            return (f"The command was sent but the Minecraft server's answer was lost: {exc}. "
                    "It may have run: check before sending it again.")
        span.set_attribute("app.mc.response.packets", answer.packets)
        span.set_attribute("app.mc.response.length", len(answer.text))
        text = FORMATTING_CODE.sub("", answer.text).strip() or "(the server answered with nothing)"
        if answer.invalid_utf8:
            span.set_attribute("error.type", "invalid_utf8")
            span.set_status(Status(StatusCode.ERROR, "invalid_utf8: the answer is not valid UTF-8"))
            text = f"The Minecraft server's answer was not valid UTF-8 (unreadable parts shown as \ufffd):\n{text}"
    _settle(ctx, claim, text)
    return text


def _claim(ctx: CommandContext, command: str) -> once.Claim | once.PreviousRun:
    """Claim ``command`` for this Discord message; what the first run left when another claimed it."""
    from azure.core.exceptions import AzureError

    source = ctx.envelope.ids.interaction or ctx.envelope.ids.message
    span = trace.get_current_span()
    wait_s = rcon.TIMEOUT_S + CLAIM_WAIT_MARGIN_S  # a copy running right now: wait for its answer
    try:
        got = once.runs_for(ctx.settings.storage).claim(SPEC.name, source, command, wait_s=wait_s)
    except AzureError as exc:  # without a claim the command is not sent: it could run twice
        _log.warning("mc: claiming %s failed: %s", source, type(exc).__name__)
        raise ExternalApiError("the bot's storage could not be reached, so the command was not sent") from exc
    span.set_attribute("app.mc.duplicate", isinstance(got, once.PreviousRun))
    if isinstance(got, once.PreviousRun):
        span.set_attribute("app.mc.duplicate.state", got.state)
    return got


def _duplicate_reply(previous: once.PreviousRun, command: str) -> str:
    if previous.state == once.DONE:
        return f"Already done for this message (not sent again):\n{previous.answer}"
    return (f"`{command}` was already sent to the Minecraft server for this message and its answer "
            "was lost; it is not sent twice. Check the server before sending it again.")


def _settle(ctx: CommandContext, claim: once.Claim | None, answer: str | None) -> None:
    """Store the answer on the claim (``done``), or release it when the command was not sent (None)."""
    if claim is None:
        return
    from azure.core.exceptions import AzureError

    runs = once.runs_for(ctx.settings.storage)
    try:
        if answer is None:
            runs.release(claim)
        else:
            runs.finish(claim, answer)
    except AzureError as exc:  # the reply still goes out; a redelivery would find the claim "running"
        _log.warning("mc: storing the run %s failed: %s", claim.row, type(exc).__name__)

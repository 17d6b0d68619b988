"""How a command's text reaches Discord: the reply edge, chosen by the envelope's kind.

A prefix command (``kind="message"``) is answered with a channel message carrying the
envelope's nonce (a redelivery cannot post twice); a slash command (``"interaction"``)
edits the deferred response the listener already sent. :class:`ReplySender` is all the
invocation needs from the REST client, so tests and benchmarks pass their own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from shared.envelope import Envelope, Kind
from shared.settings import Secret


class ReplySender(Protocol):
    """The two Discord REST calls a reply can be (``function_runtime.discord_rest.DiscordRest``)."""

    def create_message(
        self, channel_id: str, content: str, *, nonce: str, reply_to: str | None = None,
        mention_users: tuple[str, ...] = (),
    ) -> dict[str, Any]: ...

    def edit_original_response(
        self, application_id: str, interaction_token: Secret, content: str
    ) -> dict[str, Any]: ...


def _message_reply(rest: ReplySender, env: Envelope, content: str) -> dict[str, Any]:
    return rest.create_message(env.ids.channel, content, nonce=env.nonce, reply_to=env.ids.message)


def _interaction_edit(rest: ReplySender, env: Envelope, content: str) -> dict[str, Any]:
    if env.interaction is None:
        raise ValueError("interaction envelope without interaction application_id/token")
    return rest.edit_original_response(env.interaction.application_id, env.interaction.token, content)


REPLY_BY_KIND: Mapping[Kind, Callable[[ReplySender, Envelope, str], dict[str, Any]]] = {
    "message": _message_reply,
    "interaction": _interaction_edit,
}


def send_reply(rest: ReplySender, env: Envelope, content: str) -> dict[str, Any]:
    """Answer whatever invoked the command, in the way its kind calls for."""
    return REPLY_BY_KIND[env.kind](rest, env, content)

"""Errors raised on the function side: by commands, the HTTP helper and the Discord REST client.

They extend the permanent/transient split of :mod:`shared.errors`: a permanent error sends
the message to the poison queue at once, a transient one is raised for the queue to redeliver.
"""

from __future__ import annotations

from shared.errors import BotError, PermanentError, TransientError


class UsageError(BotError):
    """The user's arguments are wrong; the reply explains the usage."""


class DiscordAuthError(PermanentError):
    """Discord answered 401/403: the token or permissions are wrong."""


class DiscordNotFoundError(PermanentError):
    """Discord answered 404: the channel, message or interaction is gone."""


class DiscordRequestError(PermanentError):
    """Discord rejected the request (4xx other than 401/403/404/429)."""


class DiscordUnavailableError(TransientError):
    """Discord kept answering 5xx or 429 beyond our retry budget."""


class ExternalApiError(TransientError):
    """An external API (catfact, Scryfall, ...) failed or timed out."""

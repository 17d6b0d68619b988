"""Error types both sides raise (the function side's own are in function_runtime/errors.py).

The split that matters is *permanent* vs *transient*: a permanent error can never
succeed on retry (bad envelope, unknown command, 401/403), so the message goes to the
poison queue at once; a transient one (timeout, 5xx, 429 beyond our wait budget,
storage hiccup) is raised so the queue redelivers it.
"""

from __future__ import annotations


class BotError(Exception):
    """Base class for errors this project raises on purpose."""


class SettingsError(BotError):
    """A setting is missing or malformed. The message names the setting."""


class PermanentError(BotError):
    """Retrying cannot help; the message belongs in the poison queue."""


class TransientError(BotError):
    """Retrying may help; let the queue redeliver."""


class EnvelopeError(PermanentError):
    """A queue message is not an envelope this version understands."""

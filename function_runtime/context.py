"""What a command handler receives, and what it returns.

A handler is a plain function ``(CommandContext) -> str``: no host, no queue, no
Discord client. The invocation wrapper (function_runtime/invocation.py) builds the context,
opens the spans around it and sends the returned text to Discord.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import requests

from shared.envelope import Envelope
from shared.registry import CommandSpec
from shared.settings import Settings


@dataclass(frozen=True)
class CommandContext:
    envelope: Envelope
    spec: CommandSpec
    settings: Settings
    http: requests.Session  # shared session for external APIs; traced as CLIENT spans
    flags: Mapping[str, bool] = field(default_factory=dict)  # flag name -> enabled for this author
    trace_id: str = ""  # hex trace id, for messages that tell the user where to look

    @property
    def args(self) -> str:
        return self.envelope.args

    def may_run(self, spec: CommandSpec) -> bool:
        """Whether this author may run ``spec`` (ungated, or its flag or a subcommand's flag is on for them)."""
        return spec.flag is None or any(self.flags.get(flag, False) for flag in spec.flags)


Handler = Callable[[CommandContext], str]


class FlagSource(Protocol):
    """Evaluates feature flags for one author (see function_runtime/flags.py)."""

    def evaluate(self, names: list[str], envelope: Envelope) -> dict[str, bool]: ...

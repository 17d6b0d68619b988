"""``!roll <n|c> [8a|9a]``: Chronicles of Darkness dice (rules in command_functions/dice.py).

``!roll 5`` rolls five dice with 10-again; ``!roll 5 9a`` / ``!roll 5 8a`` widen the
re-rolls; ``!roll c`` (or ``chance``) rolls a chance die. Each die is shown, re-rolls
chained with arrows (``10→7``). Gated by the ``roll`` feature flag (the wrapper checks it).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from opentelemetry import trace

from command_functions.dice import MAX_DICE, MIN_DICE, Roll, roll_chance, roll_dice
from function_runtime.context import CommandContext
from function_runtime.errors import UsageError
from shared.registry import COMMANDS

SPEC = COMMANDS["roll"]

_RNG = random.SystemRandom()
MAX_ARGS_CHARS = 40  # "30 9a" and friends; anything longer is not a roll
CHANCE_WORDS = frozenset({"c", "chance"})
AGAIN_WORDS = {"10a": 10, "9a": 9, "8a": 8}
OUTCOME_TEXT = {
    "dramatic_failure": "**Dramatic failure!**",
    "failure": "**Failure**: no successes.",
    "success": "**Success**: {n} {noun}.",
    "exceptional_success": "**Exceptional success!** {n} successes.",
}


@dataclass(frozen=True)
class RollRequest:
    dice: int  # 0 = chance die
    again: int


def usage(prefix: str) -> str:
    return (
        f"Usage: `{prefix}roll <n|c> [8a|9a]`: n is {MIN_DICE}-{MAX_DICE} dice, c a chance die; "
        "8a/9a re-roll 8+/9+ (10s always re-roll)."
    )


def parse(args: str, prefix: str = "!") -> RollRequest:
    """``"5 9a"`` -> RollRequest(5, 9). Raises UsageError for anything else."""
    if len(args) > MAX_ARGS_CHARS:
        raise UsageError(usage(prefix))
    words = args.lower().split()
    if not 1 <= len(words) <= 2:
        raise UsageError(usage(prefix))
    again = AGAIN_WORDS.get(words[1]) if len(words) == 2 else 10
    if again is None:
        raise UsageError(usage(prefix))
    pool = words[0]
    if pool in CHANCE_WORDS:
        if again != 10:
            raise UsageError(f"A chance die only re-rolls 10s: `{prefix}roll c`")
        return RollRequest(0, 10)
    # isascii: "５".isdigit() is True and int() would accept it; len: int() on huge strings
    if not (pool.isascii() and pool.isdigit() and len(pool) <= 3 and MIN_DICE <= int(pool) <= MAX_DICE):
        raise UsageError(usage(prefix))
    return RollRequest(int(pool), again)


def format_roll(result: Roll) -> str:
    n = result.successes
    outcome = OUTCOME_TEXT[result.outcome].format(n=n, noun="success" if n == 1 else "successes")
    dice = ", ".join(str(d) for d in result.dice)
    what = "Chance die" if result.chance else f"{len(result.dice)} {'die' if len(result.dice) == 1 else 'dice'}"
    again = "" if result.chance else f" ({result.again}-again)"
    return f"{what}{again}: {dice}\n{outcome}"


def handle(ctx: CommandContext) -> str:
    return reply(ctx, _RNG)


def reply(ctx: CommandContext, rng: random.Random) -> str:
    """The command with its random source injected (tests pass scripted dice)."""
    req = parse(ctx.args, ctx.settings.bot_prefix)
    result = roll_chance(rng) if req.dice == 0 else roll_dice(req.dice, req.again, rng)
    span = trace.get_current_span()
    span.set_attributes({
        "app.roll.dice": req.dice,
        "app.roll.chance": result.chance,
        "app.roll.again": req.again,
        "app.roll.successes": result.successes,
        "app.roll.outcome": result.outcome,
    })
    return format_roll(result)


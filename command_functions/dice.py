"""Chronicles of Darkness dice, as pure functions of an injectable random source.

Rules (CofD 2nd edition core):
- A dice pool of n ten-sided dice; each die showing 8, 9 or 10 is a success.
- "10-again" (the default): a die showing 10 is rolled again, and the new roll can
  succeed (and explode) too. "9-again" re-rolls 9s and 10s, "8-again" re-rolls 8+.
- Five or more successes is an exceptional success; none is a failure.
- A chance die (when the pool drops to zero): one die, only a 10 succeeds and a 1 is a
  dramatic failure. Its 10 explodes like 10-again; the re-rolls are ordinary dice
  (8+ succeeds), as "re-roll as normal" reads. 8-again/9-again do not apply to it.

Re-roll chains are capped (:data:`MAX_REROLLS` per die) so a hostile or unlucky random
source can never make a reply unbounded.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

MIN_DICE = 1
MAX_DICE = 30
MAX_REROLLS = 10  # per die; P(hitting it) is 0.3**10 even with 8-again
SUCCESS_AT = 8
EXCEPTIONAL_AT = 5
AGAIN_THRESHOLDS = (8, 9, 10)  # 8-again, 9-again, 10-again


@dataclass(frozen=True)
class Die:
    """One die of the pool: its first roll followed by its re-rolls."""

    rolls: tuple[int, ...]
    chance: bool = False

    def successes(self) -> int:
        first, rest = self.rolls[0], self.rolls[1:]
        first_ok = first == 10 if self.chance else first >= SUCCESS_AT
        return int(first_ok) + sum(1 for r in rest if r >= SUCCESS_AT)

    def __str__(self) -> str:
        return "→".join(str(r) for r in self.rolls)


@dataclass(frozen=True)
class Roll:
    dice: tuple[Die, ...]
    again: int  # 8, 9 or 10
    chance: bool = False

    @property
    def successes(self) -> int:
        return sum(d.successes() for d in self.dice)

    @property
    def dramatic_failure(self) -> bool:
        return self.chance and self.dice[0].rolls[0] == 1

    @property
    def outcome(self) -> str:
        """One of: dramatic_failure, failure, success, exceptional_success."""
        if self.dramatic_failure:
            return "dramatic_failure"
        if self.successes == 0:
            return "failure"
        return "exceptional_success" if self.successes >= EXCEPTIONAL_AT else "success"

    @property
    def roll_count(self) -> int:
        return sum(len(d.rolls) for d in self.dice)


def _roll_die(again: int, rng: random.Random, *, chance: bool = False) -> Die:
    rolls = [rng.randint(1, 10)]
    while rolls[-1] >= again and len(rolls) <= MAX_REROLLS:
        rolls.append(rng.randint(1, 10))
    return Die(tuple(rolls), chance=chance)


def roll_dice(n: int, again: int, rng: random.Random) -> Roll:
    """Roll a pool of ``n`` dice (MIN_DICE..MAX_DICE) with ``again``-again (8, 9 or 10)."""
    if not MIN_DICE <= n <= MAX_DICE:
        raise ValueError(f"dice pool must be {MIN_DICE}..{MAX_DICE}, got {n}")
    if again not in AGAIN_THRESHOLDS:
        raise ValueError(f"again must be one of {AGAIN_THRESHOLDS}, got {again}")
    return Roll(tuple(_roll_die(again, rng) for _ in range(n)), again=again)


def roll_chance(rng: random.Random) -> Roll:
    """Roll a chance die (only 10 succeeds, 1 is a dramatic failure, 10s re-roll)."""
    return Roll((_roll_die(10, rng, chance=True),), again=10, chance=True)

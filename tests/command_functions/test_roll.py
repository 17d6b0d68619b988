"""!roll: Chronicles of Darkness dice with scripted and seeded random sources."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from command_functions import roll
from command_functions.dice import MAX_DICE, MAX_REROLLS, roll_chance, roll_dice
from function_runtime.errors import UsageError
from shared.settings import Settings, load_settings
from tests.command_functions.stub_apis import make_ctx


class ScriptedRandom(random.Random):
    """Dice that come up exactly as scripted (and complain if asked for more)."""

    def __init__(self, *rolls: int) -> None:
        super().__init__(0)
        self.rolls = list(rolls)

    def randint(self, a: int, b: int) -> int:
        assert (a, b) == (1, 10)
        return self.rolls.pop(0)


class AlwaysTen(random.Random):
    def randint(self, a: int, b: int) -> int:
        return 10


# -- the rules --------------------------------------------------------------------------------


def test_eight_and_up_succeed() -> None:
    result = roll_dice(5, 10, ScriptedRandom(1, 7, 8, 9, 3))
    assert [d.rolls for d in result.dice] == [(1,), (7,), (8,), (9,), (3,)]
    assert result.successes == 2 and result.outcome == "success"


def test_tens_explode_and_the_rerolls_count() -> None:
    result = roll_dice(2, 10, ScriptedRandom(10, 10, 8, 2))
    assert [d.rolls for d in result.dice] == [(10, 10, 8), (2,)]
    assert result.successes == 3


def test_nine_again_rerolls_nines() -> None:
    result = roll_dice(2, 9, ScriptedRandom(9, 4, 8))
    assert [d.rolls for d in result.dice] == [(9, 4), (8,)]
    assert result.successes == 2


def test_eight_again_rerolls_eights() -> None:
    result = roll_dice(1, 8, ScriptedRandom(8, 9, 8, 1))
    assert result.dice[0].rolls == (8, 9, 8, 1)
    assert result.successes == 3


def test_ten_again_does_not_reroll_nines() -> None:
    assert roll_dice(1, 10, ScriptedRandom(9)).dice[0].rolls == (9,)


def test_five_successes_are_exceptional() -> None:
    assert roll_dice(5, 10, ScriptedRandom(8, 8, 9, 9, 8)).outcome == "exceptional_success"
    assert roll_dice(4, 10, ScriptedRandom(8, 8, 9, 9)).outcome == "success"
    assert roll_dice(3, 10, ScriptedRandom(10, 10, 10, 10, 9, 1, 1)).outcome == "exceptional_success"


def test_no_successes_is_a_failure_not_a_dramatic_one() -> None:
    result = roll_dice(3, 10, ScriptedRandom(1, 1, 1))
    assert result.outcome == "failure" and not result.dramatic_failure


@pytest.mark.parametrize(
    ("rolls", "successes", "outcome"),
    [((1,), 0, "dramatic_failure"), ((9,), 0, "failure"), ((8,), 0, "failure"), ((5,), 0, "failure"),
     ((10, 3), 1, "success"), ((10, 8), 2, "success"), ((10, 10, 1), 2, "success")],
)
def test_chance_die(rolls: tuple[int, ...], successes: int, outcome: str) -> None:
    result = roll_chance(ScriptedRandom(*rolls))
    assert result.dice[0].rolls == rolls
    assert (result.successes, result.outcome) == (successes, outcome)


def test_reroll_chains_are_capped() -> None:
    result = roll_dice(MAX_DICE, 8, AlwaysTen())
    assert all(len(d.rolls) == MAX_REROLLS + 1 for d in result.dice)
    assert len(roll.format_roll(result)) <= 2000


@pytest.mark.parametrize("bad", [(0, 10), (MAX_DICE + 1, 10), (5, 7)])
def test_roll_dice_refuses_out_of_range(bad: tuple[int, int]) -> None:
    with pytest.raises(ValueError):
        roll_dice(bad[0], bad[1], random.Random(1))


@hsettings(max_examples=200, deadline=None)
@given(st.integers(1, MAX_DICE), st.sampled_from([8, 9, 10]), st.integers())
def test_any_roll_stays_within_limits(n: int, again: int, seed: int) -> None:
    result = roll_dice(n, again, random.Random(seed))
    assert len(result.dice) == n
    for die in result.dice:
        assert 1 <= len(die.rolls) <= MAX_REROLLS + 1
        assert all(1 <= r <= 10 for r in die.rolls)
        assert all(r >= again for r in die.rolls[:-1])  # only re-roll-worthy faces were re-rolled
    assert 0 <= result.successes <= result.roll_count
    assert len(roll.format_roll(result)) <= 2000


# -- the command --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [("5", (5, 10)), ("1", (1, 10)), ("30", (30, 10)), ("5 9a", (5, 9)), ("5 8A", (5, 8)), ("5 10a", (5, 10)),
     ("c", (0, 10)), ("chance", (0, 10)), ("  C  ", (0, 10)), ("07", (7, 10))],
)
def test_parse(args: str, expected: tuple[int, int]) -> None:
    req = roll.parse(args)
    assert (req.dice, req.again) == expected


@pytest.mark.parametrize(
    "args", ["", "0", "31", "100", "-1", "five", "5 7a", "5 9a 8a", "c 9a", "５", "٣", "5d10", "1e1", "9" * 5000,
             "5 9a" + " " * 50, "<@123>", "5\x00"],
)
def test_parse_rejects(args: str) -> None:
    with pytest.raises(UsageError):
        roll.parse(args)


@hsettings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_arbitrary_text_raises_only_usage_errors(args: str) -> None:
    try:
        req = roll.parse(args)
    except UsageError:
        return
    assert 0 <= req.dice <= MAX_DICE and req.again in (8, 9, 10)


def settings_for(tmp_path: Path) -> Settings:
    return load_settings(environ={}, require_storage=False, root=tmp_path)


def test_handle_shows_each_die_and_the_outcome(tmp_path: Path) -> None:
    ctx = make_ctx("roll", "3", settings_for(tmp_path))
    reply = roll.reply(ctx, ScriptedRandom(10, 7, 8, 2))
    assert reply == "3 dice (10-again): 10→7, 8, 2\n**Success**: 2 successes."


def test_handle_exceptional_and_chance_replies(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    assert "Exceptional success!" in roll.reply(make_ctx("roll", "5 9a", settings), ScriptedRandom(9, 8, 8, 8, 8, 8))
    assert roll.reply(make_ctx("roll", "c", settings), ScriptedRandom(1)) == "Chance die: 1\n**Dramatic failure!**"
    assert roll.reply(make_ctx("roll", "c", settings), ScriptedRandom(10, 3)).endswith("**Success**: 1 success.")


def test_handle_with_the_real_random_source(tmp_path: Path) -> None:
    reply = roll.handle(make_ctx("roll", "30 8a", settings_for(tmp_path)))
    assert reply.startswith("30 dice (8-again): ") and len(reply) <= 2000


def test_handle_usage_error_uses_the_prefix(tmp_path: Path) -> None:
    settings = load_settings(environ={"BOT_PREFIX": "?"}, require_storage=False, root=tmp_path)
    with pytest.raises(UsageError, match=r"`\?roll <n\|c> \[8a\|9a\]`"):
        roll.handle(make_ctx("roll", "lots", settings))

"""The ``!mtg`` grammar: commander name + criteria -> a Scryfall search query and link.

Grammar (``HELP`` below is the user-facing version)::

    mtg help
    mtg <commander> [criterion ...]        criteria are the trailing words that parse as one
    mtg "<commander>" [criterion ...]      quotes (straight or curly) when the name itself ends
                                           in a criterion word

    criterion := type | p/t | comparison | number
    type      := part ("+" part)*          a card must have every part: artifact+creature
    part      := card type (artifact battle creature enchantment instant kindred land
                 planeswalker sorcery tribal) | supertype (legendary basic snow world)
                 | "t:" word (any type or subtype: t:elf, t:equipment)
    p/t       := N/N with * for "any": 2/2, */4, 3/*
    comparison:= (cmc|mv|pow|tou) (=|!=|<|<=|>|>=|:) N      cmc<5, mv>=3, pow>=4
    number    := N                          mana value equal to N
    N         := 0..99

Several type criteria are alternatives, merged into one clause: ``creature land`` ->
``(t:creature or t:land)``. A supertype on its own modifies the type after it:
``legendary land`` -> ``(t:legendary t:land)``. Comparisons and p/t are ANDed. The
query always ends ``f:commander`` and starts with the commander's colour identity.

Everything here is pure; :func:`parse` raises only :class:`UsageError`.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from function_runtime.errors import UsageError

SEARCH_URL = "https://scryfall.com/search"
MAX_ARGS_CHARS = 300
MAX_NAME_CHARS = 150  # the longest printed card name is 141 characters
MAX_CRITERIA = 12

CARD_TYPES = frozenset({
    "artifact", "battle", "creature", "enchantment", "instant", "kindred", "land", "planeswalker", "sorcery", "tribal",
})
SUPERTYPES = frozenset({"legendary", "basic", "snow", "world"})
FIELDS = {"cmc": "mv", "mv": "mv", "pow": "pow", "tou": "tou"}  # what the user types -> Scryfall keyword
COLOUR_ORDER = "WUBRG"
COLOUR_NAMES = {"W": "white", "U": "blue", "B": "black", "R": "red", "G": "green"}
QUOTES = {'"': '"', "“": "”", "„": "“", "”": "”"}  # opening -> closing

# re.ASCII: \d would otherwise accept other scripts' digits, and \Z: "$" accepts a trailing newline
_NUM = r"(\d{1,2})"
_COMPARISON = re.compile(rf"(cmc|mv|pow|tou)(<=|>=|!=|=|<|>|:){_NUM}\Z", re.ASCII)
_PT = re.compile(r"(\d{1,2}|\*)/(\d{1,2}|\*)\Z", re.ASCII)
_BARE = re.compile(rf"{_NUM}\Z", re.ASCII)
_TYPE_PART = re.compile(r"(?:t:)?([a-z][a-z'-]{0,29})\Z", re.ASCII)
_LOOKS_LIKE_CRITERION = re.compile(r"[<>=]|^t:|^[\d*]*/[\d*/]*\Z", re.ASCII)
_NAME_PUNCTUATION = frozenset(" ,.'’-!?&/:+_()\"")


@dataclass(frozen=True)
class Numeric:
    field: str  # mv | pow | tou
    op: str  # = != < <= > >=
    value: int

    def __str__(self) -> str:
        return f"{self.field}{self.op}{self.value}"


@dataclass(frozen=True)
class MtgQuery:
    commander: str
    types: tuple[tuple[str, ...], ...] = ()  # alternatives, each a conjunction of type words
    numeric: tuple[Numeric, ...] = ()

    def scryfall_query(self, colour_identity: str) -> str:
        """The search for cards that fit this commander's deck, e.g.
        ``id<=wubg (t:creature or t:land) pow=2 tou=2 mv<5 f:commander``."""
        clauses = [identity_clause(colour_identity)]
        if self.types:
            alternatives = [_conjunction(t) for t in self.types]
            clauses.append(alternatives[0] if len(alternatives) == 1 else f"({' or '.join(alternatives)})")
        clauses.extend(str(n) for n in self.numeric)
        clauses.append("f:commander")
        return " ".join(clauses)


def _conjunction(parts: tuple[str, ...]) -> str:
    terms = [f"t:{p}" for p in parts]
    return terms[0] if len(terms) == 1 else f"({' '.join(terms)})"


def identity_clause(colour_identity: str) -> str:
    """``"WUBG"`` -> ``id<=wubg``; colourless -> ``id:c`` (only colourless cards fit)."""
    return f"id<={colour_identity.lower()}" if colour_identity else "id:c"


def normalise_identity(colours: list[object]) -> str | None:
    """Scryfall's ``color_identity`` list -> letters in WUBRG order, or None if it is not one."""
    if not all(isinstance(c, str) and c in COLOUR_NAMES for c in colours):
        return None
    return "".join(c for c in COLOUR_ORDER if c in colours)


def describe_identity(colour_identity: str) -> str:
    return ", ".join(COLOUR_NAMES[c] for c in colour_identity) or "colourless"


def search_url(query: str) -> str:
    """One link to Scryfall's search page, every parameter percent-encoded."""
    params = {"as": "grid", "order": "edhrec", "q": query}
    return f"{SEARCH_URL}?{urlencode(params, quote_via=quote)}"


def usage(prefix: str) -> str:
    return (
        f"Usage: `{prefix}mtg <commander> [types] [p/t] [cmc<n]`, "
        f"e.g. `{prefix}mtg atraxa creature 2/2 cmc<5`. See `{prefix}mtg help`."
    )


def help_text(prefix: str) -> str:
    p = f"{prefix}mtg"
    return "\n".join((
        f"`{p} <commander> [criteria]` links a Scryfall search for cards legal in Commander within your "
        "commander's colour identity. The name can be partial; criteria are the words at the end:",
        "- types: `creature`, `land`, `instant`, `t:elf`… several are alternatives (`creature land` = either); "
        "join with `+` for both (`artifact+creature`); `legendary land` = a legendary land",
        "- power/toughness: `2/2`, `*/4` (`*` = any)",
        "- mana value: `cmc<5`, `cmc>=3`, `mv=2`, or a bare number (`3` = exactly 3); also `pow>=4`, `tou<2`",
        "- operators: `=` `!=` `<` `<=` `>` `>=`; numbers 0-99",
        f'Put the name in quotes if it ends in one of those words: `{p} "Lord of the Land" creature`.',
        f"Examples: `{p} atraxa creature land cmc<4`, `{p} krenko t:goblin 1/1`, `{p} urza artifact+creature 3`",
    ))


@dataclass(frozen=True)
class _Criterion:
    types: tuple[str, ...] = ()  # non-empty for a type word
    numeric: tuple[Numeric, ...] = ()


def _criterion(word: str, prefix: str) -> _Criterion | None:
    """One lower-cased word -> a criterion, or None if it is not one (so it belongs to the name)."""
    if m := _COMPARISON.match(word):
        op = "=" if m[2] == ":" else m[2]
        return _Criterion(numeric=(Numeric(FIELDS[m[1]], op, int(m[3])),))
    if m := _PT.match(word):
        return _Criterion(numeric=tuple(Numeric(f, "=", int(v)) for f, v in (("pow", m[1]), ("tou", m[2])) if v != "*"))
    if m := _BARE.match(word):
        return _Criterion(numeric=(Numeric("mv", "=", int(m[1])),))
    names = [_type_part(p) for p in word.split("+")]
    if all(names):
        return _Criterion(types=tuple(dict.fromkeys(n for n in names if n)))
    if _LOOKS_LIKE_CRITERION.search(word):  # meant as a criterion but malformed: say so
        raise UsageError(f"I don't understand `{_shown(word)}`. {usage(prefix)}")
    return None


def _shown(word: str) -> str:
    """A word echoed back in a reply: short, no code-span breakout, no mention syntax."""
    return word[:30].replace("`", "'").replace("@", "@\u200b")


def _type_part(part: str) -> str | None:
    m = _TYPE_PART.match(part)
    if not m:
        return None
    # bare words must be known types; "t:" lets any (sub)type through
    return m[1] if part.startswith("t:") or m[1] in CARD_TYPES | SUPERTYPES else None


def _split_quoted(text: str) -> tuple[str, list[str]] | None:
    closing = QUOTES.get(text[:1])
    if closing is None:
        return None
    end = text.find(closing, 1)
    if end < 0:
        return None
    return text[1:end], text[end + 1 :].split()


def _valid_name(name: str) -> bool:
    if not name or len(name) > MAX_NAME_CHARS or not any(c.isalnum() for c in name):
        return False
    return all(c in _NAME_PUNCTUATION or unicodedata.category(c)[0] in "LMN" for c in name)


def _merge_types(found: list[tuple[str, ...]]) -> tuple[tuple[str, ...], ...]:
    """A word of only supertypes modifies the next type word: legendary land -> (legendary, land)."""
    merged: list[tuple[str, ...]] = []
    pending: tuple[str, ...] = ()
    for parts in found:
        if all(p in SUPERTYPES for p in parts):
            pending += parts
            continue
        merged.append(tuple(dict.fromkeys(pending + parts)))
        pending = ()
    if pending:
        merged.append(tuple(dict.fromkeys(pending)))
    return tuple(dict.fromkeys(merged))


def parse(args: str, prefix: str = "!") -> MtgQuery | None:
    """``mtg`` arguments -> MtgQuery, or None for ``help``. Raises UsageError, nothing else."""
    text = args.strip()
    if text.lower() in ("help", "?"):
        return None
    if not text or len(text) > MAX_ARGS_CHARS:
        raise UsageError(usage(prefix))
    quoted = _split_quoted(text)
    words = quoted[1] if quoted else text.split()
    parsed: list[_Criterion] = []
    # Criteria are the trailing words that parse as criteria; the rest is the name.
    while words:
        crit = _criterion(words[-1].lower(), prefix)
        if crit is None:
            if quoted:  # after a quoted name every word must be a criterion
                raise UsageError(f"I don't understand `{_shown(words[-1])}`. {usage(prefix)}")
            break
        parsed.insert(0, crit)
        words = words[:-1]
    name = quoted[0].strip() if quoted else " ".join(words)
    if len(parsed) > MAX_CRITERIA:
        raise UsageError(f"At most {MAX_CRITERIA} criteria, please. {usage(prefix)}")
    if not _valid_name(name):
        raise UsageError(f"Start with your commander's name. {usage(prefix)}")
    types = [c.types for c in parsed if c.types]
    numeric = tuple(dict.fromkeys(n for c in parsed for n in c.numeric))
    return MtgQuery(commander=name, types=_merge_types(types), numeric=numeric)

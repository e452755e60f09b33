"""The goal grammar of BabyAI-Text: four BabyAI mission families, parsed and canonicalised.

Goals name every object by colour and type: ``go to the red ball``, ``pick up
the red ball``, ``open the red door``, ``put the red ball next to the blue
key``. Parsing lower-cases the text, collapses whitespace, accepts ``a``/``an``
as well as ``the`` (and ``gray`` for ``grey``), and canonicalises to ``the``.
A colour is required: an achieved goal always names one object exactly, so the
success predicate is plain membership and agrees with the environment's reward.

Parsing is how the runtime validates goals people inject, so every rejection
says what is wrong (:class:`GoalError` carries a ``kind`` and the reason).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Literal

COLOURS = ("red", "green", "blue", "purple", "yellow", "grey")
"""BabyAI's colours, in minigrid's order."""

OBJECT_TYPES = ("ball", "box", "key", "door")
"""What a goal can name: three portable objects and doors."""

PORTABLE_TYPES = ("ball", "box", "key")
"""Objects the agent can pick up, carry and put down."""

_ARTICLES = frozenset({"the", "a", "an"})
_COLOUR_ALIASES = {"gray": "grey"}
_EXAMPLES = (
    "'go to the red ball', 'pick up the red ball', 'open the red door', "
    "'put the red ball next to the blue key'"
)

ErrorKind = Literal[
    "empty", "unknown_verb", "unknown_colour", "unknown_object", "malformed", "wrong_object"
]


class GoalError(ValueError):
    """A text that is not a BabyAI-Text goal; ``kind`` classifies it, the message says why."""

    def __init__(self, kind: ErrorKind, reason: str) -> None:
        super().__init__(reason)
        self.kind: ErrorKind = kind
        self.reason = reason


class Category(StrEnum):
    """Goal families: each has its own level geometry, horizon and metrics bucket."""

    GO_TO = "go_to"
    PICK_UP = "pick_up"
    OPEN = "open"
    PUT_NEXT = "put_next"


@dataclass(frozen=True, slots=True, order=True)
class Thing:
    """One object as goals name it: a colour and a type."""

    colour: str
    kind: str

    @property
    def text(self) -> str:
        return f"the {self.colour} {self.kind}"


@dataclass(frozen=True, slots=True)
class Goal:
    """A parsed goal; ``fixed`` is the object to put ``target`` next to (put_next only)."""

    category: Category
    target: Thing
    fixed: Thing | None = None

    @property
    def text(self) -> str:
        """The canonical form."""
        if self.category is Category.GO_TO:
            return f"go to {self.target.text}"
        if self.category is Category.PICK_UP:
            return f"pick up {self.target.text}"
        if self.category is Category.OPEN:
            return f"open {self.target.text}"
        assert self.fixed is not None
        return f"put {self.target.text} next to {self.fixed.text}"

    @property
    def things(self) -> tuple[Thing, ...]:
        """Every object the goal names."""
        return (self.target,) if self.fixed is None else (self.target, self.fixed)


_VERBS: tuple[tuple[tuple[str, ...], Category], ...] = (
    (("go", "to"), Category.GO_TO),
    (("pick", "up"), Category.PICK_UP),
    (("open",), Category.OPEN),
    (("put",), Category.PUT_NEXT),
)


def parse_goal(text: str) -> Goal:
    """The goal ``text`` denotes, or :class:`GoalError` saying why it is not one."""
    if not isinstance(text, str):
        raise GoalError("malformed", f"a goal is a string, not {type(text).__name__}")
    return _parse(text)


@lru_cache(maxsize=4096)
def _parse(text: str) -> Goal:
    """Cached: the replay asks about the same few goals over and over."""
    words = tuple(text.lower().split())
    if not words:
        raise GoalError("empty", f"empty goal; goals look like {_EXAMPLES}")
    category, at = _verb(words)
    target, at = _thing(words, at)
    fixed = None
    if category is Category.PUT_NEXT:
        if words[at : at + 2] != ("next", "to"):
            raise GoalError(
                "malformed", f"expected 'next to' after {' '.join(words[:at])!r}; e.g. {_EXAMPLES}"
            )
        fixed, at = _thing(words, at + 2)
    if at < len(words):
        raise GoalError(
            "malformed",
            f"unexpected words after {' '.join(words[:at])!r}: {' '.join(words[at:])!r}",
        )
    goal = Goal(category, target, fixed)
    _check_types(goal)
    return goal


def canonical_goal(text: str) -> str:
    """The canonical form of ``text`` (raises :class:`GoalError` if it is not a goal)."""
    return parse_goal(text).text


def goal_category(text: str) -> Category:
    return parse_goal(text).category


def _verb(words: tuple[str, ...]) -> tuple[Category, int]:
    for verb, category in _VERBS:
        if words[0] != verb[0]:
            continue
        if words[: len(verb)] != verb:
            raise GoalError(
                "malformed",
                f"expected {' '.join(verb)!r} at the start, got {' '.join(words[:2])!r}",
            )
        return category, len(verb)
    raise GoalError(
        "unknown_verb",
        f"unknown verb {words[0]!r}; verbs are 'go to', 'pick up', 'open', 'put ... next to'",
    )


def _thing(words: tuple[str, ...], at: int) -> tuple[Thing, int]:
    """The ``the <colour> <type>`` phrase starting at ``words[at]``, and where it ends."""
    before = " ".join(words[:at])
    if at >= len(words):
        raise GoalError("malformed", f"incomplete goal: expected an object after {before!r}")
    if words[at] not in _ARTICLES:
        raise GoalError("malformed", f"expected 'the' or 'a' before {words[at]!r}")
    colour_at = at + 1
    if colour_at >= len(words):
        raise GoalError("malformed", f"incomplete goal: expected an object after {words[at]!r}")
    colour = _COLOUR_ALIASES.get(words[colour_at], words[colour_at])
    if colour not in COLOURS:
        if colour in OBJECT_TYPES:
            raise GoalError(
                "unknown_colour",
                f"missing colour before {colour!r}; colours are {', '.join(COLOURS)}",
            )
        if colour_at + 1 >= len(words):
            raise _unknown_object(colour)
        raise GoalError(
            "unknown_colour", f"unknown colour {colour!r}; colours are {', '.join(COLOURS)}"
        )
    kind_at = colour_at + 1
    if kind_at >= len(words):
        raise GoalError("malformed", f"incomplete goal: expected an object after {colour!r}")
    if words[kind_at] not in OBJECT_TYPES:
        raise _unknown_object(words[kind_at])
    return Thing(colour, words[kind_at]), kind_at + 1


def _unknown_object(word: str) -> GoalError:
    return GoalError(
        "unknown_object", f"unknown object {word!r}; objects are {', '.join(OBJECT_TYPES)}"
    )


def _check_types(goal: Goal) -> None:
    """Each verb takes only the objects BabyAI lets it act on."""
    portable = ", ".join(PORTABLE_TYPES)
    if goal.category is Category.PICK_UP and goal.target.kind == "door":
        raise GoalError("wrong_object", f"cannot pick up a door; things to pick up are {portable}")
    if goal.category is Category.OPEN and goal.target.kind != "door":
        raise GoalError("wrong_object", f"only doors can be opened, not a {goal.target.kind}")
    if goal.category is Category.PUT_NEXT:
        assert goal.fixed is not None
        if goal.target.kind == "door" or goal.fixed.kind == "door":
            raise GoalError(
                "wrong_object", f"'put ... next to' takes two objects among {portable}, not a door"
            )
        if goal.target == goal.fixed:
            raise GoalError(
                "wrong_object",
                f"cannot put {goal.target.text} next to itself; the two objects must differ",
            )

"""Reading an observation back into structure (for the oracle and for checks)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from autotelic.envs.playground.objects import CATEGORY_OF, GROWABLE, ObjectCategory

_PATTERN = re.compile(
    r"You see: (?P<seen>.*)\nYou are standing on: (?P<on>.*)\n"
    r"Inventory \((?P<count>\d+)/(?P<size>\d+)\): (?P<held>.*)"
)


@dataclass(frozen=True, slots=True)
class Seen:
    """An object as the observation shows it."""

    label: str
    name: str
    grown: bool

    @property
    def category(self) -> ObjectCategory:
        return CATEGORY_OF[self.name]


@dataclass(frozen=True, slots=True)
class ObservationView:
    """The three lines of an observation, parsed."""

    floor: tuple[Seen, ...]
    standing_on: Seen | None
    inventory: tuple[Seen, ...]
    inventory_size: int

    @property
    def has_room(self) -> bool:
        return len(self.inventory) < self.inventory_size


def parse_label(label: str) -> Seen:
    """``carrot seed`` -> carrot, not grown; ``baby cow`` -> cow, not grown; ``cow`` -> grown."""
    if label.endswith(" seed"):
        return Seen(label, label.removesuffix(" seed"), grown=False)
    if label.startswith("baby "):
        return Seen(label, label.removeprefix("baby "), grown=False)
    if label not in CATEGORY_OF:
        raise ValueError(f"unknown object label {label!r}")
    return Seen(label, label, grown=True)


def _labels(text: str, empty: str) -> tuple[Seen, ...]:
    return () if text == empty else tuple(parse_label(x) for x in text.split(", "))


def parse_observation(text: str) -> ObservationView:
    """Parse the env's three-line observation; raise ``ValueError`` on anything else."""
    match = _PATTERN.fullmatch(text)
    if match is None:
        raise ValueError(f"not a Playground-Text observation: {text!r}")
    inventory = _labels(match["held"], "empty")
    if len(inventory) != int(match["count"]):
        raise ValueError(f"inventory count {match['count']} but {len(inventory)} objects listed")
    on = None if match["on"] == "nothing" else parse_label(match["on"])
    return ObservationView(
        floor=_labels(match["seen"], "nothing"),
        standing_on=on,
        inventory=inventory,
        inventory_size=int(match["size"]),
    )


def is_growable(seen: Seen) -> bool:
    return seen.category in GROWABLE

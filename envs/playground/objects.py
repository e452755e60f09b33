"""The objects of Playground-Text, their categories and the generalisation split."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal


class ObjectCategory(StrEnum):
    """What an object is; decides what it can grow from and what it feeds."""

    FURNITURE = "furniture"
    PLANT = "plant"
    HERBIVORE = "herbivore"
    CARNIVORE = "carnivore"
    WATER = "water"


WATER = "water"

OBJECTS_BY_CATEGORY: dict[ObjectCategory, tuple[str, ...]] = {
    ObjectCategory.FURNITURE: (
        "door", "chair", "desk", "sofa", "bookshelf", "bed", "lamp", "table", "cupboard",
    ),
    ObjectCategory.PLANT: (
        "carrot", "potato", "berry", "onion", "tomato", "cucumber", "spinach", "broccoli",
        "lettuce",
    ),
    ObjectCategory.HERBIVORE: (
        "cow", "elephant", "bison", "deer", "sheep", "giraffe", "goat", "horse", "rabbit",
    ),
    ObjectCategory.CARNIVORE: (
        "lion", "jackal", "bobcat", "panthera", "coyote", "wolf", "leopard", "hyena", "tiger",
    ),
}  # fmt: skip

TRAINING_PER_CATEGORY = 6
"""The first six objects of each category are for training; the last three are held out."""

Split = Literal["train", "test", "all"]
"""Which objects a scene draws from: training, held-out (``test``), or every object."""

CATEGORY_OF: dict[str, ObjectCategory] = {
    name: category for category, names in OBJECTS_BY_CATEGORY.items() for name in names
} | {WATER: ObjectCategory.WATER}

GROWABLE = (ObjectCategory.PLANT, ObjectCategory.HERBIVORE, ObjectCategory.CARNIVORE)

FEEDS: dict[ObjectCategory, ObjectCategory] = {
    ObjectCategory.PLANT: ObjectCategory.WATER,
    ObjectCategory.HERBIVORE: ObjectCategory.PLANT,
    ObjectCategory.CARNIVORE: ObjectCategory.HERBIVORE,
}
"""What each growable category must be given to grow (water, a grown plant, a grown herbivore)."""


def objects_in_split(category: ObjectCategory, split: Split) -> tuple[str, ...]:
    """The objects of ``category`` that ``split`` allows (water is in every split)."""
    if category is ObjectCategory.WATER:
        return (WATER,)
    names = OBJECTS_BY_CATEGORY[category]
    if split == "train":
        return names[:TRAINING_PER_CATEGORY]
    if split == "test":
        return names[TRAINING_PER_CATEGORY:]
    return names


def split_of(name: str) -> Literal["train", "test"]:
    """Whether ``name`` is a training or a held-out object (water counts as training)."""
    category = CATEGORY_OF[name]
    if category is ObjectCategory.WATER:
        return "train"
    return "train" if OBJECTS_BY_CATEGORY[category].index(name) < TRAINING_PER_CATEGORY else "test"


def display_name(name: str, grown: bool) -> str:
    """How the observation and the actions name an object: ``carrot seed``, ``baby cow``."""
    category = CATEGORY_OF[name]
    if grown or category not in GROWABLE:
        return name
    if category is ObjectCategory.PLANT:
        return f"{name} seed"
    return f"baby {name}"

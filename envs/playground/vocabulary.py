"""Playground-Text's words and fixed fragments, for word-level tokenizers."""

from __future__ import annotations

from autotelic.core import TextVocabulary
from autotelic.envs.playground.objects import OBJECTS_BY_CATEGORY, WATER
from autotelic.envs.playground.scene import INVENTORY_SIZE


def vocabulary() -> TextVocabulary:
    """Every word of Playground-Text's observations, actions and goals.

    The observation's line openings (``You are standing on:``, ``Inventory (1/2):``)
    and ``Go to`` are fragments of one token each, so a state reads in about 25
    tokens and a candidate action in one or two.
    """
    names = [n for group in OBJECTS_BY_CATEGORY.values() for n in group] + [WATER]
    texts = ["Grasp", "Release all", "You see: nothing", "on: nothing", "(0/2): empty"]
    for name in names:
        texts += [
            f"Grasp {name}, Grow {name}",
            f"{name}, {name} seed, baby {name}",
            f"Go to {name}. Release {name}",
        ]
    inventory = tuple(f"\nInventory ({k}/{INVENTORY_SIZE}):" for k in range(INVENTORY_SIZE + 1))
    phrases = ("You see:", "\nYou are standing on:", *inventory, " Go to")
    return TextVocabulary(texts=tuple(texts), phrases=phrases, corpus=bpe_corpus())


def bpe_corpus() -> tuple[str, ...]:
    """Lines in the shape of Playground-Text prompts and actions (fixed, ordered): what the
    byte-level BPE of the older tiny models (``tiny-causal``, ``tiny-gpt2``,
    ``tiny-seq2seq``) is trained on. Its merges follow this order, so it stays as it was
    when those run directories were made."""
    names = [n for group in OBJECTS_BY_CATEGORY.values() for n in group] + [WATER]
    lines = [
        "Goal: Grasp water",
        "You see: nothing",
        "You are standing on: nothing",
        "Inventory (0/2): empty",
        "Inventory (1/2): water",
        "Inventory (2/2): water, carrot",
        "Action: Grasp",
        "Action: Release all",
    ]
    for name in names:
        lines += [
            f"Goal: Grasp {name}",
            f"Goal: Grow {name}",
            f"You see: {name}, {name} seed, baby {name}",
            f"You are standing on: {name}",
            f"Action: Go to {name}",
            f"Action: Release {name}",
        ]
    return tuple(lines)

"""BabyAI-Text's words and fixed fragments, for word-level tokenizers."""

from __future__ import annotations

from autotelic.core import TextVocabulary
from autotelic.envs.babyai.env import ACTIONS
from autotelic.envs.babyai.grammar import COLOURS, OBJECT_TYPES


def vocabulary() -> TextVocabulary:
    """Every word of BabyAI-Text's observations, actions and missions.

    Line openings (``You see a``, ``You carry``) and the offset words are
    fragments of one token each; numbers are read digit by digit.
    """
    things = [f"{c} {t}" for c in COLOURS for t in OBJECT_TYPES]
    texts = [
        "You see a wall 1 step forward and 2 steps left. 3 steps right.",
        "You see an open locked closed door. You see nothing nearby.",
        "You carry nothing. You carry a ball. You carry an object.",
        "go to the, pick up a, open the, put the ball next to the key",
        "0 1 2 3 4 5 6 7 8 9",
        *ACTIONS,
        *things,
    ]
    phrases = (
        "You see a",
        "\nYou see a",
        "You see an",
        "\nYou see an",
        "\nYou carry",
        " steps forward",
        " step forward",
        " steps left",
        " step left",
        " steps right",
        " step right",
        " next to",
    )
    return TextVocabulary(texts=tuple(texts), phrases=phrases)

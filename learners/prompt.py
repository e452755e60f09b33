"""The text the policy reads: one place builds it, so the collector, the replay
sampler (which rewrites the goal when relabeling) and evaluation agree exactly.

Prompts end with ``"Action:"`` and no trailing space, and candidates are scored
with a leading space (``" Go to water"``): with that split, tokenising prompt and
candidate separately gives the same ids as tokenising them together, which the
one-pass scorer relies on.
"""

from __future__ import annotations

from collections.abc import Sequence

PROMPT_SUFFIX = "Action:"


def build_prompt(goal: str, observation: str) -> str:
    """The policy's input for pursuing ``goal`` from ``observation``."""
    return f"Goal: {goal}\n{observation}\n{PROMPT_SUFFIX}"


def candidate_text(action: str) -> str:
    """How a candidate action is appended to its prompt when scored."""
    return " " + action


def build_prompts(goals: Sequence[str], observations: Sequence[str]) -> list[str]:
    """Vectorised :func:`build_prompt`."""
    if len(goals) != len(observations):
        raise ValueError(f"{len(goals)} goals for {len(observations)} observations")
    return [build_prompt(g, o) for g, o in zip(goals, observations, strict=True)]

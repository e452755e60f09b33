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
ACTIONS_PREFIX = "Possible actions: "
"""Starts the line that lists the admissible actions when the prompt shows them."""


def build_prompt(goal: str, observation: str, actions: Sequence[str] = ()) -> str:
    """The policy's input for pursuing ``goal`` from ``observation``.

    With ``actions``, a line lists them before the suffix: a pretrained model then
    reads what it may do, which moves its prior towards admissible, goal-relevant
    actions (docs/learning.md, section 5). Without, the prompt is what it always was.
    """
    listed = f"{ACTIONS_PREFIX}{', '.join(actions)}\n" if actions else ""
    return f"Goal: {goal}\n{observation}\n{listed}{PROMPT_SUFFIX}"


def candidate_text(action: str) -> str:
    """How a candidate action is appended to its prompt when scored."""
    return " " + action


def build_prompts(
    goals: Sequence[str],
    observations: Sequence[str],
    actions: Sequence[Sequence[str]] | None = None,
) -> list[str]:
    """Vectorised :func:`build_prompt` (``actions`` per row, or none listed)."""
    if len(goals) != len(observations):
        raise ValueError(f"{len(goals)} goals for {len(observations)} observations")
    if actions is None:
        return [build_prompt(g, o) for g, o in zip(goals, observations, strict=True)]
    if len(actions) != len(goals):
        raise ValueError(f"{len(actions)} action lists for {len(goals)} goals")
    return [build_prompt(g, o, a) for g, o, a in zip(goals, observations, actions, strict=True)]

"""A third-party backend, defined outside the package: listing this module in
``run.plugins`` registers ``toy-inline``, whose agent is the local one that counts how
many serial loops it ran, and ``toy-broken``, which builds something else."""

from __future__ import annotations

from typing import Any

from autotelic.core import register_backend
from autotelic.runtime.loop.agent import Agent


class InlineAgent(Agent):
    """The local agent, marked so a test can tell which backend built it."""

    built_by = "toy-inline"


def build_inline(settings: Any, metrics: Any) -> InlineAgent:
    return InlineAgent(settings, metrics)


register_backend(
    "toy-inline", build=build_inline, description="the local agent, from a plug-in",
    modes=("serial",),
)  # fmt: skip
register_backend("toy-broken", build=lambda settings, metrics: object(), description="no agent")

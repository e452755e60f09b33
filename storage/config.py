"""The ``replay:`` section: the episode store and how transitions are replayed.

It lives beside the code it configures, as the env and algorithm sections do; the root
configuration (``runtime/config.py``) composes it. Its defaults are the sampler's
defaults too (:class:`~autotelic.storage.replay.ReplaySampler` reads them from
:data:`REPLAY_DEFAULTS`), so a setting has one default, and
:meth:`~autotelic.storage.replay.ReplaySampler.from_config` is the one mapping from this
section to a sampler that the agent and the benchmarks share.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from autotelic.storage.her import STRATEGIES


class ReplayConfig(BaseModel):
    """The episode store and how transitions are replayed."""

    model_config = ConfigDict(extra="forbid")

    capacity_transitions: int = Field(
        500_000, ge=1000, description="Transitions kept; the oldest whole episodes go first."
    )
    her_ratio: float = Field(
        0.8, ge=0.0, le=1.0, description="Share of replayed rows relabeled in hindsight (0: off)."
    )
    strategy: Literal["future", "final", "episode"] = Field(
        "future", description=f"Which achieved goal relabels a row; one of {', '.join(STRATEGIES)}."
    )
    her_negatives: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="Share of relabeled rows given a goal the episode never achieved, of the "
        "category of one it did (reward 0: what binds a goal to its object); 0: off "
        "(docs/learning.md section 9).",
    )
    her_balance: bool = Field(
        True,
        description="Draw those negatives from the batch's positive relabels, so each goal "
        "gets negatives in proportion to its positives (off: uniform over training goals).",
    )
    her_steps_left: bool = Field(
        False,
        description="A relabeled row shows the relabeled goal's steps left (observed time "
        "limit), its window stops at that goal's horizon (off: the pursued episode's count).",
    )
    durable: bool = Field(
        True, description="Sync each episode to disk before it counts as stored (slower, safe)."
    )
    max_map_size_gib: float | None = Field(
        None, gt=0, description="Refuse to grow the LMDB map past this (None: until disk full)."
    )


REPLAY_DEFAULTS = ReplayConfig()
"""Every replay setting at its default: what a sampler built without a configuration uses."""

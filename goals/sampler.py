"""Draw goals in proportion to learning progress, with exploration and a floor.

Pure LP sampling starves goals whose LP is zero now but may rise (a goal not yet
reached, or one being forgotten), so a decaying share of uniform exploration is
mixed in, and a floor that never decays guarantees every known goal some
episodes. All randomness comes from one seeded numpy Generator.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from autotelic.goals.config import SamplerConfig
from autotelic.goals.estimators import FloatArray
from autotelic.goals.state import decode_rng, encode_rng


def lp_probabilities(lp: Sequence[float] | FloatArray, epsilon: float, floor: float) -> FloatArray:
    """Probabilities ``(1 - floor) * [(1 - eps) * lp_share + eps * u] + floor * u``.

    ``u`` is uniform over the goals and ``lp_share`` is LP normalised. Every
    probability is at least ``floor / n``. With no LP anywhere (all zero) the LP
    share is uniform. NaN or negative LP counts as zero.
    """
    values = np.nan_to_num(np.asarray(lp, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    n = values.size
    if n == 0:
        return np.zeros(0)
    values = np.clip(values, 0.0, None)
    uniform = np.full(n, 1.0 / n)
    total = values.sum()
    share = values / total if total > 0 else uniform
    mixed = (1.0 - epsilon) * share + epsilon * uniform
    probs: FloatArray = (1.0 - floor) * mixed + floor * uniform
    normalised: FloatArray = probs / probs.sum()
    return normalised


class LPSampler:
    """Seeded LP-proportional sampler with the exploration schedule of its config."""

    def __init__(self, config: SamplerConfig, seed: int = 0) -> None:
        self.config = config
        self.rng = np.random.default_rng(seed)

    def epsilon(self, episode: int) -> float:
        """Exploration share after ``episode`` reported episodes."""
        return self.config.epsilon.value(episode)

    def probabilities(self, lp: Sequence[float] | FloatArray, episode: int) -> FloatArray:
        """Probability of each goal, aligned with ``lp``."""
        return lp_probabilities(lp, self.epsilon(episode), self.config.floor)

    def sample(self, probabilities: FloatArray, n: int) -> npt.NDArray[np.int64]:
        """``n`` goal indices drawn independently (with replacement)."""
        if n < 0:
            raise ValueError(f"cannot draw {n} goals")
        if probabilities.size == 0:
            raise ValueError("cannot draw from an empty goal set")
        return self.rng.choice(probabilities.size, size=n, p=probabilities).astype(np.int64)

    def state_dict(self) -> dict[str, Any]:
        """The generator state (the schedule's clock is the daemon's episode count)."""
        return {"rng": encode_rng(self.rng)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue exactly where :meth:`state_dict` left off."""
        self.rng = decode_rng(state["rng"])

"""Draw goals in proportion to learning progress, with exploration, a floor and a reserve.

Pure LP sampling starves goals whose LP is zero now but may rise (a goal not yet
reached, or one being forgotten), so a decaying share of uniform exploration is
mixed in, and a floor that never decays guarantees every known goal some
episodes.

Neither is enough for the goals that were never achieved: their LP is exactly 0
(no success to measure progress from), so as exploration decays they keep only
their floor, while they are the goals the agent most needs to practise before
it can get anywhere with them (measured: Grow goals fell from 43% of the
episodes to ~8%). The *unsolved reserve* guarantees them a total share: when
LP sampling and exploration would give the unsolved goals less than
``unsolved_share`` of the episodes, the shortfall is taken from the solved goals
(in proportion, so their LP ratios stay) and spread evenly over the unsolved
ones. It tops up and never takes away: while exploration already gives them
enough (early on), nothing changes, and every goal keeps its floor. Which goals
are unsolved is the caller's (the daemon's) to say; a goal that cannot be
achieved in ways nobody can tell stays unsolved forever and takes part of the
reserve: its size bounds what that costs.

*Category balance* (``balance: category``) matches the sampling to what is
measured: results are the mean success over goal categories, so a category of
six goals weighs as much as one of twenty-four, while per-goal sampling gives it
a quarter of the episodes (measured: Grow plant got ~13% of the pursued
episodes and is half of the headline metric). A category is drawn uniformly
among those with a goal that may be achieved, then a goal within it by the
same rule as above, applied to that category's goals alone: LP normalised
within the category, exploration, floor and unsolved reserve all per category,
so the unsolved goals of one category no longer share a reserve with those of
another. A category no episode can achieve (every goal infeasible) keeps only
the per-goal floor.

It is the default since the learner makes progress on Grow plant. On
``bench/configs/cpu.yaml`` (SAC-GLAM + HER, Grasp + Grow plant, 10,000 env steps,
seeds 0-2) greedy success, mean over the two categories, was 0.79 [0.47, 1.00]
balanced against 0.50 [0.43, 0.57] per goal, Grow plant 0.75 against 0.03
(docs/results.md, ablations). Earlier, while the critic's gradient into the body
was scaled to a tenth and no run learned Grow, it measured worse (0.15 against
0.26 at 8,000 steps): Grow's extra episodes taught nothing and Grasp lost them.
``balance: goal`` is the sampling before it.

All randomness comes from one seeded numpy Generator.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from autotelic.goals.config import SamplerConfig
from autotelic.goals.estimators import FloatArray
from autotelic.goals.state import decode_rng, encode_rng


def lp_probabilities(
    lp: Sequence[float] | FloatArray,
    epsilon: float,
    floor: float,
    unsolved: Sequence[bool] | npt.NDArray[np.bool_] | None = None,
    unsolved_share: float = 0.0,
    frontier: Sequence[bool] | npt.NDArray[np.bool_] | None = None,
    frontier_share: float = 0.0,
) -> FloatArray:
    """Probabilities ``(1 - floor) * reserve(mix) + floor * u``.

    With ``frontier`` and ``frontier_share``, a second reserve on top of the first gives
    the goals ``frontier`` marks (unsolved goals some episode has achieved: the ones known
    to be within reach) at least that share together, the same way.

    ``mix = (1 - eps) * lp_share + eps * u``; ``u`` is uniform over the goals and
    ``lp_share`` is LP normalised. ``reserve`` moves the least mass from the goals
    ``unsolved`` does not mark (in proportion) to those it marks (evenly) that
    gives the unsolved goals a total of at least ``unsolved_share``: nothing when
    they have that already or none is unsolved, everything but the others' floor
    when the share asks more. Every probability is at least ``floor / n``. With
    no LP anywhere (all zero) the LP share is uniform. NaN or negative LP counts
    as zero.
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
    if unsolved is not None and unsolved_share > 0.0:
        mixed = _reserve(mixed, np.asarray(unsolved, dtype=bool), unsolved_share, floor)
    if frontier is not None and frontier_share > 0.0:
        mixed = _reserve(mixed, np.asarray(frontier, dtype=bool), frontier_share, floor)
    probs: FloatArray = (1.0 - floor) * mixed + floor * uniform
    normalised: FloatArray = probs / probs.sum()
    return normalised


def _reserve(
    mixed: FloatArray, unsolved: npt.NDArray[np.bool_], share: float, floor: float
) -> FloatArray:
    """``mixed`` with the least mass moved from the solved goals (in proportion to what each
    has) to the unsolved ones (evenly) that makes the unsolved total, after the floor is
    mixed in, at least ``share``. Unsolved goals only gain; solved ones keep their ratios."""
    if unsolved.shape != mixed.shape:
        raise ValueError(f"{unsolved.size} unsolved flags for {mixed.size} goals")
    m = int(unsolved.sum())
    if m == 0:
        return mixed
    n = mixed.size
    # Total after the floor: (1 - floor) * inner + floor * m / n; solve for inner.
    needed = (share - floor * m / n) / (1.0 - floor)
    have = float(mixed[unsolved].sum())
    if have >= needed:
        return mixed
    moved = min(needed, 1.0) - have  # at most all the solved goals hold
    topped: FloatArray = np.where(
        unsolved, mixed + moved / m, mixed * (1.0 - moved / max(1.0 - have, 1e-300))
    )
    return topped


def balanced_probabilities(
    lp: Sequence[float] | FloatArray,
    categories: Sequence[str],
    epsilon: float,
    floor: float,
    unsolved: Sequence[bool] | npt.NDArray[np.bool_] | None = None,
    unsolved_share: float = 0.0,
    possible: Sequence[bool] | npt.NDArray[np.bool_] | None = None,
) -> FloatArray:
    """Each category with a goal ``possible`` allows gets an equal share, spread over its
    goals by :func:`lp_probabilities` on them alone (reserve and floor per category).

    ``possible`` marks the goals that may be achieved (None: all). A category with
    none of them would take a whole share of episodes none of which can succeed,
    so its goals keep only the floor they have under per-goal sampling
    (``floor / n`` each, ``n`` the number of goals) and the other categories share
    the rest. When no goal is possible at all every category counts.
    """
    values = np.asarray(lp, dtype=np.float64)
    if len(categories) != values.size:
        raise ValueError(f"{len(categories)} categories for {values.size} goals")
    labels = np.asarray(categories, dtype=object)
    flags = _flags(unsolved, values.size)
    allowed = np.ones(values.size, dtype=bool) if possible is None else np.asarray(possible, bool)
    names = [c for c in dict.fromkeys(categories) if allowed[labels == c].any()]
    if not names:
        names = list(dict.fromkeys(categories))
    balanced = np.isin(labels, np.asarray(names, dtype=object))
    probs = np.where(balanced, 0.0, floor / max(values.size, 1))
    left = 1.0 - float(probs.sum())
    for name in names:
        mask = labels == name
        inner = lp_probabilities(values[mask], epsilon, floor, flags[mask], unsolved_share)
        probs[mask] = inner * left / len(names)
    return probs


def _flags(
    unsolved: Sequence[bool] | npt.NDArray[np.bool_] | None, n: int
) -> npt.NDArray[np.bool_]:
    """The unsolved marks as an array of ``n`` (all False when there are none)."""
    if unsolved is None:
        return np.zeros(n, dtype=bool)
    flags = np.asarray(unsolved, dtype=bool)
    if flags.shape != (n,):
        raise ValueError(f"{flags.size} unsolved flags for {n} goals")
    return flags


class LPSampler:
    """Seeded LP-proportional sampler with the exploration schedule of its config."""

    def __init__(self, config: SamplerConfig, seed: int = 0) -> None:
        self.config = config
        self.rng = np.random.default_rng(seed)

    def epsilon(self, episode: int) -> float:
        """Exploration share after ``episode`` reported episodes."""
        return self.config.epsilon.value(episode)

    def probabilities(
        self,
        lp: Sequence[float] | FloatArray,
        episode: int,
        unsolved: Sequence[bool] | npt.NDArray[np.bool_] | None = None,
        categories: Sequence[str] | None = None,
        possible: Sequence[bool] | npt.NDArray[np.bool_] | None = None,
        frontier: Sequence[bool] | npt.NDArray[np.bool_] | None = None,
    ) -> FloatArray:
        """Probability of each goal, aligned with ``lp``; ``unsolved`` marks the goals the
        reserve is for (None: no reserve). Under ``balance: category`` the goals'
        ``categories`` (and which goals are ``possible``) set the per-category shares;
        without ``categories`` every goal is its own pool member, as under ``goal``."""
        epsilon, floor, share = self.epsilon(episode), self.config.floor, self.config.unsolved_share
        if self.config.balance == "category" and categories is not None:
            return balanced_probabilities(lp, categories, epsilon, floor, unsolved, share, possible)
        return lp_probabilities(
            lp, epsilon, floor, unsolved, share, frontier, self.config.frontier_share
        )

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

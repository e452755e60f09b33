"""Choosing actions: the collector's and the evaluator's view of the LLM policy.

pi(a|s) is the softmax, over the state's candidates, of each candidate's summed
token log-probability. Acting runs the one-pass scorer under inference mode and
holds the caller's lock only for the forward pass, so a learner's optimizer step
(taken under the same lock) never interleaves with it; sampling happens after
the lock is released.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt
import torch

from autotelic.core import ActResult, Generator, Lock, held
from autotelic.learners.encoding import ScoringInputError
from autotelic.learners.scorer import Scorer


def choose(
    probs: Sequence[npt.NDArray[np.float64]], *, greedy: bool, generator: Generator | None
) -> npt.NDArray[np.int64]:
    """Index per state: the most probable (first on ties) or a sample from ``probs``."""
    if greedy:
        return np.array([int(np.argmax(p)) for p in probs], dtype=np.int64)
    if isinstance(generator, torch.Generator):
        return np.array(
            [
                int(torch.multinomial(torch.from_numpy(p), 1, generator=generator).item())
                for p in probs
            ],
            dtype=np.int64,
        )
    rng = generator if generator is not None else np.random.default_rng()
    return np.array([int(rng.choice(len(p), p=p)) for p in probs], dtype=np.int64)


class Policy:
    """Acting with the LLM policy of a learner (shared model, read under a lock)."""

    def __init__(self, scorer: Scorer, version: Callable[[], int] = lambda: 0) -> None:
        self.scorer = scorer
        self._version = version

    def act(
        self,
        prompts: Sequence[str],
        candidates: Sequence[Sequence[str]],
        *,
        greedy: bool = False,
        generator: Generator | None = None,
        lock: Lock | None = None,
    ) -> ActResult:
        """Pick one action per state (sampled, or greedy for evaluation)."""
        for i, cands in enumerate(candidates):
            if len(cands) == 0:
                raise ScoringInputError(f"state {i} has no candidate actions to choose from")
        with held(lock), torch.inference_mode():
            version = self._version()
            scores = self.scorer.score(prompts, candidates)
            log_pi = scores.log_pi.double().cpu()
            entropy = scores.entropy().float().cpu().numpy()
        per_state = [t.numpy() for t in scores.split(log_pi)]
        weights = [np.exp(lp) for lp in per_state]
        probs = [w / w.sum() for w in weights]
        actions = choose(probs, greedy=greedy, generator=generator)
        chosen = np.array([lp[a] for lp, a in zip(per_state, actions, strict=True)])
        return ActResult(
            actions=actions,
            log_probs=chosen.astype(np.float32),
            entropies=entropy.astype(np.float32),
            probs=[p.astype(np.float32) for p in probs],
            policy_version=version,
        )

"""The discrete SAC quantities as pure functions of flat per-candidate tensors.

Kept apart from the learner so each formula can be checked by hand on a few
numbers (tests/test_learners_sac.py does):

* soft value    V(s') = sum_a' pi(a'|s') [ min_j Qtarg_j(s', a') - alpha log pi(a'|s') ]
* target        y = R + discount * (1 - terminated) * V(s')
* critic loss   sum_j MSE(Q_j(s, a), y)
* actor loss    mean_s sum_a pi(a|s) [ alpha log pi(a|s) - min_j Q_j(s, a) ]
* alpha loss    mean_s log_alpha * (H(pi(.|s)) - kappa log |A(s)|)
* body gradient  clip(g_actor, m) + s * clip(g_critic, m) on the shared LLM weights

``discount`` is gamma^k for the k steps the n-step reward sums, so an n-step
row cut short by the end of its episode bootstraps with the right power.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from autotelic.learners.layout import CandidateLayout


def soft_values(layout: CandidateLayout, log_pi: Tensor, q: Tensor, alpha: float) -> Tensor:
    """[B] soft state values from log pi [N] and Q estimates [J, N] (min over J)."""
    min_q = q.min(dim=0).values
    return layout.sum(log_pi.exp() * (min_q - alpha * log_pi))


def td_targets(
    rewards: Tensor, discounts: Tensor, terminated: Tensor, next_values: Tensor
) -> Tensor:
    """[B] y = R + discount * (1 - terminated) * V(s'); terminated rows never bootstrap."""
    # where() rather than a product: a terminated row's V(s') is never read, even if NaN.
    bootstrap = discounts * next_values
    return rewards + torch.where(terminated.bool(), torch.zeros_like(bootstrap), bootstrap)


def critic_loss(q_taken: Tensor, targets: Tensor) -> Tensor:
    """Sum over heads of the mean squared error: q_taken [J, B], targets [B]."""
    return ((q_taken - targets.unsqueeze(0)) ** 2).mean(dim=1).sum()


def actor_loss(layout: CandidateLayout, log_pi: Tensor, q: Tensor, alpha: float) -> Tensor:
    """mean_s sum_a pi(a|s) [alpha log pi(a|s) - min_j Q_j(s, a)], Q detached."""
    min_q = q.detach().min(dim=0).values
    return layout.sum(log_pi.exp() * (alpha * log_pi - min_q)).mean()


def target_entropy(counts: Sequence[int], kappa: float, device: torch.device | str) -> Tensor:
    """[B] H* = kappa * log |A(s)| (0 for a state with a single action)."""
    return torch.tensor(
        [kappa * math.log(c) if c > 0 else 0.0 for c in counts],
        dtype=torch.float32,
        device=device,
    )


def alpha_loss(log_alpha: Tensor, entropy: Tensor, target: Tensor) -> Tensor:
    """Its gradient raises log alpha when entropy is below target and lowers it above."""
    return log_alpha * (entropy.detach() - target).mean()


Grads = Sequence[Tensor | None]
"""One gradient per parameter, None where a loss does not reach that parameter."""


@dataclass(frozen=True)
class CombinedGradient:
    """The body's gradient after per-loss clipping, and what went into it."""

    grads: list[Tensor | None]
    actor_norm: float
    """|g_actor| before clipping."""
    critic_norm: float
    """|g_critic| before clipping and scaling."""
    cosine: float
    """cos(g_actor, g_critic): below 0 the two losses pull the body apart."""
    actor_share: float
    """|actor part| / (|actor part| + |critic part|) of the sum, after clip and scale."""


def total_norm(grads: Grads) -> float:
    """Euclidean norm of all the gradients together (0 when there are none)."""
    present = [g for g in grads if g is not None]
    return float(torch.nn.utils.get_total_norm(present)) if present else 0.0


def clip_coefficient(norm: float, max_norm: float | None) -> float:
    """The factor that brings ``norm`` down to ``max_norm`` (as clip_grad_norm_ computes it)."""
    if max_norm is None:
        return 1.0
    return min(1.0, max_norm / (norm + 1e-6))


def combine_gradients(
    actor: Grads, critic: Grads, max_norm: float | None, critic_scale: float
) -> CombinedGradient:
    """clip(actor, max_norm) + critic_scale * clip(critic, max_norm), parameter by parameter.

    Clipping each loss's gradient on its own keeps a large critic gradient from
    shrinking the actor's share of the step (one clip of the sum scales both
    down together); ``critic_scale`` then sets how much the critic shapes the body.
    """
    if len(actor) != len(critic):
        raise ValueError(f"{len(actor)} actor gradients for {len(critic)} critic gradients")
    a_norm, c_norm = total_norm(actor), total_norm(critic)
    ka = clip_coefficient(a_norm, max_norm)
    kc = clip_coefficient(c_norm, max_norm) * critic_scale
    dot = sum(
        float(torch.sum(a * c))
        for a, c in zip(actor, critic, strict=True)
        if a is not None and c is not None
    )
    cosine = dot / (a_norm * c_norm) if a_norm > 0 and c_norm > 0 else 0.0
    parts = ka * a_norm + kc * c_norm
    return CombinedGradient(
        grads=[_weighted_sum(a, ka, c, kc) for a, c in zip(actor, critic, strict=True)],
        actor_norm=a_norm,
        critic_norm=c_norm,
        cosine=cosine,
        actor_share=ka * a_norm / parts if parts > 0 else 0.0,
    )


def _weighted_sum(a: Tensor | None, ka: float, c: Tensor | None, kc: float) -> Tensor | None:
    if a is None:
        return None if c is None or kc == 0.0 else c * kc
    if c is None or kc == 0.0:
        return a * ka
    return torch.add(a * ka, c, alpha=kc)

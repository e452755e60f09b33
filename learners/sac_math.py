"""The discrete SAC quantities as pure functions of flat per-candidate tensors.

Kept apart from the learner so each formula can be checked by hand on a few
numbers (see DESIGN.md section 1):

* soft value    V(s') = sum_a' pi(a'|s') [ min_j Qtarg_j(s', a') - alpha log pi(a'|s') ]
* target        y = R + discount * (1 - terminated) * V(s')
* critic loss   sum_j MSE(Q_j(s, a), y)
* actor loss    mean_s sum_a pi(a|s) [ alpha log pi(a|s) - min_j Q_j(s, a) ]
* alpha loss    mean_s log_alpha * (H(pi(.|s)) - kappa log |A(s)|)

``discount`` is gamma^k for the k steps the n-step reward sums, so an n-step
row cut short by the end of its episode bootstraps with the right power.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

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

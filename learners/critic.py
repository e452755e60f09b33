"""Critic heads on the LLM's hidden states, their targets, and the target LLM twin.

Q(s, g, a) is an MLP on the hidden state of the candidate's last token, which
the one-pass scorer returns alongside the log-probabilities. Twin heads give
clipped double-Q. The targets are Polyak averages: of the heads, and (under
LoRA) of the adapter that shapes the features the heads read.

The target adapter lives in a *twin* of the peft model that shares every frozen
base weight with the online model and owns only its copy of the LoRA matrices.
Reading target features is then a plain forward of the twin: nothing switches
an active adapter on the shared model, so the collector, running the online
model in another thread at the same moment, is never affected.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor, nn


class QHead(nn.Module):
    """One Q network: features [N, H] -> values [N]."""

    def __init__(self, in_features: int, hidden: Sequence[int]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, features: Tensor) -> Tensor:
        out: Tensor = self.net(features).squeeze(-1)
        return out


class QEnsemble(nn.Module):
    """``num_heads`` independent Q heads: features [N, H] -> values [num_heads, N]."""

    def __init__(self, in_features: int, hidden: Sequence[int], num_heads: int = 2) -> None:
        super().__init__()
        if num_heads < 1:
            raise ValueError(f"num_heads must be >= 1, got {num_heads}")
        self.heads = nn.ModuleList(QHead(in_features, hidden) for _ in range(num_heads))

    def forward(self, features: Tensor) -> Tensor:
        return torch.stack([head(features) for head in self.heads])


@torch.no_grad()
def polyak_(target: Iterable[Tensor], online: Iterable[Tensor], tau: float) -> None:
    """target <- (1 - tau) * target + tau * online, in place."""
    targets, onlines = list(target), list(online)
    if len(targets) != len(onlines):
        raise ValueError(f"{len(targets)} target tensors for {len(onlines)} online tensors")
    if targets:
        torch._foreach_lerp_(targets, onlines, tau)


def target_twin(module: nn.Module) -> nn.Module:
    """A copy of ``module`` sharing its frozen weights and buffers, owning the rest.

    Under LoRA only the adapter matrices are copied, so the twin costs the
    memory of one adapter. Its own parameters never need gradients.
    """
    memo: dict[int, object] = {}
    for p in module.parameters():
        if not p.requires_grad:
            memo[id(p)] = p
    for b in module.buffers():
        memo[id(b)] = b
    twin = copy.deepcopy(module, memo)
    for p in twin.parameters():
        if p.requires_grad:
            p.requires_grad_(False)
    twin.eval()
    return twin


def twin_parameters(twin: nn.Module, names: Sequence[str]) -> list[nn.Parameter]:
    """The twin's copies of the online module's parameters ``names``, in the same order."""
    twin_params = dict(twin.named_parameters())
    missing = [n for n in names if n not in twin_params]
    if missing:
        raise ValueError(f"twin lacks parameters {missing[:3]}")
    return [twin_params[n] for n in names]

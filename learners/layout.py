"""Ragged candidate lists as flat tensors, and the per-state operations on them.

States have different numbers of candidates, so per-candidate values live in one
flat tensor of length N = sum of the counts, ordered state by state. Per-state
softmaxes, sums and expectations go through a padded [B, K_max] view whose
padding never receives probability.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import torch
from torch import Tensor

PAD_LOGIT = -1e30
"""Fill for padding slots before a softmax: finite, so a state without
candidates gives no NaN, yet exp() of it is exactly 0 next to a real entry."""


@dataclass(frozen=True)
class CandidateLayout:
    """Where each state's candidates sit in the flat per-candidate tensors."""

    counts: tuple[int, ...]
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @classmethod
    def of(cls, counts: Sequence[int], device: torch.device | str = "cpu") -> CandidateLayout:
        if any(c < 0 for c in counts):
            raise ValueError(f"negative candidate count in {list(counts)}")
        return cls(tuple(int(c) for c in counts), torch.device(device))

    @property
    def num_states(self) -> int:
        return len(self.counts)

    @property
    def num_candidates(self) -> int:
        return sum(self.counts)

    @property
    def max_count(self) -> int:
        return max(self.counts, default=0)

    def _counts_tensor(self) -> Tensor:
        return torch.tensor(self.counts, dtype=torch.long, device=self.device)

    @cached_property
    def state_index(self) -> Tensor:
        """[N] the state each candidate belongs to."""
        return torch.repeat_interleave(
            torch.arange(self.num_states, device=self.device), self._counts_tensor()
        )

    @cached_property
    def offsets(self) -> Tensor:
        """[B] flat index of each state's first candidate."""
        counts = self._counts_tensor()
        return torch.cumsum(counts, 0) - counts

    @cached_property
    def slot(self) -> Tensor:
        """[N] each candidate's position within its state's list."""
        return (
            torch.arange(self.num_candidates, device=self.device) - self.offsets[self.state_index]
        )

    @cached_property
    def _padded_index(self) -> Tensor:
        return self.state_index * self.max_count + self.slot

    def pad(self, values: Tensor, fill: float) -> Tensor:
        """[..., N] -> [..., B, K_max], padding slots set to ``fill``."""
        lead = values.shape[:-1]
        out = values.new_full((*lead, self.num_states * self.max_count), fill)
        out = out.index_copy(-1, self._padded_index, values)
        return out.reshape(*lead, self.num_states, self.max_count)

    def unpad(self, padded: Tensor) -> Tensor:
        """[..., B, K_max] -> [..., N] (inverse of :meth:`pad`)."""
        lead = padded.shape[:-2]
        return padded.reshape(*lead, -1).index_select(-1, self._padded_index)

    def log_softmax(self, scores: Tensor) -> Tensor:
        """Per-state log-softmax of flat [N] scores."""
        return self.unpad(torch.log_softmax(self.pad(scores, PAD_LOGIT), dim=-1))

    def sum(self, values: Tensor) -> Tensor:
        """Per-state sum of flat [..., N] values -> [..., B]."""
        return self.pad(values, 0.0).sum(-1)

    def flat_index(self, actions: Tensor) -> Tensor:
        """[B] action index within each state -> [B] flat candidate index."""
        return self.offsets + actions.to(self.device, torch.long)

    def entropy(self, log_pi: Tensor) -> Tensor:
        """[B] entropy of each state's policy from flat log-probabilities."""
        return -self.sum(log_pi.exp() * log_pi)

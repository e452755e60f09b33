"""The policy's trainable weights, published by version through Ray's object store.

A collector actor acts with its own copy of the policy. After learner updates only
what training changes and acting reads travels: the LLM's trainable tensors (the LoRA
adapter, or all weights under full fine-tuning), not the frozen base, the critic or
the optimizer state. A learner that does not expose them (a plug-in without a
``model.trainable_parameters()``) sends its whole ``state_dict`` instead.

The learner side keeps one object per published version in the object store and
drops the previous one; an actor compares versions and fetches only when behind, so
an unchanged policy costs nothing per call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ray
import torch

from autotelic.core import Learner, Lock
from autotelic.core.learner import held


@dataclass(frozen=True)
class PolicyWeights:
    """One published policy: its version and either the trainable tensors by name
    (``tensors``) or, for learners that do not name them, their whole state (``state``)."""

    version: int
    tensors: dict[str, torch.Tensor] | None
    state: dict[str, Any] | None

    @property
    def num_bytes(self) -> int:
        """Bytes of tensor data that travel (0 when the whole state is sent)."""
        if self.tensors is None:
            return 0
        return sum(t.numel() * t.element_size() for t in self.tensors.values())


def _trainable(learner: Learner) -> Callable[[], list[tuple[str, torch.nn.Parameter]]] | None:
    model = getattr(learner, "model", None)
    named = getattr(model, "trainable_parameters", None)
    return named if callable(named) else None


def acting_weights(learner: Learner, lock: Lock | None = None) -> PolicyWeights:
    """CPU copies of what acting reads, taken under ``lock`` (the learner's write lock)."""
    named = _trainable(learner)
    with held(lock):
        version = int(learner.policy_version)
        if named is None:
            return PolicyWeights(version=version, tensors=None, state=learner.state_dict())
        tensors = {n: p.detach().to("cpu", copy=True) for n, p in named()}
    return PolicyWeights(version=version, tensors=tensors, state=None)


def load_weights(learner: Learner, weights: PolicyWeights, lock: Lock | None = None) -> None:
    """Copy ``weights`` into ``learner`` (a collector's policy copy) and take its version."""
    if weights.tensors is None:
        assert weights.state is not None
        learner.load_state_dict(weights.state, write_lock=lock)
    else:
        named = _trainable(learner)
        if named is None:
            raise TypeError(
                f"{type(learner).__name__} names no trainable parameters but was sent tensors"
            )
        params = dict(named())
        if set(params) != set(weights.tensors):
            raise ValueError("published weights do not match the collector's trainable tensors")
        with held(lock), torch.no_grad():
            for name, tensor in weights.tensors.items():
                params[name].copy_(tensor)
    learner.policy_version = weights.version


@dataclass(frozen=True)
class Published:
    """What the driver hands a collector with each call: the newest version and where its
    weights lie (a reference, so Ray fetches them only when the actor asks)."""

    version: int
    ref: ray.ObjectRef[PolicyWeights]


class WeightsBoard:
    """The newest published policy, kept in the object store (the previous one released)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: Published | None = None
        self.publications = 0
        self.last_bytes = 0

    def publish(self, learner: Learner, lock: Lock | None = None) -> Published:
        """Put the learner's current acting weights in the object store (if newer)."""
        with self._lock:
            latest = self._latest
            if latest is not None and latest.version == learner.policy_version:
                return latest
        weights = acting_weights(learner, lock)
        ref = ray.put(weights)
        with self._lock:
            if self._latest is None or weights.version >= self._latest.version:
                self._latest = Published(weights.version, ref)
                self.publications += 1
                self.last_bytes = weights.num_bytes
            return self._latest

    @property
    def latest(self) -> Published | None:
        with self._lock:
            return self._latest

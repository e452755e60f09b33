"""What every LLM learner shares: the model, the scorer, acting, counters, checkpoints.

Concurrency contract (the runtime's collector and learner share one model):
parameters change only inside ``write_lock`` (optimizer steps, Polyak updates,
loading a checkpoint), and acting reads the model inside the same lock. Forward
and backward passes of an update run outside it, concurrently with acting;
they only read parameters and write ``.grad``, which acting never reads.
Acting uses its own tokenizer copy (fast tokenizers are not safe to share across
threads). Of a learner's methods only ``act`` is meant to run concurrently with
``update``; ``q_values``, ``compute_targets`` and checkpointing belong to the
learner's thread (``load_state_dict`` takes the write lock when given one).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from autotelic.core import ActResult, Generator, Lock, held
from autotelic.core.errors import CheckpointError
from autotelic.learners.models import PolicyModel, frozen_fingerprint
from autotelic.learners.policy import Policy
from autotelic.learners.prompt import build_prompt
from autotelic.learners.scorer import PaddingSide, Scorer

__all__ = ["CheckpointError", "LLMLearner", "Lock", "clip_and_norm", "held", "snapshot"]


def snapshot(value: Any) -> Any:
    """A deep copy with every tensor detached and moved to the CPU.

    Optimizer state dicts hold live references that the next step mutates in
    place; a checkpoint must not change after it was taken.
    """
    if isinstance(value, Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, Mapping):
        return {k: snapshot(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(snapshot(v) for v in value)
    return value


def clip_and_norm(params: Sequence[nn.Parameter], max_norm: float | None) -> float:
    """Gradient norm before clipping (clipped in place when ``max_norm`` is set)."""
    with_grad = [p for p in params if p.grad is not None]
    if not with_grad:
        return 0.0
    limit = max_norm if max_norm is not None else float("inf")
    return float(torch.nn.utils.clip_grad_norm_(with_grad, limit))


class LLMLearner:
    """Base of the SAC and PPO learners: owns the policy model and its version."""

    algorithm = "base"

    def __init__(self, model: PolicyModel, *, padding_side: PaddingSide = "right") -> None:
        self.model = model
        self.scorer = Scorer(model, padding_side=padding_side)
        self.policy = Policy(self.scorer.fork(), version=lambda: self.policy_version)
        self.llm_params = [p for _, p in model.trainable_parameters()]
        self._llm_names = [n for n, _ in model.trainable_parameters()]
        self.policy_version = 0
        """Counts optimizer steps that changed the LLM weights (what acting uses)."""
        self.num_updates = 0
        """Counts calls of ``update`` that stepped an optimizer."""
        self._fingerprint = (
            model.base_fingerprint
            if model.base_fingerprint is not None
            else frozen_fingerprint(model.module)
        )

    @property
    def device(self) -> torch.device:
        return self.model.device

    def prompt(self, goal: str, observation: str, actions: Sequence[str]) -> str:
        """The text this policy reads (see :mod:`autotelic.learners.prompt`); the actions
        are listed when the model's config says ``list_actions``."""
        return build_prompt(goal, observation, actions if self.model.config.list_actions else ())

    def act(
        self,
        prompts: Sequence[str],
        candidates: Sequence[Sequence[str]],
        *,
        greedy: bool = False,
        generator: Generator | None = None,
        lock: Lock | None = None,
    ) -> ActResult:
        """Choose one action per state with the current policy (under ``lock``)."""
        return self.policy.act(prompts, candidates, greedy=greedy, generator=generator, lock=lock)

    def _named(self, params: Sequence[Tensor]) -> dict[str, Tensor]:
        """CPU copies of ``params`` (the LLM's trainable tensors or their twins), by name."""
        named: dict[str, Tensor] = snapshot(dict(zip(self._llm_names, params, strict=True)))
        return named

    def _copy_named(self, params: Sequence[Tensor], saved: Mapping[str, Tensor]) -> None:
        """Copy ``saved`` (as :meth:`_named` gives it) into ``params`` in place."""
        with torch.no_grad():
            for name, param in zip(self._llm_names, params, strict=True):
                param.copy_(saved[name])

    def _common_state(self) -> dict[str, Any]:
        return {
            "algorithm": self.algorithm,
            "model": self.model.config.model_dump(mode="json"),
            "base_fingerprint": self._fingerprint,
            "llm": self._named(self.llm_params),
            "counters": {"policy_version": self.policy_version, "num_updates": self.num_updates},
        }

    def _load_common(self, state: Mapping[str, Any]) -> None:
        if state.get("algorithm") != self.algorithm:
            raise CheckpointError(
                f"checkpoint is for {state.get('algorithm')!r}, this learner is {self.algorithm!r}"
            )
        fingerprint = float(state["base_fingerprint"])
        if abs(fingerprint - self._fingerprint) > 1e-6 * max(1.0, abs(self._fingerprint)):
            raise CheckpointError(
                "checkpoint was trained on other frozen base weights "
                f"(checksum {fingerprint:.6g}, this model {self._fingerprint:.6g})"
            )
        saved_frozen = (state.get("model") or {}).get("frozen_layers")
        if isinstance(saved_frozen, int) and saved_frozen != self.model.frozen_layers:
            raise CheckpointError(
                f"checkpoint trained with model.frozen_layers {saved_frozen}, this model with "
                f"{self.model.frozen_layers} ('auto' decides by the device and the model): "
                f"set model.frozen_layers: {saved_frozen} to load it"
            )
        llm = state["llm"]
        shapes = {n: tuple(p.shape) for n, p in zip(self._llm_names, self.llm_params, strict=True)}
        if {n: tuple(t.shape) for n, t in llm.items()} != shapes:
            raise CheckpointError(
                f"checkpoint's {len(llm)} LLM tensors do not match the {len(shapes)} this "
                "model trains (names or shapes differ): saved with another fine-tuning mode "
                "or LoRA setting?"
            )
        self._copy_named(self.llm_params, llm)
        counters = state["counters"]
        self.policy_version = int(counters["policy_version"])
        self.num_updates = int(counters["num_updates"])

"""SAC-GLAM: discrete Soft Actor-Critic with the LLM as the actor.

One update, on a :class:`~autotelic.learners.batch.TransitionBatch`:

1. targets (no gradient): the online policy scores each non-terminated row's
   next state in one pass (pi(a'|s')); the target heads read features from the
   target LLM twin (a Polyak-averaged copy of the LoRA adapter, or of the whole
   body under full fine-tuning) or, without one, from that same pass;
   y = R + discount * (1 - terminated) * V(s');
2. one pass over the current states gives log pi for every candidate and the
   features of every candidate; the twin Q heads evaluate all of them: the
   chosen ones enter the critic loss, all of them (detached) the actor loss;
3. backward: the heads get the critic's gradient, the LLM the actor's plus, by
   default, a share of the critic's (the critic reads the LLM's hidden states,
   as in the authors' code). Under ``grad_clip: per_loss`` the actor's and the
   critic's gradients on the LLM are computed by two backward passes, clipped
   each on its own and summed with ``critic_body_grad_scale`` on the critic's,
   so a large critic gradient cannot shrink the actor's step; ``joint`` is one
   backward of their sum, clipped once;
4. under the write lock: the heads' clip, the optimizer steps (heads, LLM,
   log alpha: separate optimisers), the Polyak updates, the counters.

During the first ``critic_warmup_updates`` updates only the heads learn: the
LLM and alpha stay put, so the policy (and ``policy_version``) does not move
while the critic is still meaningless.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn
from torch.profiler import record_function

from autotelic.core import TransitionBatch
from autotelic.learners import sac_math
from autotelic.learners.base import (
    CheckpointError,
    LLMLearner,
    Lock,
    clip_and_norm,
    held,
    snapshot,
)
from autotelic.learners.critic import QEnsemble, polyak_, target_twin, twin_parameters
from autotelic.learners.layout import CandidateLayout
from autotelic.learners.models import PolicyModel
from autotelic.learners.sac_config import SACConfig

__all__ = ["SACConfig", "SACLearner"]

_SUMMED_STATS = frozenset({"tokens", "target_tokens"})
"""Statistics added up over micro-batches; the others are averaged."""


@dataclass(frozen=True)
class _Rows:
    """A slice of a transition batch, as the update consumes it."""

    prompts: list[str]
    candidates: list[list[str]]
    actions: Tensor
    rewards: Tensor
    discounts: Tensor
    terminated: Tensor
    next_prompts: list[str]
    next_candidates: list[list[str]]

    @classmethod
    def of(
        cls,
        batch: TransitionBatch,
        index: Sequence[int],
        device: torch.device,
        prompt: Callable[[str, str, Sequence[str]], str],
    ) -> _Rows:
        """Rows ``index`` of ``batch``, prompts built by ``prompt`` (the learner's) for each
        row's (possibly relabeled) goal."""
        idx = np.asarray(index, dtype=np.int64)

        def tensor(values: np.ndarray, dtype: torch.dtype) -> Tensor:
            return torch.as_tensor(np.asarray(values)[idx], dtype=dtype, device=device)

        return cls(
            prompts=[
                prompt(batch.goals[i], batch.observations[i], batch.candidates[i]) for i in idx
            ],
            candidates=[list(batch.candidates[i]) for i in idx],
            actions=tensor(batch.actions, torch.long),
            rewards=tensor(batch.rewards, torch.float32),
            discounts=tensor(batch.discounts, torch.float32),
            terminated=tensor(batch.terminated, torch.bool),
            next_prompts=[
                prompt(batch.goals[i], batch.next_observations[i], batch.next_candidates[i])
                for i in idx
            ],
            next_candidates=[list(batch.next_candidates[i]) for i in idx],
        )


def check_batch(batch: TransitionBatch) -> None:
    """Reject batches the update cannot use, naming the offending rows."""
    if len(batch) == 0:
        raise ValueError("empty transition batch")
    rewards = np.asarray(batch.rewards, dtype=np.float64)
    discounts = np.asarray(batch.discounts, dtype=np.float64)
    if not np.isfinite(rewards).all():
        raise ValueError(f"non-finite rewards in rows {np.flatnonzero(~np.isfinite(rewards))[:5]}")
    bad = np.flatnonzero(~((discounts >= 0) & (discounts <= 1)))
    if bad.size:
        raise ValueError(f"discounts must lie in [0, 1]; rows {bad[:5]} have {discounts[bad[:5]]}")
    terminated = np.asarray(batch.terminated, dtype=bool)
    stuck = [
        i for i, cands in enumerate(batch.next_candidates) if not terminated[i] and len(cands) == 0
    ]
    if stuck:
        raise ValueError(
            f"rows {stuck[:5]} are not terminated but their next state has no candidate "
            "actions to bootstrap from"
        )


def alpha_optimizer(log_alpha: Tensor, cfg: SACConfig) -> torch.optim.Optimizer:
    """The optimizer of log alpha that ``cfg.alpha_optimizer`` names."""
    if cfg.alpha_optimizer == "fixed":
        return torch.optim.SGD([log_alpha], lr=0.0)
    if cfg.alpha_optimizer == "sgd":
        return torch.optim.SGD([log_alpha], lr=cfg.alpha_lr)
    return torch.optim.Adam([log_alpha], lr=cfg.alpha_lr)


class SACLearner(LLMLearner):
    """SAC-GLAM learner: LLM actor, twin Q heads on its hidden states, learned alpha."""

    reports_progress: Literal[True] = True
    """Its update reports progress per micro-batch (core.ProgressReporting)."""

    algorithm = "sac"

    def __init__(self, model: PolicyModel, config: SACConfig | None = None) -> None:
        self.config = config or SACConfig()
        super().__init__(model, padding_side=self.config.padding_side)
        cfg = self.config
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            self.critic = QEnsemble(model.hidden_size, cfg.critic_hidden, cfg.num_q_heads)
        self.critic.to(self.device)
        self.critic_target = QEnsemble(model.hidden_size, cfg.critic_hidden, cfg.num_q_heads)
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.critic_target.to(self.device).requires_grad_(False)
        self.twin: nn.Module | None = None
        self._twin_params: list[nn.Parameter] = []
        """The twin's copies of ``llm_params``, in the same order."""
        if cfg.target_llm and self.llm_params:
            self.twin = target_twin(model.module)
            self._twin_params = twin_parameters(self.twin, self._llm_names)
        self.log_alpha = torch.tensor(
            float(cfg.initial_log_alpha), device=self.device, requires_grad=True
        )
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr)
        self.actor_opt = (
            torch.optim.Adam(self.llm_params, lr=cfg.actor_lr) if self.llm_params else None
        )
        self.alpha_opt = alpha_optimizer(self.log_alpha, cfg)
        self._actor_grads: list[Tensor | None] = [None] * len(self.llm_params)
        """The actor loss's gradient on ``llm_params`` under ``grad_clip: per_loss``, kept
        apart from ``.grad`` (which then holds the critic's) until they are combined."""

    @property
    def alpha(self) -> float:
        return float(self.log_alpha.detach().exp())

    @property
    def warming_up(self) -> bool:
        """True while updates train the Q heads only."""
        return self.num_updates < self.config.critic_warmup_updates

    @torch.no_grad()
    def q_values(
        self, prompts: Sequence[str], candidates: Sequence[Sequence[str]], *, target: bool = False
    ) -> Tensor:
        """[num_heads, N] Q estimates of every candidate (online or target critic)."""
        if target:
            return self._target_q(prompts, candidates)[1]
        q: Tensor = self.critic(self.scorer.score(prompts, candidates, logprobs=False).features)
        return q

    @torch.no_grad()
    def compute_targets(self, batch: TransitionBatch) -> Tensor:
        """[B] the TD targets y the next update would regress on."""
        check_batch(batch)
        return self._targets(
            _Rows.of(batch, range(len(batch)), self.device, self.prompt), self.alpha
        )[0]

    def _target_q(
        self, prompts: Sequence[str], candidates: Sequence[Sequence[str]]
    ) -> tuple[Tensor, Tensor, CandidateLayout, int]:
        """log pi(a'|s') (online), target Q of every a', layout, positions computed."""
        encoded = self.scorer.encode(prompts, candidates)
        online = self.scorer.score_encoded(encoded)
        positions = online.num_positions
        feats = online.features
        if self.twin is not None:
            target = self.scorer.score_encoded(encoded, module=self.twin, logprobs=False)
            feats = target.features
            positions += target.num_positions
        return online.log_pi, self.critic_target(feats), online.layout, positions

    def _targets(self, rows: _Rows, alpha: float) -> tuple[Tensor, dict[str, float]]:
        live = torch.nonzero(~rows.terminated).flatten().tolist()
        values = torch.zeros_like(rows.rewards)
        info = {"next_entropy": 0.0, "next_value": 0.0, "target_tokens": 0.0}
        if live:
            log_pi, q_targ, layout, positions = self._target_q(
                [rows.next_prompts[i] for i in live], [rows.next_candidates[i] for i in live]
            )
            live_values = sac_math.soft_values(layout, log_pi, q_targ, alpha)
            values[torch.tensor(live, device=values.device)] = live_values
            info = {
                "next_entropy": float(layout.entropy(log_pi).mean()),
                "next_value": float(live_values.mean()),
                "target_tokens": float(positions),
            }
        y = sac_math.td_targets(rows.rewards, rows.discounts, rows.terminated, values)
        return y, info

    def update(
        self,
        batch: TransitionBatch,
        *,
        write_lock: Lock | None = None,
        progress: Callable[[float], None] | None = None,
    ) -> dict[str, float]:
        """One SAC-GLAM gradient update; returns losses and diagnostics.

        ``progress``, if given, hears the share of the batch done after each
        micro-batch (the runtime credits it to the collector, see
        :mod:`autotelic.runtime.loop.coordination`).
        """
        began = time.perf_counter()
        warmup = self.warming_up
        alpha = self.alpha
        totals = self.compute_gradients(batch, progress=progress)
        with held(write_lock), record_function("sac/optimizer_step"):
            totals |= self._step(warmup)
        totals |= {
            "alpha": alpha,
            "warmup": float(warmup),
            "batch_size": float(len(batch)),
            "policy_version": float(self.policy_version),
            "num_updates": float(self.num_updates),
            "update_seconds": time.perf_counter() - began,
        }
        cache = self.model.activations
        if cache is not None:  # model.frozen_layers: how well acting serves the updates
            totals |= cache.report(self.scorer.cache_stats)
        return totals

    def compute_gradients(
        self, batch: TransitionBatch, progress: Callable[[float], None] | None = None
    ) -> dict[str, float]:
        """The forward and backward passes of an update, without the optimizer steps.

        Gradients accumulate in ``.grad`` (over micro-batches); :meth:`update`
        then applies them. Exposed for benchmarks and gradient checks.
        """
        check_batch(batch)
        train_llm = not self.warming_up and self.actor_opt is not None
        alpha = self.alpha
        size = len(batch)
        chunk = self.config.micro_batch_size or size
        totals: dict[str, float] = {}
        for start in range(0, size, chunk):
            index = list(range(start, min(size, start + chunk)))
            part = self._accumulate(
                _Rows.of(batch, index, self.device, self.prompt),
                alpha,
                len(index) / size,
                train_llm,
            )
            for key, value in part.items():
                share = 1.0 if key in _SUMMED_STATS else len(index) / size
                totals[key] = totals.get(key, 0.0) + value * share
            if progress is not None:
                progress((index[-1] + 1) / size)
        if self._per_loss(train_llm):
            totals |= self._combine_llm_grads()
        return totals

    def zero_grad(self) -> None:
        """Drop accumulated gradients (after :meth:`compute_gradients` without an update)."""
        for opt in (self.critic_opt, self.actor_opt, self.alpha_opt):
            if opt is not None:
                opt.zero_grad(set_to_none=True)
        self._actor_grads = [None] * len(self.llm_params)

    def _per_loss(self, train_llm: bool) -> bool:
        """Whether this update keeps the actor's and the critic's LLM gradients apart."""
        return train_llm and self.config.grad_clip == "per_loss"

    def _critic_feeds_llm(self, train_llm: bool) -> bool:
        """Whether the critic loss's gradient reaches the LLM in this update."""
        cfg = self.config
        return train_llm and cfg.critic_trains_llm and cfg.critic_body_grad_scale > 0.0

    def _accumulate_actor_grads(self, actor_loss: Tensor, retain_graph: bool) -> None:
        """Add the actor loss's gradient on the LLM to ``_actor_grads``, leaving ``.grad``
        (where the critic's accumulates) alone."""
        grads = torch.autograd.grad(
            actor_loss, self.llm_params, retain_graph=retain_graph, allow_unused=True
        )
        for i, grad in enumerate(grads):
            if grad is None:
                continue
            held_grad = self._actor_grads[i]
            self._actor_grads[i] = grad if held_grad is None else held_grad.add_(grad)

    def _combine_llm_grads(self) -> dict[str, float]:
        """Replace the LLM's ``.grad`` (the critic's) by the per-loss clipped sum with the
        actor's; the statistics say how the two compared."""
        cfg = self.config
        combined = sac_math.combine_gradients(
            self._actor_grads,
            [p.grad for p in self.llm_params],
            cfg.max_grad_norm,
            cfg.critic_body_grad_scale if cfg.critic_trains_llm else 0.0,
        )
        for param, grad in zip(self.llm_params, combined.grads, strict=True):
            param.grad = grad
        self._actor_grads = [None] * len(self.llm_params)
        return {
            "actor_llm_grad_norm": combined.actor_norm,
            "critic_llm_grad_norm": combined.critic_norm,
            "llm_grad_cosine": combined.cosine,
            "actor_llm_share": combined.actor_share,
        }

    def _accumulate(
        self, rows: _Rows, alpha: float, weight: float, train_llm: bool
    ) -> dict[str, float]:
        """Forward and backward for one chunk; gradients add up over chunks."""
        with torch.no_grad(), record_function("sac/targets"):
            y, info = self._targets(rows, alpha)
        with torch.set_grad_enabled(train_llm), record_function("sac/scores"):
            scores = self.scorer.score(rows.prompts, rows.candidates)
        layout = scores.layout
        feats = self._critic_features(scores.features, train_llm)
        q_all = self.critic(feats)
        taken = layout.flat_index(rows.actions)
        q_taken = q_all[:, taken]
        critic_loss = sac_math.critic_loss(q_taken, y)
        log_pi = scores.log_pi
        actor_loss = sac_math.actor_loss(layout, log_pi, q_all, alpha)
        entropy = layout.entropy(log_pi.detach())
        target_h = sac_math.target_entropy(
            layout.counts, self.config.target_entropy_ratio, y.device
        )
        alpha_loss = sac_math.alpha_loss(self.log_alpha, entropy, target_h)
        with record_function("sac/backward"):
            if self._per_loss(train_llm):
                # The actor's gradient first, kept apart; then the critic's lands in .grad.
                retain = self._critic_feeds_llm(train_llm)
                self._accumulate_actor_grads(actor_loss * weight, retain)
                ((critic_loss + alpha_loss) * weight).backward()  # type: ignore[no-untyped-call]
            else:
                total = (critic_loss + actor_loss) if train_llm else critic_loss
                (total * weight + alpha_loss * weight).backward()  # type: ignore[no-untyped-call]
        return {
            "critic_loss": float(critic_loss.detach()),
            "actor_loss": float(actor_loss.detach()),
            "alpha_loss": float(alpha_loss.detach()),
            "entropy": float(entropy.mean()),
            "target_entropy": float(target_h.mean()),
            "q_taken_mean": float(q_taken.detach().mean()),
            **{f"q{j + 1}_mean": float(q.detach().mean()) for j, q in enumerate(q_taken)},
            "target_mean": float(y.mean()),
            "log_pi_taken": float(log_pi.detach()[taken].mean()),
            "tokens": float(scores.num_positions) + info["target_tokens"],
            **info,
        }

    def _critic_features(self, features: Tensor, train_llm: bool) -> Tensor:
        """The features the heads read: cut from the LLM's graph when the critic must not
        train it, and under ``joint`` with the critic's gradient into the LLM scaled."""
        if not self._critic_feeds_llm(train_llm):
            return features.detach()
        scale = self.config.critic_body_grad_scale
        if not self._per_loss(train_llm) and scale != 1.0:
            features.register_hook(lambda grad: grad * scale)  # type: ignore[no-untyped-call]
        return features

    def _step(self, warmup: bool) -> dict[str, float]:
        """Apply the accumulated gradients; call with the write lock held."""
        cfg = self.config
        critic_norm = clip_and_norm(list(self.critic.parameters()), cfg.max_grad_norm)
        self.critic_opt.step()
        llm_norm = 0.0
        actor_opt = None if warmup else self.actor_opt
        if actor_opt is not None:
            # Under per_loss each loss's part was clipped already (compute_gradients).
            joint_clip = cfg.max_grad_norm if cfg.grad_clip == "joint" else None
            llm_norm = clip_and_norm(self.llm_params, joint_clip)
            actor_opt.step()
            self.policy_version += 1
        if not warmup:
            self.alpha_opt.step()
        polyak_(self.critic_target.parameters(), self.critic.parameters(), cfg.tau)
        if actor_opt is not None and self.twin is not None:
            polyak_(self._twin_params, self.llm_params, cfg.tau)
        self.zero_grad()
        self.num_updates += 1
        return {"critic_grad_norm": critic_norm, "llm_grad_norm": llm_norm}

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly; tensors are CPU copies (torch.save it)."""
        state = self._common_state()
        state |= {
            "config": self.config.model_dump(mode="json"),
            "critic": snapshot(self.critic.state_dict()),
            "critic_target": snapshot(self.critic_target.state_dict()),
            "target_llm": self._named(self._twin_params) if self.twin is not None else None,
            "log_alpha": snapshot(self.log_alpha),
            "optimizers": {
                "critic": snapshot(self.critic_opt.state_dict()),
                "actor": snapshot(self.actor_opt.state_dict()) if self.actor_opt else None,
                "alpha": snapshot(self.alpha_opt.state_dict()),
            },
        }
        return state

    def load_state_dict(self, state: Mapping[str, Any], *, write_lock: Lock | None = None) -> None:
        """Restore a :meth:`state_dict` (same model, same fine-tuning mode, same heads)."""
        with held(write_lock):
            self._load_common(state)
            try:
                self.critic.load_state_dict(state["critic"])
                self.critic_target.load_state_dict(state["critic_target"])
            except RuntimeError as exc:
                raise CheckpointError(f"critic heads do not fit this configuration: {exc}") from exc
            self._load_target_llm(state.get("target_llm"))
            with torch.no_grad():
                self.log_alpha.copy_(state["log_alpha"])
            optimizers = state["optimizers"]
            self.critic_opt.load_state_dict(optimizers["critic"])
            saved_alpha_opt = state.get("config", {}).get("alpha_optimizer", "adam")
            if saved_alpha_opt == self.config.alpha_optimizer:
                self.alpha_opt.load_state_dict(optimizers["alpha"])
            if self.actor_opt is not None and optimizers["actor"] is not None:
                self.actor_opt.load_state_dict(optimizers["actor"])

    def _load_target_llm(self, saved: Mapping[str, Tensor] | None) -> None:
        if self.twin is None:
            return
        if saved is None and self.model.config.finetune == "full":
            # Saved before full fine-tuning had a target body: start it at the online one,
            # as a new learner does.
            self._copy_named(self._twin_params, self._named(self.llm_params))
            return
        if saved is None or sorted(saved) != sorted(self._llm_names):
            raise CheckpointError("checkpoint has no target adapter matching this learner's")
        self._copy_named(self._twin_params, saved)

"""PPO-GLAM: the on-policy baseline, on the same scorer and model as SAC-GLAM.

The policy is the same LLM softmax over candidates; a value head (MLP) reads
each state's hidden state before any action from the same one-pass scorer.
Clipped PPO with GAE, several epochs of shuffled minibatches per rollout.

How the runtime builds a rollout: for each environment, the consecutive steps
it took since the last update form one :class:`Trajectory` (it may span
several episodes; same-step auto-reset is handled by the ``terminated`` /
``truncated`` flags):

* step t records the prompt and candidates it acted on, the action index and
  ``log pi_old(a_t|s_t)`` that :meth:`~autotelic.learners.base.LLMLearner.act`
  returned, the reward, and the step's ``terminated`` / ``truncated``;
* when step t hit the time limit (``truncated``), ``final_prompts[t]`` is the
  prompt of the state where the episode was cut (``info["final_observation"]``
  under the episode's goal): its value is bootstrapped, as truncation is not
  termination;
* when the last step ended no episode, ``bootstrap_prompt`` is the prompt of
  the state the environment is in now, whose value closes the sum.

Values are computed at the start of ``update`` with the current weights.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from autotelic.core import Rollout
from autotelic.learners.base import CheckpointError, LLMLearner, Lock, clip_and_norm, held, snapshot
from autotelic.learners.critic import QHead
from autotelic.learners.encoding import EncodedStates
from autotelic.learners.models import PolicyModel
from autotelic.learners.ppo_config import PPOConfig

__all__ = ["PPOConfig", "PPOLearner"]


def gae(
    rewards: np.ndarray,
    values: np.ndarray,
    next_values: np.ndarray,
    done: np.ndarray,
    gamma: float,
    lam: float,
) -> np.ndarray:
    """Generalised advantage estimates for one trajectory.

    ``next_values[t]`` is already what step t bootstraps from: 0 after a
    termination, V(cut state) after a truncation, V(s_{t+1}) otherwise; ``done``
    stops the recursion at episode boundaries.
    """
    advantages = np.zeros(len(rewards), dtype=np.float64)
    running = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        delta = rewards[t] + gamma * next_values[t] - values[t]
        running = delta + gamma * lam * (0.0 if done[t] else running)
        advantages[t] = running
    return advantages


def ppo_policy_loss(
    log_probs: Tensor, old_log_probs: Tensor, advantages: Tensor, clip: float
) -> tuple[Tensor, Tensor]:
    """Clipped surrogate (to minimise) and the fraction of clipped ratios."""
    ratio = torch.exp(log_probs - old_log_probs)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1.0 - clip, 1.0 + clip) * advantages
    loss = -torch.minimum(unclipped, clipped).mean()
    fraction = ((ratio - 1.0).abs() > clip).float().mean()
    return loss, fraction


def ppo_value_loss(
    values: Tensor, old_values: Tensor, returns: Tensor, clip: float | None
) -> Tensor:
    """0.5 * squared error, pessimistic over the clipped value change when ``clip`` is set."""
    error = (values - returns) ** 2
    if clip is not None:
        clipped = old_values + torch.clamp(values - old_values, -clip, clip)
        error = torch.maximum(error, (clipped - returns) ** 2)
    return 0.5 * error.mean()


@dataclass
class _Steps:
    """A rollout flattened over steps, with advantages and returns."""

    encoded: EncodedStates
    """The steps' prompts and candidates as token ids (tokenised once, read every epoch)."""
    actions: Tensor
    old_log_probs: Tensor
    old_values: Tensor
    advantages: Tensor
    returns: Tensor


class PPOLearner(LLMLearner):
    """PPO-GLAM learner: the LLM policy plus a value head on its state features."""

    algorithm = "ppo"

    def __init__(self, model: PolicyModel, config: PPOConfig | None = None) -> None:
        self.config = config or PPOConfig()
        super().__init__(model, padding_side=self.config.padding_side)
        cfg = self.config
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            self.value_head = QHead(model.hidden_size, cfg.value_hidden)
        self.value_head.to(self.device)
        groups: list[dict[str, Any]] = [
            {"params": list(self.value_head.parameters()), "lr": cfg.value_lr}
        ]
        if self.llm_params:
            groups.append({"params": self.llm_params, "lr": cfg.lr})
        self.optimizer = torch.optim.Adam(groups)
        self.shuffle = torch.Generator().manual_seed(cfg.seed)

    @torch.no_grad()
    def values(self, prompts: Sequence[str]) -> Tensor:
        """[B] V(s) of prompts (a prompt-only pass: no candidate is needed)."""
        if not prompts:
            return torch.zeros(0, device=self.device)
        scores = self.scorer.score(prompts, [[] for _ in prompts], logprobs=False)
        values: Tensor = self.value_head(scores.state_features)
        return values

    def _values_batched(self, prompts: Sequence[str]) -> np.ndarray:
        size = self.config.minibatch_size
        parts = [
            self.values(prompts[i : i + size]).double().cpu().numpy()
            for i in range(0, len(prompts), size)
        ]
        return np.concatenate(parts) if parts else np.zeros(0)

    def prepare(self, rollout: Rollout) -> _Steps:
        """Values (current weights), GAE advantages and returns of a rollout."""
        cfg = self.config
        prompts = [p for traj in rollout.trajectories for p in traj.prompts]
        extra: list[str] = []
        for traj in rollout.trajectories:
            extra += [traj.final_prompts[t] or "" for t in np.flatnonzero(traj.cut)]
            if not traj.done[-1]:
                extra.append(traj.bootstrap_prompt or "")
        all_values = self._values_batched(prompts + extra)
        values, extra_values = all_values[: len(prompts)], iter(all_values[len(prompts) :])
        advantages, start = [], 0
        for traj in rollout.trajectories:
            v = values[start : start + len(traj)]
            start += len(traj)
            next_v = np.append(v[1:], 0.0)
            for t in np.flatnonzero(traj.cut):
                next_v[t] = next(extra_values)
            if not traj.done[-1]:
                next_v[-1] = next(extra_values)
            next_v[np.asarray(traj.terminated, dtype=bool)] = 0.0
            rewards = np.asarray(traj.rewards, dtype=np.float64)
            advantages.append(gae(rewards, v, next_v, traj.done, cfg.gamma, cfg.gae_lambda))
        adv = np.concatenate(advantages)

        def tensor(values: Any, dtype: torch.dtype) -> Tensor:
            return torch.as_tensor(np.asarray(values), dtype=dtype, device=self.device)

        trajs = rollout.trajectories
        candidates = [list(c) for traj in trajs for c in traj.candidates]
        return _Steps(
            encoded=self.scorer.encode(prompts, candidates),
            actions=tensor(np.concatenate([traj.actions for traj in trajs]), torch.long),
            old_log_probs=tensor(np.concatenate([traj.log_probs for traj in trajs]), torch.float32),
            old_values=tensor(values, torch.float32),
            advantages=tensor(adv, torch.float32),
            returns=tensor(adv + values, torch.float32),
        )

    def update(self, rollout: Rollout, *, write_lock: Lock | None = None) -> dict[str, float]:
        """PPO epochs over one rollout; returns mean losses and diagnostics."""
        began = time.perf_counter()
        cfg = self.config
        steps = self.prepare(rollout)
        n = len(steps.encoded.prompt_ids)
        sums: dict[str, float] = {}
        count = 0
        stopped = False
        for _ in range(cfg.epochs):
            order = torch.randperm(n, generator=self.shuffle).tolist()
            for start in range(0, n, cfg.minibatch_size):
                stats = self._minibatch(
                    steps, order[start : start + cfg.minibatch_size], write_lock
                )
                for key, value in stats.items():
                    sums[key] = sums.get(key, 0.0) + value
                count += 1
                if cfg.target_kl is not None and stats["approx_kl"] > cfg.target_kl:
                    stopped = True
                    break
            if stopped:
                break
        self.num_updates += 1
        returns, old_values = steps.returns, steps.old_values
        explained = 1.0 - float(
            torch.var(returns - old_values) / torch.var(returns).clamp_min(1e-8)
        )
        cache = self.model.activations  # model.frozen_layers: how well acting serves updates
        return (
            (cache.report(self.scorer.cache_stats) if cache is not None else {})
            | {key: value / count for key, value in sums.items()}
            | {
                "advantage_mean": float(steps.advantages.mean()),
                "return_mean": float(returns.mean()),
                "explained_variance": explained,
                "gradient_steps": float(count),
                "early_stop": float(stopped),
                "steps": float(n),
                "policy_version": float(self.policy_version),
                "num_updates": float(self.num_updates),
                "update_seconds": time.perf_counter() - began,
            }
        )

    def _minibatch(
        self, steps: _Steps, index: list[int], write_lock: Lock | None
    ) -> dict[str, float]:
        cfg = self.config
        idx = torch.tensor(index, dtype=torch.long, device=self.device)
        scores = self.scorer.score_encoded(steps.encoded.select(index))
        layout = scores.layout
        log_pi = scores.log_pi[layout.flat_index(steps.actions[idx])]
        old = steps.old_log_probs[idx]
        adv = steps.advantages[idx]
        if cfg.normalize_advantages and len(index) > 1:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        policy_loss, clip_fraction = ppo_policy_loss(log_pi, old, adv, cfg.clip_ratio)
        values = self.value_head(scores.state_features)
        value_loss = ppo_value_loss(
            values, steps.old_values[idx], steps.returns[idx], cfg.value_clip
        )
        entropy = scores.entropy().mean()
        loss = policy_loss + cfg.value_coef * value_loss - cfg.entropy_coef * entropy
        loss.backward()  # type: ignore[no-untyped-call]
        with held(write_lock):
            params = list(self.value_head.parameters()) + self.llm_params
            grad_norm = clip_and_norm(params, cfg.max_grad_norm)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            if self.llm_params:
                self.policy_version += 1
        with torch.no_grad():
            approx_kl = float((old - log_pi.detach()).mean())
        return {
            "policy_loss": float(policy_loss.detach()),
            "value_loss": float(value_loss.detach()),
            "entropy": float(entropy.detach()),
            "clip_fraction": float(clip_fraction.detach()),
            "approx_kl": approx_kl,
            "grad_norm": grad_norm,
            "tokens": float(scores.num_positions),
        }

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly; tensors are CPU copies (torch.save it)."""
        return self._common_state() | {
            "config": self.config.model_dump(mode="json"),
            "value_head": snapshot(self.value_head.state_dict()),
            "optimizer": snapshot(self.optimizer.state_dict()),
            "shuffle_rng": self.shuffle.get_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any], *, write_lock: Lock | None = None) -> None:
        """Restore a :meth:`state_dict` (same model, same fine-tuning mode, same head)."""
        with held(write_lock):
            self._load_common(state)
            try:
                self.value_head.load_state_dict(state["value_head"])
            except RuntimeError as exc:
                raise CheckpointError(f"value head does not fit this configuration: {exc}") from exc
            self.optimizer.load_state_dict(state["optimizer"])
            self.shuffle.set_state(state["shuffle_rng"])

"""Shared helpers for the learners tests: tiny models and real Playground-Text states."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from autotelic.core import TransitionBatch
from autotelic.envs.playground import make_batch
from autotelic.learners.models import ModelConfig, PolicyModel, load_model
from autotelic.learners.prompt import build_prompts


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny models run faster on one thread, and on a shared 2-core machine two
    OpenMP threads can stall ~15 ms per operation waiting for each other."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def tiny(name: str = "tiny-causal", **overrides) -> PolicyModel:
    return load_model(ModelConfig(path=name, **overrides))


def perturb_adapters(model: PolicyModel, scale: float = 0.2, seed: int = 0) -> None:
    """Give LoRA B matrices (zero at init) random values, so adapters change outputs."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.module.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * scale)


def playground_observations(
    num: int, seed: int = 0, steps: int = 3
) -> tuple[list[str], list[str], list[list[str]]]:
    """Goals, observations and admissible actions of real Playground-Text states after a few
    random steps (an env whose episode ends meanwhile starts its next one)."""
    envs = make_batch(num_envs=num)
    every = list(range(num))
    states = envs.reset(every, [None] * num, seeds=[seed + i for i in every])
    rng = random.Random(seed)
    for _ in range(steps):
        stepped = envs.step(every, [rng.randrange(len(s.actions)) for s in states])
        states = [s.state for s in stepped]
        ended = [i for i, s in enumerate(stepped) if s.done]
        for i, state in zip(ended, envs.reset(ended, [None] * len(ended)), strict=True):
            states[i] = state
    return [s.goal for s in states], [s.observation for s in states], [s.actions for s in states]


def playground_states(num: int, seed: int = 0, steps: int = 3) -> tuple[list[str], list[list[str]]]:
    """Prompts and admissible actions of real Playground-Text states after a few random steps."""
    goals, observations, candidates = playground_observations(num, seed, steps)
    return build_prompts(goals, observations), candidates


def transition_batch(
    goals: list[str],
    observations: list[str],
    candidates: list[list[str]],
    actions: list[int],
    rewards: list[float],
    discounts: list[float],
    next_observations: list[str],
    next_candidates: list[list[str]],
    terminated: list[bool],
) -> TransitionBatch:
    return TransitionBatch(
        goals=goals,
        observations=observations,
        candidates=candidates,
        actions=np.array(actions, dtype=np.int64),
        rewards=np.array(rewards, dtype=np.float32),
        discounts=np.array(discounts, dtype=np.float32),
        next_observations=next_observations,
        next_candidates=next_candidates,
        terminated=np.array(terminated, dtype=np.bool_),
    )


class RecordingLock:
    """A lock that records a checksum of the watched tensors at each enter and exit."""

    def __init__(self, tensors: list[torch.Tensor]) -> None:
        self.lock = threading.Lock()
        self.tensors = tensors
        self.events: list[tuple[str, float]] = []

    def checksum(self) -> float:
        return float(sum(t.detach().double().sum() for t in self.tensors))

    def __enter__(self) -> None:
        self.lock.acquire()
        self.events.append(("enter", self.checksum()))

    def __exit__(self, *exc: object) -> None:
        self.events.append(("exit", self.checksum()))
        self.lock.release()

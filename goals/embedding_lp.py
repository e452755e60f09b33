"""Learning progress predicted over goal embeddings (the MAGELLAN idea).

Per-goal windows need every goal tried many times; with many goals, most are
rarely tried and their LP is noise. Here one small network predicts the success
probability of any goal from an embedding of its text, trained online on recent
outcomes. LP is |current prediction - prediction of a delayed copy|: the change
of predicted competence over the last few hundred updates. A goal never tried
still gets both estimates, from the goals whose embeddings resemble it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from autotelic.goals.embeddings import EmbedFn
from autotelic.goals.estimators import FloatArray, _check_kind
from autotelic.goals.state import decode_array, decode_rng, encode_array, encode_rng

Params = list[torch.Tensor]


class EmbeddingLP:
    """Competence model over goal embeddings with a delayed copy for LP.

    The model is a one-hidden-layer MLP (``hidden`` > 0) or a logistic
    regression (``hidden`` = 0) on the embeddings. A snapshot of the weights is
    taken every ``snapshot_every`` updates and the last ``delay_snapshots`` are
    kept; the oldest is the delayed copy, so the delay stays between
    ``(delay_snapshots - 1) * snapshot_every`` and ``delay_snapshots * snapshot_every``
    updates instead of dropping to zero at each refresh.
    """

    kind = "embedding"

    def __init__(
        self,
        embed: EmbedFn,
        *,
        hidden: int = 64,
        lr: float = 3e-2,
        batch_size: int = 64,
        buffer_size: int = 250,
        train_every: int = 1,
        snapshot_every: int = 25,
        delay_snapshots: int = 4,
        seed: int = 0,
    ) -> None:
        _require(hidden >= 0, f"hidden must be >= 0, got {hidden}")
        _require(lr > 0, f"lr must be > 0, got {lr}")
        _require(batch_size >= 1, f"batch_size must be >= 1, got {batch_size}")
        _require(buffer_size >= 1, f"buffer_size must be >= 1, got {buffer_size}")
        _require(train_every >= 1, f"train_every must be >= 1, got {train_every}")
        _require(snapshot_every >= 1, f"snapshot_every must be >= 1, got {snapshot_every}")
        _require(delay_snapshots >= 1, f"delay_snapshots must be >= 1, got {delay_snapshots}")
        self.embed = embed
        self.hidden = hidden
        self.lr = lr
        self.batch_size = batch_size
        self.train_every = train_every
        self.snapshot_every = snapshot_every
        self.delay_snapshots = delay_snapshots
        self.seed = seed
        # Its own stream, apart from the sampler's (which may share the seed).
        self._rng = np.random.default_rng([seed, 0xE3B])
        self._rows: dict[str, int] = {}
        self._matrix = torch.zeros((0, 0))
        self._buffer: deque[tuple[int, float]] = deque(maxlen=buffer_size)
        self._params: Params = []
        self._snapshots: deque[Params] = deque(maxlen=delay_snapshots)
        self._optimizer: torch.optim.Adam | None = None
        self.updates = 0

    # -- the estimator interface -------------------------------------------------

    def update(self, goal: str, success: bool) -> None:
        row = self._rows_of([goal])[0]
        self._ensure_model()
        self._buffer.append((row, 1.0 if success else 0.0))
        self.updates += 1
        if self.updates % self.train_every == 0:
            self._train_step()
        if self.updates % self.snapshot_every == 0:
            self._snapshots.append(_clone(self._params))

    def competence(self, goals: Sequence[str]) -> FloatArray:
        if not goals:
            return np.zeros(0)
        inputs = self._inputs(goals)
        return _to_numpy(torch.sigmoid(self._forward(self._params, inputs)))

    def lp(self, goals: Sequence[str]) -> FloatArray:
        if not goals:
            return np.zeros(0)
        inputs = self._inputs(goals)
        now = torch.sigmoid(self._forward(self._params, inputs))
        before = torch.sigmoid(self._forward(self._snapshots[0], inputs))
        return _to_numpy((now - before).abs())

    # -- model ---------------------------------------------------------------------

    def _rows_of(self, goals: Sequence[str]) -> list[int]:
        missing = [g for g in dict.fromkeys(goals) if g not in self._rows]
        if missing:
            vectors = torch.as_tensor(np.asarray(self.embed(missing), dtype=np.float32))
            if vectors.ndim != 2 or vectors.shape[0] != len(missing):
                raise ValueError(
                    f"embedding function returned shape {tuple(vectors.shape)} for "
                    f"{len(missing)} texts; expected ({len(missing)}, dim)"
                )
            if self._matrix.shape[0] and vectors.shape[1] != self._matrix.shape[1]:
                raise ValueError(
                    f"embedding dimension changed from {self._matrix.shape[1]} "
                    f"to {vectors.shape[1]}"
                )
            base = self._matrix.shape[0]
            self._matrix = vectors if base == 0 else torch.cat([self._matrix, vectors])
            for i, goal in enumerate(missing):
                self._rows[goal] = base + i
        return [self._rows[g] for g in goals]

    def _inputs(self, goals: Sequence[str]) -> torch.Tensor:
        rows = self._rows_of(goals)
        self._ensure_model()
        return self._matrix[rows]

    def _ensure_model(self) -> None:
        if self._params:
            return
        dim = int(self._matrix.shape[1])
        self._params = _init_params(dim, self.hidden, self._rng)
        self._optimizer = torch.optim.Adam(self._params, lr=self.lr)
        self._snapshots.append(_clone(self._params))

    def _forward(self, params: Params, inputs: torch.Tensor) -> torch.Tensor:
        if self.hidden == 0:
            weight, bias = params
            return (inputs @ weight + bias).squeeze(-1)
        w1, b1, w2, b2 = params
        return (torch.relu(inputs @ w1 + b1) @ w2 + b2).squeeze(-1)

    def _train_step(self) -> None:
        assert self._optimizer is not None
        size = min(self.batch_size, len(self._buffer))
        picks = self._rng.integers(0, len(self._buffer), size=size)
        rows = [self._buffer[i][0] for i in picks]
        targets = torch.tensor([self._buffer[i][1] for i in picks])
        logits = self._forward(self._params, self._matrix[rows])
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets)
        self._optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        self._optimizer.step()

    # -- persistence -------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        goals = list(self._rows)
        optimizer: dict[str, Any] | None = None
        if self._optimizer is not None:
            optimizer = _encode_adam(self._optimizer, self._params)
        return {
            "kind": self.kind,
            "hidden": self.hidden,
            "updates": self.updates,
            "goals": goals,
            "buffer": [[row, int(success)] for row, success in self._buffer],
            "params": [encode_array(p.detach().numpy()) for p in self._params],
            "snapshots": [[encode_array(p.numpy()) for p in snap] for snap in self._snapshots],
            "optimizer": optimizer,
            "rng": encode_rng(self._rng),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        _check_kind(self.kind, state)
        if int(state["hidden"]) != self.hidden:
            raise ValueError(
                f"saved embedding model has hidden={state['hidden']}, configured {self.hidden}"
            )
        goals = [str(g) for g in state["goals"]]
        self._rows = {}
        self._matrix = torch.zeros((0, 0))
        if goals:
            self._rows_of(goals)
        self._buffer.clear()
        self._buffer.extend((int(row), float(s)) for row, s in state["buffer"])
        self.updates = int(state["updates"])
        self._rng = decode_rng(state["rng"])
        self._params = [
            torch.from_numpy(decode_array(p)).requires_grad_(True) for p in state["params"]
        ]
        self._snapshots.clear()
        for snap in state["snapshots"]:
            self._snapshots.append([torch.from_numpy(decode_array(p)) for p in snap])
        self._optimizer = None
        if self._params:
            self._optimizer = torch.optim.Adam(self._params, lr=self.lr)
            if state.get("optimizer") is not None:
                _decode_adam(self._optimizer, self._params, state["optimizer"])


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def _init_params(dim: int, hidden: int, rng: np.random.Generator) -> Params:
    """Small random weights drawn from the estimator's own seeded generator."""

    def uniform(shape: tuple[int, ...], fan_in: int) -> torch.Tensor:
        bound = 1.0 / np.sqrt(fan_in)
        values = rng.uniform(-bound, bound, size=shape).astype(np.float32)
        return torch.from_numpy(values).requires_grad_(True)

    if hidden == 0:
        return [uniform((dim, 1), dim), torch.zeros(1, requires_grad=True)]
    return [
        uniform((dim, hidden), dim),
        uniform((hidden,), dim),
        uniform((hidden, 1), hidden),
        uniform((1,), hidden),
    ]


def _clone(params: Params) -> Params:
    return [p.detach().clone() for p in params]


def _to_numpy(values: torch.Tensor) -> FloatArray:
    return values.detach().numpy().astype(np.float64)


def _encode_adam(optimizer: torch.optim.Adam, params: Params) -> dict[str, Any]:
    slots: list[dict[str, Any] | None] = []
    for p in params:
        state = optimizer.state.get(p)
        if not state:
            slots.append(None)
            continue
        slots.append(
            {
                "step": float(state["step"]),
                "exp_avg": encode_array(state["exp_avg"].numpy()),
                "exp_avg_sq": encode_array(state["exp_avg_sq"].numpy()),
            }
        )
    return {"slots": slots}


def _decode_adam(optimizer: torch.optim.Adam, params: Params, data: dict[str, Any]) -> None:
    for p, slot in zip(params, data["slots"], strict=True):
        if slot is None:
            continue
        optimizer.state[p] = {
            "step": torch.tensor(float(slot["step"])),
            "exp_avg": torch.from_numpy(decode_array(slot["exp_avg"])),
            "exp_avg_sq": torch.from_numpy(decode_array(slot["exp_avg_sq"])),
        }

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

from autotelic.goals.competence_mlp import (
    Adam,
    Array,
    CompetenceMLP,
    decode_params,
    encode_params,
)
from autotelic.goals.config import EmbeddingConfig
from autotelic.goals.embeddings import EmbedFn, checked_embeddings
from autotelic.goals.estimators import FloatArray, _check_kind
from autotelic.goals.state import decode_rng, encode_rng


class EmbeddingLP:
    """Competence model over goal embeddings with a delayed copy for LP.

    The settings are those of an :class:`EmbeddingConfig`, validated there. The
    model is a one-hidden-layer MLP (``hidden`` > 0) or a logistic regression
    (``hidden`` = 0) on the embeddings, trained by one Adam step on a mini-batch
    of the last ``buffer_size`` outcomes every ``train_every`` updates. A
    snapshot of the weights is taken every ``snapshot_every`` updates and the last
    ``delay_snapshots`` are kept; the oldest is the delayed copy, so the delay
    stays between ``(delay_snapshots - 1) * snapshot_every`` and
    ``delay_snapshots * snapshot_every`` updates instead of dropping to zero at
    each refresh.
    """

    kind = "embedding"

    def __init__(
        self, embed: EmbedFn, config: EmbeddingConfig | None = None, *, seed: int = 0
    ) -> None:
        config = config if config is not None else EmbeddingConfig()
        self.embed = embed
        self.config = config
        # Its own stream, apart from the sampler's (which may share the seed).
        self._rng = np.random.default_rng([seed, 0xE3B])
        self._rows: dict[str, int] = {}
        self._matrix: Array = np.zeros((0, 0), dtype=np.float32)
        self._buffer: deque[tuple[int, float]] = deque(maxlen=config.buffer_size)
        self._model: CompetenceMLP | None = None
        self._optimizer: Adam | None = None
        self._snapshots: deque[dict[str, Array]] = deque(maxlen=config.delay_snapshots)
        self.updates = 0

    # -- the estimator interface -------------------------------------------------

    def update(self, goal: str, success: bool) -> None:
        row = self._rows_of([goal])[0]
        self._ensure_model()
        self._buffer.append((row, 1.0 if success else 0.0))
        self.updates += 1
        if self.updates % self.config.train_every == 0:
            self._train_step()
        if self.updates % self.config.snapshot_every == 0:
            assert self._model is not None
            self._snapshots.append(self._model.copy_params())

    def competence(self, goals: Sequence[str]) -> FloatArray:
        if not goals:
            return np.zeros(0)
        model, inputs = self._model_and_inputs(goals)
        return model.predict(inputs).astype(np.float64)

    def lp(self, goals: Sequence[str]) -> FloatArray:
        if not goals:
            return np.zeros(0)
        model, inputs = self._model_and_inputs(goals)
        now = model.predict(inputs)
        before = model.predict(inputs, self._snapshots[0])
        change: FloatArray = np.abs(now - before).astype(np.float64)
        return change

    # -- model ---------------------------------------------------------------------

    def _rows_of(self, goals: Sequence[str]) -> list[int]:
        missing = [g for g in dict.fromkeys(goals) if g not in self._rows]
        if missing:
            vectors = self._embed(missing)
            base = self._matrix.shape[0]
            if base and vectors.shape[1] != self._matrix.shape[1]:
                raise ValueError(
                    f"embedding dimension changed from {self._matrix.shape[1]} "
                    f"to {vectors.shape[1]}"
                )
            self._matrix = vectors if base == 0 else np.concatenate([self._matrix, vectors])
            for i, goal in enumerate(missing):
                self._rows[goal] = base + i
        return [self._rows[g] for g in goals]

    def _embed(self, texts: list[str]) -> Array:
        return checked_embeddings(self.embed(texts), len(texts))

    def _model_and_inputs(self, goals: Sequence[str]) -> tuple[CompetenceMLP, Array]:
        rows = self._rows_of(goals)
        model = self._ensure_model()
        return model, self._matrix[rows]

    def _ensure_model(self) -> CompetenceMLP:
        if self._model is None:
            self._model = CompetenceMLP(int(self._matrix.shape[1]), self.config.hidden, self._rng)
            self._optimizer = Adam(self._model.params, self.config.lr)
            self._snapshots.append(self._model.copy_params())
        return self._model

    def _train_step(self) -> None:
        assert self._model is not None and self._optimizer is not None
        size = min(self.config.batch_size, len(self._buffer))
        picks = self._rng.integers(0, len(self._buffer), size=size)
        rows = [self._buffer[i][0] for i in picks]
        targets = np.array([self._buffer[i][1] for i in picks], dtype=np.float32)
        _, grads = self._model.gradients(self._matrix[rows], targets)
        self._optimizer.step(self._model.params, grads)

    # -- persistence -------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "hidden": self.config.hidden,
            "updates": self.updates,
            "goals": list(self._rows),
            "buffer": [[row, int(success)] for row, success in self._buffer],
            "model": None if self._model is None else self._model.state_dict(),
            "optimizer": None if self._optimizer is None else self._optimizer.state_dict(),
            "snapshots": [encode_params(s) for s in self._snapshots],
            "rng": encode_rng(self._rng),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a saved state; on any mismatch raise before changing anything."""
        _check_kind(self.kind, state)
        hidden = self.config.hidden
        if int(state["hidden"]) != hidden:
            raise ValueError(
                f"saved embedding model has hidden={state['hidden']}, configured {hidden}"
            )
        goals = [str(g) for g in state["goals"]]
        rows = {goal: i for i, goal in enumerate(goals)}
        matrix = self._embed(goals) if goals else np.zeros((0, 0), dtype=np.float32)
        model = optimizer = None
        if state.get("model") is not None:
            saved = state["model"]
            if goals and int(saved["dim"]) != matrix.shape[1]:
                raise ValueError(
                    f"saved embedding model reads {saved['dim']}-dimensional embeddings; "
                    f"the embedding function gives {matrix.shape[1]}"
                )
            model = CompetenceMLP(int(saved["dim"]), self.config.hidden, np.random.default_rng(0))
            model.load_state_dict(saved)
            optimizer = Adam(model.params, self.config.lr)
            if state.get("optimizer") is not None:
                optimizer.load_state_dict(state["optimizer"])
        snapshots = [decode_params(s) for s in state["snapshots"]]
        buffer = [(int(row), float(s)) for row, s in state["buffer"]]
        rng = decode_rng(state["rng"])
        self._rows, self._matrix = rows, matrix
        self._model, self._optimizer = model, optimizer
        self._snapshots.clear()
        self._snapshots.extend(snapshots)
        self._buffer.clear()
        self._buffer.extend(buffer)
        self.updates = int(state["updates"])
        self._rng = rng

"""A tiny competence model (MLP or logistic) with its own backprop and Adam, in numpy.

Why not torch: the model is a few thousand weights updated once per episode
from the collector's thread, while the learner keeps torch's intra-op thread
pool busy. Small torch ops queued behind that pool (or spinning on a loaded
machine) cost milliseconds each. For the same reason every product here is cut
into row blocks small enough that numpy's BLAS computes them in the calling
thread: measured on a loaded 2-core machine, a 64x384 by 384x64 product took
0.2-0.8 ms with BLAS threads and 0.04 ms in blocks (a whole update went from
10-25 ms to 0.3-0.6 ms). The hand-written gradient is checked against torch
autograd in the tests.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from autotelic.goals.state import decode_array, encode_array

Array = npt.NDArray[np.float32]

BLAS_SINGLE_THREAD_LIMIT = 65536 * 4
"""Products with fewer multiply-adds than this run single-threaded in OpenBLAS."""

ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


class CompetenceMLP:
    """``sigmoid(relu(x @ w1 + b1) @ w2 + b2)``, or ``sigmoid(x @ w1 + b1)`` when hidden is 0."""

    def __init__(self, dim: int, hidden: int, rng: np.random.Generator) -> None:
        if dim < 1 or hidden < 0:
            raise ValueError(f"need dim >= 1 and hidden >= 0, got dim={dim}, hidden={hidden}")
        self.dim = dim
        self.hidden = hidden
        width = hidden if hidden > 0 else 1
        self.params: dict[str, Array] = {
            "w1": _uniform(rng, (dim, width), dim),
            "b1": _uniform(rng, (width,), dim) if hidden else np.zeros(1, np.float32),
        }
        if hidden:
            self.params["w2"] = _uniform(rng, (hidden,), hidden)
            self.params["b2"] = _uniform(rng, (1,), hidden)

    def logits(self, inputs: Array, params: dict[str, Array] | None = None) -> Array:
        """Pre-sigmoid outputs for a batch of embeddings (optionally with other weights)."""
        p = self.params if params is None else params
        first = matmul(inputs, p["w1"]) + p["b1"]
        if not self.hidden:
            return first[:, 0]
        out: Array = matmul(np.maximum(first, 0.0), p["w2"][:, None])[:, 0] + p["b2"]
        return out

    def predict(self, inputs: Array, params: dict[str, Array] | None = None) -> Array:
        """Predicted success probabilities."""
        return _sigmoid(self.logits(inputs, params))

    def gradients(self, inputs: Array, targets: Array) -> tuple[float, dict[str, Array]]:
        """Mean binary cross-entropy on the batch and its gradient for every weight."""
        p = self.params
        first = matmul(inputs, p["w1"]) + p["b1"]
        if self.hidden:
            active = np.maximum(first, 0.0)
            logits = matmul(active, p["w2"][:, None])[:, 0] + p["b2"]
        else:
            logits = first[:, 0]
        loss = float(np.mean(np.logaddexp(0.0, logits) - targets * logits))
        d_logits = ((_sigmoid(logits) - targets) / len(targets)).astype(np.float32)
        if not self.hidden:
            return loss, {
                "w1": matmul(inputs.T, d_logits[:, None]),
                "b1": d_logits.sum(keepdims=True),
            }
        d_first = np.outer(d_logits, p["w2"]) * (first > 0)
        return loss, {
            "w1": matmul(inputs.T, d_first),
            "b1": d_first.sum(axis=0),
            "w2": matmul(active.T, d_logits[:, None])[:, 0],
            "b2": d_logits.sum(keepdims=True),
        }

    def copy_params(self) -> dict[str, Array]:
        """A frozen copy of the weights (a delayed model)."""
        return {k: v.copy() for k, v in self.params.items()}

    def state_dict(self) -> dict[str, Any]:
        """Msgpack- and JSON-able weights."""
        return {"dim": self.dim, "hidden": self.hidden, "params": encode_params(self.params)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore weights saved by :meth:`state_dict` (same shape only)."""
        if (int(state["dim"]), int(state["hidden"])) != (self.dim, self.hidden):
            raise ValueError(
                f"saved model has dim={state['dim']}, hidden={state['hidden']}; "
                f"this one dim={self.dim}, hidden={self.hidden}"
            )
        self.params = decode_params(state["params"])


class Adam:
    """Adam on a dict of numpy weights, updated in place."""

    def __init__(self, params: dict[str, Array], lr: float) -> None:
        self.lr = lr
        self.step_count = 0
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}

    def step(self, params: dict[str, Array], grads: dict[str, Array]) -> None:
        beta1, beta2 = ADAM_BETAS
        self.step_count += 1
        correction1 = 1.0 - beta1**self.step_count
        correction2 = 1.0 - beta2**self.step_count
        for name, grad in grads.items():
            m, v = self.m[name], self.v[name]
            m *= beta1
            m += (1.0 - beta1) * grad
            v *= beta2
            v += (1.0 - beta2) * grad * grad
            denom = np.sqrt(v / correction2) + ADAM_EPS
            params[name] -= (self.lr / correction1) * m / denom

    def state_dict(self) -> dict[str, Any]:
        """Msgpack- and JSON-able moments and step count."""
        return {"step": self.step_count, "m": encode_params(self.m), "v": encode_params(self.v)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.step_count = int(state["step"])
        self.m = decode_params(state["m"])
        self.v = decode_params(state["v"])


def encode_params(params: dict[str, Array]) -> dict[str, Any]:
    """Weights as JSON- and msgpack-able data."""
    return {k: encode_array(v) for k, v in params.items()}


def decode_params(data: dict[str, Any]) -> dict[str, Array]:
    """The inverse of :func:`encode_params`."""
    return {k: decode_array(v).astype(np.float32, copy=False) for k, v in data.items()}


def matmul(a: Array, b: Array) -> Array:
    """``a @ b`` for 2-D arrays, in row blocks each below :data:`BLAS_SINGLE_THREAD_LIMIT`."""
    rows, inner = a.shape
    cols = b.shape[1]
    block = max(1, (BLAS_SINGLE_THREAD_LIMIT - 1) // max(1, inner * cols))
    if rows <= block:
        small: Array = a @ b
        return small
    out = np.empty((rows, cols), dtype=np.result_type(a, b))
    for start in range(0, rows, block):
        np.matmul(a[start : start + block], b, out=out[start : start + block])
    return out


def _uniform(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int) -> Array:
    bound = 1.0 / np.sqrt(fan_in)
    return rng.uniform(-bound, bound, size=shape).astype(np.float32)


def _sigmoid(x: Array) -> Array:
    out: Array = (0.5 * (1.0 + np.tanh(0.5 * x))).astype(np.float32, copy=False)
    return out

"""The numpy competence model: its gradient and Adam agree with torch's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from autotelic.goals.competence_mlp import Adam, CompetenceMLP, matmul


def _torch_loss(
    params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor, hidden: int
) -> torch.Tensor:
    first = x @ params["w1"] + params["b1"]
    logits = torch.relu(first) @ params["w2"] + params["b2"] if hidden else first[:, 0]
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, y)


@pytest.mark.parametrize("hidden", [0, 5, 64])
def test_gradient_matches_torch_autograd(hidden: int) -> None:
    rng = np.random.default_rng(hidden)
    model = CompetenceMLP(dim=384, hidden=hidden, rng=rng)
    x = rng.standard_normal((70, 384)).astype(np.float32)
    y = (rng.random(70) < 0.4).astype(np.float32)
    loss, grads = model.gradients(x, y)
    params = {k: torch.tensor(v, requires_grad=True) for k, v in model.params.items()}
    expected = _torch_loss(params, torch.tensor(x), torch.tensor(y), hidden)
    expected.backward()  # type: ignore[no-untyped-call]
    assert loss == pytest.approx(expected.item(), rel=1e-5)
    assert set(grads) == set(params)
    for name, tensor in params.items():
        assert tensor.grad is not None
        np.testing.assert_allclose(grads[name], tensor.grad.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(
        model.predict(x), torch.sigmoid(torch.tensor(model.logits(x))).numpy(), rtol=1e-5
    )


def test_adam_steps_match_torch_adam() -> None:
    rng = np.random.default_rng(0)
    model = CompetenceMLP(dim=16, hidden=8, rng=rng)
    params = {k: torch.tensor(v, requires_grad=True) for k, v in model.params.items()}
    ours, theirs = Adam(model.params, lr=0.03), torch.optim.Adam(list(params.values()), lr=0.03)
    for _ in range(20):
        x = rng.standard_normal((32, 16)).astype(np.float32)
        y = (rng.random(32) < 0.5).astype(np.float32)
        _, grads = model.gradients(x, y)
        ours.step(model.params, grads)
        theirs.zero_grad()
        _torch_loss(params, torch.tensor(x), torch.tensor(y), 8).backward()  # type: ignore[no-untyped-call]
        theirs.step()
    for name, tensor in params.items():
        np.testing.assert_allclose(
            model.params[name], tensor.detach().numpy(), rtol=1e-4, atol=1e-5
        )


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 300), st.integers(1, 200), st.integers(1, 80))
def test_blockwise_matmul_equals_matmul(rows: int, inner: int, cols: int) -> None:
    rng = np.random.default_rng(rows * inner * cols)
    a = rng.standard_normal((rows, inner)).astype(np.float32)
    b = rng.standard_normal((inner, cols)).astype(np.float32)
    np.testing.assert_allclose(matmul(a, b), a @ b, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(matmul(a.T.copy().T, b), a @ b, rtol=1e-4, atol=1e-4)


def test_model_state_round_trip_and_shape_check() -> None:
    model = CompetenceMLP(dim=12, hidden=4, rng=np.random.default_rng(1))
    other = CompetenceMLP(dim=12, hidden=4, rng=np.random.default_rng(2))
    other.load_state_dict(model.state_dict())
    x = np.random.default_rng(3).standard_normal((5, 12)).astype(np.float32)
    np.testing.assert_array_equal(other.predict(x), model.predict(x))
    with pytest.raises(ValueError, match="dim=12, hidden=4; this one dim=12, hidden=3"):
        CompetenceMLP(dim=12, hidden=3, rng=np.random.default_rng(0)).load_state_dict(
            model.state_dict()
        )

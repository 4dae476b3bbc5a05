"""Every layer and loss of nnlab.nn against central differences (float64) and against torch autograd."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nnlab.nn import (MSE, BinaryCrossEntropy, BinaryCrossEntropyWithLogits, CrossEntropy, LeakyReLU, Linear,
                      ReLU, Sequential, Sigmoid, SoftMax, Tanh)
from nnlab.nn.layers import column_sums, row_max, row_sums

B, D_IN, D_OUT = 5, 4, 3
TOLERANCE = 1e-6

LAYERS = {
    "linear": (lambda rng: Linear(D_IN, D_OUT, rng=rng, init="xavier"),
               lambda x, p: x @ p["W"] + p["b"]),
    "relu": (lambda rng: ReLU(), torch.relu),
    "sigmoid": (lambda rng: Sigmoid(), torch.sigmoid),
    "tanh": (lambda rng: Tanh(), torch.tanh),
    "leaky_relu": (lambda rng: LeakyReLU(0.1), lambda x: F.leaky_relu(x, 0.1)),
    "softmax": (lambda rng: SoftMax(), lambda x: torch.softmax(x, dim=1)),
}


def relative_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    return float(np.linalg.norm(analytic - numeric) / max(np.linalg.norm(analytic) + np.linalg.norm(numeric), 1e-12))


def numeric_gradient(f, array: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar ``f()`` with respect to ``array``, perturbed in place."""
    grad = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        saved = array[index]
        array[index] = saved + eps
        plus = f()
        array[index] = saved - eps
        minus = f()
        array[index] = saved
        grad[index] = (plus - minus) / (2 * eps)
    return grad


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def _setup(name, rng):
    """A fresh layer, an input kept at least 0.1 away from the ReLU kink, and an upstream gradient."""
    layer = LAYERS[name][0](rng)
    raw = rng.normal(size=(B, D_IN))
    x = np.sign(raw) * (0.1 + np.abs(raw))
    upstream = rng.normal(size=layer.forward(x).shape)
    return layer, x, upstream


@pytest.mark.parametrize("name", LAYERS)
def test_layer_gradients_match_central_differences(name, rng):
    layer, x, upstream = _setup(name, rng)

    def objective() -> float:
        return float(np.sum(layer.forward(x) * upstream))

    objective()
    grad_in = layer.backward(upstream)
    analytic = {"input": grad_in, **{k: v.copy() for k, v in layer.grads().items()}}
    numeric = {"input": numeric_gradient(objective, x),
               **{k: numeric_gradient(objective, p) for k, p in layer.params().items()}}
    assert analytic.keys() == numeric.keys()
    for key in analytic:
        assert relative_error(analytic[key], numeric[key]) < TOLERANCE, key


@pytest.mark.numerics
@pytest.mark.parametrize("name", LAYERS)
def test_layer_matches_torch_autograd(name, rng):
    layer, x, upstream = _setup(name, rng)
    out = layer.forward(x)
    grad_in = layer.backward(upstream)

    x_t = torch.tensor(x, requires_grad=True)
    params_t = {k: torch.tensor(v, requires_grad=True) for k, v in layer.params().items()}
    torch_fn = LAYERS[name][1]
    out_t = torch_fn(x_t, params_t) if params_t else torch_fn(x_t)
    (out_t * torch.tensor(upstream)).sum().backward()

    np.testing.assert_allclose(out, out_t.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grad_in, x_t.grad.numpy(), rtol=1e-10, atol=1e-12)
    for key, tensor in params_t.items():
        np.testing.assert_allclose(layer.grads()[key], tensor.grad.numpy(), rtol=1e-10, atol=1e-12)


N_CLASSES = 3


def loss_case(name: str, rng: np.random.Generator):
    """(loss, prediction, target, the same loss in torch) for each loss under test."""
    labels = rng.integers(0, N_CLASSES, size=B)
    binary = rng.integers(0, 2, size=(B, 1)).astype(float)
    logits = rng.normal(size=(B, N_CLASSES)) * 2
    if name == "cross_entropy_labels":
        return CrossEntropy(), logits, labels, lambda p: F.cross_entropy(p, torch.tensor(labels))
    if name == "cross_entropy_one_hot":
        one_hot = np.eye(N_CLASSES)[labels]
        return CrossEntropy(), logits, one_hot, lambda p: F.cross_entropy(p, torch.tensor(one_hot))
    if name == "binary_cross_entropy":
        probs = rng.uniform(0.05, 0.95, size=(B, 1))
        return BinaryCrossEntropy(), probs, binary, lambda p: F.binary_cross_entropy(p, torch.tensor(binary))
    if name == "binary_cross_entropy_with_logits":
        z = rng.normal(size=(B, 1)) * 3
        return (BinaryCrossEntropyWithLogits(), z, binary,
                lambda p: F.binary_cross_entropy_with_logits(p, torch.tensor(binary)))
    if name == "mse":
        target = rng.normal(size=(B, N_CLASSES))
        return MSE(), logits, target, lambda p: F.mse_loss(p, torch.tensor(target))
    raise KeyError(name)


LOSSES = ["cross_entropy_labels", "cross_entropy_one_hot", "binary_cross_entropy",
          "binary_cross_entropy_with_logits", "mse"]


@pytest.mark.parametrize("name", LOSSES)
def test_loss_gradient_matches_central_differences(name, rng):
    loss, pred, target, _ = loss_case(name, rng)
    loss.forward(pred, target)
    analytic = loss.backward()
    numeric = numeric_gradient(lambda: loss.forward(pred, target), pred)
    assert relative_error(analytic, numeric) < TOLERANCE


@pytest.mark.numerics
@pytest.mark.parametrize("name", LOSSES)
def test_loss_matches_torch_autograd(name, rng):
    loss, pred, target, torch_loss = loss_case(name, rng)
    value = loss.forward(pred, target)
    grad = loss.backward()
    pred_t = torch.tensor(pred, requires_grad=True)
    value_t = torch_loss(pred_t)
    value_t.backward()
    assert value == pytest.approx(value_t.item(), rel=1e-12)
    np.testing.assert_allclose(grad, pred_t.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_extreme_inputs_stay_finite():
    x = np.array([[-1000.0, 0.0, 1000.0]])
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        assert np.array_equal(Sigmoid().forward(x), [[0.0, 0.5, 1.0]])
        assert np.allclose(SoftMax().forward(x), [[0.0, 0.0, 1.0]])
        assert CrossEntropy().forward(x, np.array([0])) == pytest.approx(2000.0)
        assert np.isfinite(BinaryCrossEntropyWithLogits().forward(x.T, np.array([1, 0, 0])))
    assert np.isfinite(BinaryCrossEntropy().forward(np.array([[0.0], [1.0]]), np.array([1, 0])))


@pytest.mark.parametrize("columns", [1, 2, 10, 40])
def test_row_and_column_reductions_match_numpy(columns, rng):
    x = rng.normal(size=(50, columns))
    x[3, 0], x[7, -1] = np.inf, np.nan
    np.testing.assert_array_equal(row_max(x), x.max(axis=1))
    np.testing.assert_allclose(row_sums(x[8:]), x[8:].sum(axis=1), rtol=1e-12)
    np.testing.assert_allclose(column_sums(x[8:]), x[8:].sum(axis=0), rtol=1e-12)


def test_backward_params_gives_the_gradients_of_backward(rng):
    def gradients(model, backward):
        loss = CrossEntropy()
        loss.forward(model.forward(x), labels)
        backward(model, loss.backward())
        return [grad.copy() for layer in model.layers for grad in layer.grads().values()]

    x, labels = rng.normal(size=(30, 3)), rng.integers(0, 4, 30)
    model = Sequential([Linear(3, 5, rng=rng), Tanh(), Linear(5, 4, rng=rng)])
    for full, params_only in zip(gradients(model, Sequential.backward), gradients(model, Sequential.backward_params)):
        np.testing.assert_array_equal(full, params_only)

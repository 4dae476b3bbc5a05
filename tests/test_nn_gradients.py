"""Every layer and loss of nnlab.nn against central differences (float64) and against torch autograd."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nnlab.nn import (MSE, BinaryCrossEntropy, BinaryCrossEntropyWithLogits, CrossEntropy, LeakyReLU, Linear,
                      ReLU, Sequential, Sigmoid, SoftMax, Tanh)
from nnlab.nn.layers import column_sums, row_max, row_sums
from tolerances import assert_within, sum_tolerance

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


def layer_bounds(name, x, params, out, upstream) -> dict:
    """float64 bounds on numpy against torch for the output, input gradient and parameter gradients.

    :func:`tolerances.sum_tolerance` with float64 eps: a product or sum counts its
    terms, a libm function (exp, log1p, tanh) two roundings (one ulp), and the
    magnitude is each expression evaluated on absolute values. Where a rounded
    operand is subtracted (``1 - s``) its relative error is carried in the magnitude.
    """
    f64 = np.float64
    u = np.abs(upstream)
    if name == "linear":
        W, b = np.abs(params["W"]), np.abs(params["b"])
        return {"out": sum_tolerance(D_IN + 1, np.abs(x) @ W + b, f64), "input": sum_tolerance(D_OUT, u @ W.T, f64),
                "W": sum_tolerance(B, np.abs(x).T @ u, f64), "b": sum_tolerance(B, u.sum(axis=0), f64)}
    if name == "relu":   # max(x, 0) and a 0/1 mask: no rounding at all
        return {"out": 0.0, "input": 0.0}
    if name == "leaky_relu":   # one product by the slope
        return {"out": sum_tolerance(1, np.abs(out), f64), "input": sum_tolerance(1, u, f64)}
    if name == "sigmoid":
        # numpy exp(-log(1 + e^-x)) (exp, log1p, exp, add: at most 7 (1 + |x|) roundings relative, the
        # inner log's absolute error growing with |x|), torch 1 / (1 + e^-x) (4); the gradient u s (1 - s)
        # adds the subtraction and two products, and (1 - s) carries s's absolute error
        scale = 1 + np.abs(x)
        return {"out": sum_tolerance(7, out * scale, f64), "input": sum_tolerance(10, u * out * scale, f64)}
    if name == "tanh":   # libm tanh; u (1 - t^2) adds the square (twice t's error), subtraction, product
        return {"out": sum_tolerance(2, np.abs(out), f64), "input": sum_tolerance(5, u * (1 + out ** 2), f64)}
    if name == "softmax":
        # exp(x - max) / sum: the shift's rounding grows exp's relative error by |x - max| (up to the row's
        # spread, in the sum), then D terms, exp, division: relative (D + 5)(1 + spread);
        # s (u - sum u s) adds D more terms, a subtraction and a product on |s| (|u| + sum |u s|)
        spread = 1 + np.max(np.abs(x - x.max(axis=1, keepdims=True)), axis=1, keepdims=True)
        inner = u + np.sum(u * out, axis=1, keepdims=True)
        return {"out": sum_tolerance(D_OUT + 5, out * spread, f64),
                "input": sum_tolerance(3 * (D_OUT + 5), out * inner * spread, f64)}
    raise KeyError(name)


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

    bounds = layer_bounds(name, x, layer.params(), out, upstream)
    assert_within(out, out_t.detach().numpy(), bounds["out"], "output")
    assert_within(grad_in, x_t.grad.numpy(), bounds["input"], "input gradient")
    for key, tensor in params_t.items():
        assert_within(layer.grads()[key], tensor.grad.numpy(), bounds[key], f"{key} gradient")


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


def loss_bounds(name, pred, target, value, grad) -> tuple[float, np.ndarray]:
    """float64 bounds on numpy against torch for a loss and its gradient (rules of :func:`layer_bounds`).

    The value is a mean over the n entries (n terms and a division) of per-entry terms that
    each carry a few roundings of their own magnitude; the gradient is elementwise.
    """
    f64, n = np.float64, pred.size
    if name.startswith("cross_entropy"):
        # per row: shift (|x_y - max|), log-sum-exp (the exps' relative error (D + 5)(1 + spread), log's rounding)
        shifted = pred - pred.max(axis=1, keepdims=True)
        spread = 1 + np.abs(shifted).max(axis=1)
        one_hot = np.eye(N_CLASSES)[target] if target.ndim == 1 else target
        log_total = np.log(np.exp(shifted).sum(axis=1))
        per_row = np.abs(np.sum(one_hot * shifted, axis=1)) + log_total + spread
        value_bound = sum_tolerance(len(pred) + N_CLASSES + 5, per_row.mean(), f64)
        probs = np.exp(shifted - log_total[:, None])
        # (softmax - y) / B: softmax's relative bound, a subtraction and a division
        return value_bound, sum_tolerance(N_CLASSES + 7, (probs + one_hot) * spread[:, None] / len(pred), f64)
    if name == "binary_cross_entropy":
        # log p and log(1 - p) (1 - p rounds first), products by y and 1 - y, the sum
        per_entry = 1 + np.abs(np.log(pred)) + np.abs(np.log1p(-pred))
        # (p - y) / (p (1 - p)) / n: four roundings, and 1 - p's relative error p / (1 - p)
        return (sum_tolerance(n + 4, per_entry.mean(), f64),
                sum_tolerance(5, np.abs(grad) * (1 + 1 / (1 - pred)), f64))
    if name == "binary_cross_entropy_with_logits":
        # log(1 + e^z) (exp, log1p, add: 2 + 3 softplus), y z, subtraction, the sum; torch's formula is
        # algebraically the same with as many roundings
        softplus = np.logaddexp(0.0, pred)
        per_entry = 1 + softplus + np.abs(pred)
        sigmoid = np.exp(-np.logaddexp(0.0, -pred))
        # (sigmoid(z) - y) / n: sigmoid's 7 (1 + |z|) relative (see layer_bounds), subtraction, division
        return (sum_tolerance(n + 4, per_entry.mean(), f64),
                sum_tolerance(9, (sigmoid + np.abs(target)) * (1 + np.abs(pred)) / n, f64))
    if name == "mse":
        # residual, square (twice the residual's relative error, and its own), the sum of n, the division
        residual = pred - target
        return sum_tolerance(n + 4, np.mean(residual ** 2), f64), sum_tolerance(3, np.abs(grad), f64)
    raise KeyError(name)


@pytest.mark.numerics
@pytest.mark.parametrize("name", LOSSES)
def test_loss_matches_torch_autograd(name, rng):
    loss, pred, target, torch_loss = loss_case(name, rng)
    value = loss.forward(pred, target)
    grad = loss.backward()
    pred_t = torch.tensor(pred, requires_grad=True)
    value_t = torch_loss(pred_t)
    value_t.backward()
    value_bound, grad_bound = loss_bounds(name, pred, target, value, grad)
    assert_within(value, value_t.item(), value_bound, "loss")
    assert_within(grad, pred_t.grad.numpy(), grad_bound, "gradient")


def test_extreme_inputs_stay_finite():
    x = np.array([[-1000.0, 0.0, 1000.0]])
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        assert np.array_equal(Sigmoid().forward(x), [[0.0, 0.5, 1.0]])
        assert np.allclose(SoftMax().forward(x), [[0.0, 0.0, 1.0]])
        assert CrossEntropy().forward(x, np.array([0])) == pytest.approx(2000.0)
        assert np.isfinite(BinaryCrossEntropyWithLogits().forward(x.T, np.array([1, 0, 0])))
    assert np.isfinite(BinaryCrossEntropy().forward(np.array([[0.0], [1.0]]), np.array([1, 0])))


@pytest.mark.numerics
@pytest.mark.parametrize("columns", [1, 2, 10, 40])
def test_row_and_column_reductions_match_numpy(columns, rng):
    x = rng.normal(size=(50, columns))
    x[3, 0], x[7, -1] = np.inf, np.nan
    np.testing.assert_array_equal(row_max(x), x.max(axis=1))
    # BLAS products with ones against numpy's pairwise sums: float64 sums of `columns` and 42 terms
    finite = x[8:]
    assert_within(row_sums(finite), finite.sum(axis=1),
                  sum_tolerance(columns, np.abs(finite).sum(axis=1), np.float64), "row sums")
    assert_within(column_sums(finite), finite.sum(axis=0),
                  sum_tolerance(len(finite), np.abs(finite).sum(axis=0), np.float64), "column sums")
    single = finite.astype(np.float32)   # a float32 net's sums stay float32
    assert row_sums(single).dtype == column_sums(single).dtype == np.float32


def test_backward_params_gives_the_gradients_of_backward(rng):
    def gradients(model, backward):
        loss = CrossEntropy()
        loss.forward(model.forward(x), labels)
        backward(model, loss.backward())
        return [grad.copy() for layer in model.layers for grad in layer.grads().values()]

    x, labels = rng.normal(size=(30, 3)), rng.integers(0, 4, 30)
    # First a layer that skips its input gradient, then one without parameters (the default backward_params).
    for model in (Sequential([Linear(3, 5, rng=rng), Tanh(), Linear(5, 4, rng=rng)]),
                  Sequential([Tanh(), Linear(3, 4, rng=rng)])):
        full, params_only = gradients(model, Sequential.backward), gradients(model, Sequential.backward_params)
        assert len(full) == len(params_only) > 0
        for one, other in zip(full, params_only):
            np.testing.assert_array_equal(one, other)


# Outputs on both sides of 0.5 (one exactly on it), a target given flat as stages pass labels.
SINGLE_COLUMN = np.array([[0.5], [0.2], [0.9], [0.7]]), np.array([1, 0, 0, 1])


@pytest.mark.parametrize("loss, pred, target, expected", [
    (BinaryCrossEntropy(), *SINGLE_COLUMN, 0.75),
    (MSE(), *SINGLE_COLUMN, 0.75),
    # Two classes, one row with both outputs below 0.5: its class is still the larger one.
    (MSE(), np.array([[0.45, 0.4], [0.2, 0.6], [0.1, 0.3]]), np.array([[1, 0], [1, 0], [0, 1]]), 2 / 3),
    # Logits: 0 is the boundary, read as class 1 (probability 0.5, as BCE on probabilities reads it).
    # Not 0.5 correct: that is also what a negated comparison, or a flat target broadcast against the
    # column, would score.
    (BinaryCrossEntropyWithLogits(), np.array([[0.0], [-0.1], [2.0], [-3.0]]), np.array([1, 0, 1, 1]), 0.75),
], ids=["bce", "mse-one-column", "mse-one-hot", "bce-logits"])
def test_accuracy_reads_each_output_as_its_class(loss, pred, target, expected):
    assert loss.accuracy(pred, target) == expected


@pytest.mark.parametrize("loss", [MSE(), BinaryCrossEntropyWithLogits()], ids=["mse", "bce-logits"])
def test_integer_targets_given_flat_keep_the_outputs_shape_and_dtype(loss):
    pred = np.array([[0.25], [-1.5]], dtype=np.float32)
    column = loss.forward(pred, np.array([[1.0], [0.0]], dtype=np.float32))
    flat = loss.forward(pred, np.array([1, 0]))
    grad = loss.backward()   # of the flat integer target's loss
    assert flat == column
    assert grad.shape == pred.shape and grad.dtype == np.float32


def test_xavier_fills_its_whole_range_and_no_more(rng):
    from nnlab.nn import init

    weights = init.xavier((30, 10), rng)
    limit = np.sqrt(6.0 / 40)
    assert weights.shape == (30, 10)
    assert -limit <= weights.min() < -0.9 * limit and 0.9 * limit < weights.max() <= limit


def test_defaults_and_names_of_layers_and_initialisers(rng):
    from nnlab.nn import init

    leaky = LeakyReLU()
    assert leaky.forward(np.array([-2.0, 0.0, 3.0])).tolist() == [-0.02, 0.0, 3.0]
    assert leaky.backward(np.ones(3)).tolist() == [0.01, 0.01, 1.0]   # at 0 the slope, as torch's leaky_relu
    relu = ReLU()
    relu.forward(np.array([-1.0, 0.0, 2.0]))
    assert relu.backward(np.ones(3)).tolist() == [0.0, 0.0, 1.0]   # at 0 no gradient, as torch's relu
    assert BinaryCrossEntropyWithLogits().probabilities(np.array([[0.0], [np.log(3.0)]])).ravel() == pytest.approx([0.5, 0.75])
    weights = init.normal((100, 50), rng)
    assert weights.shape == (100, 50) and abs(weights.mean()) < 0.001 and 0.0095 < weights.std() < 0.0105
    weights = init.he((400, 50), rng)   # std sqrt(2 / fan_in)
    assert abs(weights.mean()) < 0.005 and 0.95 < weights.std() / np.sqrt(2 / 400) < 1.05
    assert init.get("he") is init.he and init.get("he", std=0.5) is init.he and init.get("normal") is init.normal
    assert 0.45 < init.get("normal", std=0.5)((100, 50), rng).std() < 0.55
    with pytest.raises(ValueError, match=r"^unknown initialiser 'glorot' \(choose from zeros, normal, xavier, he\)$"):
        init.get("glorot")
    narrow = Linear(2, 3, rng=rng, dtype=np.float32)
    assert narrow.W.dtype == narrow.b.dtype == np.float32
    # The architecture a checkpoint records (nnlab/checkpoint.py): a resumed run must be of the same net.
    net = Sequential([Linear(2, 3, rng=rng), LeakyReLU(0.1), Linear(3, 1, rng=rng), Sigmoid()])
    assert repr(net) == "Linear(2, 3) - LeakyReLU(0.1) - Linear(3, 1) - Sigmoid()"

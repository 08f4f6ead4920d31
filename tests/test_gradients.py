"""The analytic gradient of ``loss_and_gradient`` against finite differences of its own objective.

Float64 only. Differences are central and of fourth order,
``(-f(w+2h) + 8 f(w+h) - 8 f(w-h) + f(w-2h)) / 12h``, so that h can stay
large enough for round-off not to matter. relu networks are checked only
where no pre-activation crosses zero inside the stencil (asserted, so a
change of data or seed that breaks the premise fails loudly instead of
passing by luck); their parameters are drawn until every pre-activation is
clear of zero.
"""

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_array_equal

import naive
from fastbp import kernels as K

HIDDEN = ["identity", "logistic", "tanh", "relu"]
PAIRINGS = [
    ("squared_error", "identity"),
    ("poisson", "exp"),
    ("log_loss", "softmax"),
    ("binary_log_loss", "logistic"),
    ("squared_error", "logistic"),
]
PAIR_IDS = [f"{loss}+{act}" for loss, act in PAIRINGS]

N_SAMPLES, N_FEATURES, HIDDEN_SIZES = 11, 7, (5, 3)
CAPACITY = 4  # several chunks: 4 + 4 + 3 rows
H = 2e-4
KINK_MARGIN = 1e-2  # relu pre-activations stay this far from 0 (the stencil moves them < 2e-3)
STENCIL = [(-2, 1.0), (-1, -8.0), (1, 8.0), (2, -1.0)]  # (offset in h, weight / 12h)
RTOL = 1e-6
TINY = 1e-6  # below this, |a| + |b| counts as this: an absolute floor of 1e-12


def make_problem(rng, hidden, loss, out_activation, weighted):
    n_out = 3 if out_activation == "softmax" else 2
    sizes = [N_FEATURES, *HIDDEN_SIZES, n_out]
    X = rng.normal(size=(N_SAMPLES, N_FEATURES))
    if loss == "squared_error" and out_activation == "identity":
        Y = rng.normal(size=(N_SAMPLES, n_out))
    elif loss == "squared_error":
        Y = rng.uniform(size=(N_SAMPLES, n_out))
    elif loss == "poisson":
        Y = rng.poisson(1.5, size=(N_SAMPLES, n_out)).astype(float)
    elif loss == "log_loss":
        Y = np.eye(n_out)[rng.randint(n_out, size=N_SAMPLES)]
    else:
        Y = rng.randint(0, 2, size=(N_SAMPLES, n_out)).astype(float)
    sw = rng.uniform(0.5, 2.0, size=N_SAMPLES) if weighted else np.ones(N_SAMPLES)
    activations = [hidden] * len(HIDDEN_SIZES) + [out_activation]
    # relu: draw again until every pre-activation is clear of the kink
    for _ in range(50):
        params = rng.uniform(-0.5, 0.5, size=naive.n_params(sizes))
        if relu_margin(sizes, activations, X, params) > KINK_MARGIN:
            break
    else:
        raise AssertionError("no kink-free parameters in 50 draws")
    layers = naive.layer_table(sizes, [K.ACTIVATION_CODES[a] for a in activations])
    return sizes, activations, layers, X, Y, sw, params


def relu_margin(sizes, activations, X, params):
    """Smallest |pre-activation| of any relu layer (inf without relu)."""
    coefs, intercepts = naive.unpack(params, sizes)
    margin = np.inf
    A = X
    for W, b, name in zip(coefs, intercepts, activations):
        Z = A @ W + b
        if name == "relu":
            margin = min(margin, np.abs(Z).min())
        A = naive.activate(name, Z)
    return margin


class KernelObjective:
    """``loss_and_gradient`` as a function of the flat parameters (float64)."""

    def __init__(self, sizes, layers, X, Y, sw, alpha, loss, loss_scale, fit_intercepts, sparse=False):
        if sparse:
            matrix = sp.csr_matrix(X)
            self.X = np.empty((0, X.shape[1]))
            self.csr = (
                np.ascontiguousarray(matrix.data, dtype=np.float64),
                np.ascontiguousarray(matrix.indices, dtype=np.int32),
                np.ascontiguousarray(matrix.indptr, dtype=np.int32),
            )
        else:
            self.X = X
            self.csr = None
        self.Y, self.sw, self.layers = Y, sw, layers
        self.alpha, self.loss_code, self.loss_scale = float(alpha), K.LOSS_CODES[loss], float(loss_scale)
        self.fit_intercepts = fit_intercepts
        n_units = sum(sizes[1:])
        self.acts = np.empty(CAPACITY * n_units)
        self.deltas = np.empty(CAPACITY * n_units)
        self.grads = np.empty(naive.n_params(sizes))
        self.scratch = np.empty(naive.n_params(sizes))
        self.rows = np.empty(CAPACITY, dtype=np.int64)

    def __call__(self, params):
        value = K.loss_and_gradient(
            self.X, self.csr, self.Y, self.sw,
            params, self.layers, self.acts, self.deltas, self.grads, self.scratch, self.rows,
            CAPACITY, self.alpha, self.loss_code, self.loss_scale, np.finfo(np.float64).eps,
            self.fit_intercepts,
        )
        return value, self.grads.copy()


def stencil_points(params):
    """Every perturbed parameter vector of the stencil, with its index and weight."""
    for k in range(params.shape[0]):
        for offset, weight in STENCIL:
            perturbed = params.copy()
            perturbed[k] += offset * H
            yield k, weight, perturbed


def finite_difference_gradient(f, params):
    grad = np.zeros_like(params)
    for k, weight, perturbed in stencil_points(params):
        grad[k] += weight * f(perturbed)[0]
    return grad / (12 * H)


def relative_error(a, b):
    return np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), TINY)


def assert_no_relu_kink_in_stencil(sizes, activations, X, params):
    """No relu pre-activation changes sign anywhere in the stencil."""
    relu_layers = [l for l, a in enumerate(activations[:-1]) if a == "relu"]
    if not relu_layers:
        return

    def pattern(p):
        coefs, intercepts = naive.unpack(p, sizes)
        outputs = naive.forward(X, coefs, intercepts, activations)
        return [outputs[l] > 0 for l in relu_layers]

    base = pattern(params)
    for k, _, perturbed in stencil_points(params):
        for before, after in zip(base, pattern(perturbed)):
            assert_array_equal(after, before, err_msg=f"relu kink crossed when moving parameter {k}")


# (weighted, alpha, fit_intercepts)
CASES = [(False, 0.0, True), (True, 0.3, True), (True, 0.1, False)]
CASE_IDS = ["plain", "weighted-alpha", "weighted-alpha-nointercepts"]


@pytest.mark.parametrize("weighted, alpha, fit_intercepts", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("loss, out_activation", PAIRINGS, ids=PAIR_IDS)
def test_gradient_matches_finite_differences(rng, loss, out_activation, hidden, weighted, alpha, fit_intercepts):
    sizes, activations, layers, X, Y, sw, params = make_problem(rng, hidden, loss, out_activation, weighted)
    assert_no_relu_kink_in_stencil(sizes, activations, X, params)
    # loss_scale = 1: the gradient is that of the sum over outputs
    f = KernelObjective(sizes, layers, X, Y, sw, alpha, loss, 1.0, fit_intercepts)
    value, grad = f(params)
    assert np.isfinite(value)
    numeric = finite_difference_gradient(f, params)
    coefs = naive.coef_mask(sizes)
    checked = numeric if fit_intercepts else numeric[coefs]
    got = grad if fit_intercepts else grad[coefs]
    assert np.abs(checked).max() > 1e-3  # the objective does depend on the parameters
    err = relative_error(got, checked)
    assert err.max() < RTOL, f"worst parameter {np.argmax(err)}: {got[np.argmax(err)]} vs {checked[np.argmax(err)]}"
    if not fit_intercepts:
        assert_array_equal(grad[~coefs], 0)
        assert np.abs(numeric[~coefs]).max() > 1e-3  # they would move if they were fitted


@pytest.mark.parametrize("loss, out_activation", [PAIRINGS[2], PAIRINGS[4]], ids=[PAIR_IDS[2], PAIR_IDS[4]])
def test_gradient_matches_finite_differences_csr(rng, loss, out_activation):
    sizes, activations, layers, X, Y, sw, params = make_problem(rng, "tanh", loss, out_activation, True)
    X[rng.uniform(size=X.shape) < 0.5] = 0
    f = KernelObjective(sizes, layers, X, Y, sw, 0.2, loss, 1.0, True, sparse=True)
    _, grad = f(params)
    assert relative_error(grad, finite_difference_gradient(f, params)).max() < RTOL


def test_multi_output_squared_error_gradient_ignores_loss_scale(rng):
    # scikit-learn reports the squared error averaged over outputs
    # (loss_scale = 1 / n_outputs) but follows the gradient of the sum over
    # outputs; the kernel does the same, so with alpha = 0 its gradient is
    # n_outputs times the derivative of the objective it reports
    sizes, activations, layers, X, Y, sw, params = make_problem(rng, "tanh", "squared_error", "identity", True)
    n_outputs = sizes[-1]
    assert n_outputs > 1
    f = KernelObjective(sizes, layers, X, Y, sw, 0.0, "squared_error", 1.0 / n_outputs, True)
    _, grad = f(params)
    numeric = finite_difference_gradient(f, params)
    assert relative_error(grad, n_outputs * numeric).max() < RTOL
    assert relative_error(grad, numeric).min() > 0.1

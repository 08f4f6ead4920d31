"""The analytic gradient of ``loss_and_gradient`` against finite differences of its own objective.

Float64 only. Differences are central and of fourth order,
``(-f(w+2h) + 8 f(w+h) - 8 f(w-h) + f(w-2h)) / 12h``, so that h can stay
large enough for round-off not to matter. Functions with a kink are checked
only where nothing crosses it inside the stencil (asserted, so a change of
data or seed that breaks the premise fails loudly instead of passing by
luck): relu and leaky_relu pre-activations stay clear of zero, residuals of
absolute error clear of zero, and those of huber clear of +-delta (where
its second derivative jumps); parameters are drawn until they are.

The grid runs the kernel that reads its activation and loss codes at run
time; ``check_gradients`` (the public check, through the kernels compiled
for each network's codes) covers each activation and loss of fastbp's own,
alone and mixed per layer.
"""

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_array_equal
from sklearn.base import is_regressor

import naive
from fastbp import MLPClassifier, MLPRegressor, Network, check_gradients
from fastbp import kernels as K

HIDDEN = ["identity", "logistic", "tanh", "relu", "leaky_relu", "gelu", "silu", "softplus"]
NEW_HIDDEN = ["leaky_relu", "gelu", "silu", "softplus"]
PAIRINGS = [
    ("squared_error", "identity"),
    ("poisson", "exp"),
    ("log_loss", "softmax"),
    ("binary_log_loss", "logistic"),
    ("squared_error", "logistic"),
    ("absolute_error", "identity"),
    ("huber", "identity"),
    ("huber", "logistic"),
]
PAIR_IDS = [f"{loss}+{act}" for loss, act in PAIRINGS]

N_SAMPLES, N_FEATURES, HIDDEN_SIZES = 11, 7, (5, 3)
CAPACITY = 4  # several chunks: 4 + 4 + 3 rows
H = 2e-4
KINK_MARGIN = 1e-2  # pre-activations and residuals stay this far from kinks (the stencil moves them < 2e-3)
KINKED = ("relu", "leaky_relu")
HUBER_DELTA = 0.5
STENCIL = [(-2, 1.0), (-1, -8.0), (1, 8.0), (2, -1.0)]  # (offset in h, weight / 12h)
RTOL = 1e-6
TINY = 1e-6  # below this, |a| + |b| counts as this: an absolute floor of 1e-12


def make_problem(rng, hidden, loss, out_activation, weighted):
    n_out = 3 if out_activation == "softmax" else 2
    sizes = [N_FEATURES, *HIDDEN_SIZES, n_out]
    X = rng.normal(size=(N_SAMPLES, N_FEATURES))
    if loss in ("squared_error", "absolute_error", "huber") and out_activation == "identity":
        Y = rng.normal(size=(N_SAMPLES, n_out))
    elif loss in ("squared_error", "huber"):
        Y = rng.uniform(size=(N_SAMPLES, n_out))
    elif loss == "poisson":
        Y = rng.poisson(1.5, size=(N_SAMPLES, n_out)).astype(float)
    elif loss == "log_loss":
        Y = np.eye(n_out)[rng.randint(n_out, size=N_SAMPLES)]
    else:
        Y = rng.randint(0, 2, size=(N_SAMPLES, n_out)).astype(float)
    sw = rng.uniform(0.5, 2.0, size=N_SAMPLES) if weighted else np.ones(N_SAMPLES)
    activations = [hidden] * len(HIDDEN_SIZES) + [out_activation]
    # draw again until everything is clear of the kinks
    for _ in range(200):
        params = rng.uniform(-0.5, 0.5, size=naive.n_params(sizes))
        if kink_margin(sizes, activations, X, Y, params, loss) > KINK_MARGIN:
            break
    else:
        raise AssertionError("no kink-free parameters in 200 draws")
    layers = naive.layer_table(sizes, [K.ACTIVATION_CODES[a] for a in activations])
    return sizes, activations, layers, X, Y, sw, params


def kinks(sizes, activations, X, Y, params, loss):
    """Distances to every kink: |Z| of relu and leaky_relu layers, |r| or ||r| - delta| of the loss."""
    coefs, intercepts = naive.unpack(params, sizes)
    pre_activations, outputs = naive.forward_z(X, coefs, intercepts, activations)
    distances = [Z for Z, name in zip(pre_activations, activations) if name in KINKED]
    residuals = outputs[-1] - Y
    if loss == "absolute_error":
        distances.append(residuals)
    if loss == "huber":
        distances.append(np.abs(residuals) - HUBER_DELTA)
    return distances


def kink_margin(sizes, activations, X, Y, params, loss):
    """Smallest distance to a kink (inf without any)."""
    return min((np.abs(d).min() for d in kinks(sizes, activations, X, Y, params, loss)), default=np.inf)


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
        slope_units = K.slope_units(layers)
        self.slopes = np.empty(CAPACITY * slope_units) if slope_units else None
        self.grads = np.empty(naive.n_params(sizes))
        self.scratch = np.empty(naive.n_params(sizes))
        self.rows = np.empty(CAPACITY, dtype=np.int64)

    def __call__(self, params):
        value = K.loss_and_gradient[None, None, None](
            self.X, self.csr, self.Y, self.sw,
            params, self.layers, self.acts, self.deltas, self.slopes, self.grads, self.scratch, self.rows,
            CAPACITY, self.alpha, self.loss_code, self.loss_scale, np.finfo(np.float64).eps,
            HUBER_DELTA, self.fit_intercepts,
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


def assert_no_kink_in_stencil(sizes, activations, X, Y, params, loss):
    """No pre-activation or residual crosses a kink anywhere in the stencil."""
    base = [d > 0 for d in kinks(sizes, activations, X, Y, params, loss)]
    if not base:
        return
    for k, _, perturbed in stencil_points(params):
        for before, after in zip(base, kinks(sizes, activations, X, Y, perturbed, loss)):
            assert_array_equal(after > 0, before, err_msg=f"kink crossed when moving parameter {k}")


# (weighted, alpha, fit_intercepts)
CASES = [(False, 0.0, True), (True, 0.3, True), (True, 0.1, False)]
CASE_IDS = ["plain", "weighted-alpha", "weighted-alpha-nointercepts"]


@pytest.mark.parametrize("weighted, alpha, fit_intercepts", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("loss, out_activation", PAIRINGS, ids=PAIR_IDS)
def test_gradient_matches_finite_differences(rng, loss, out_activation, hidden, weighted, alpha, fit_intercepts):
    sizes, activations, layers, X, Y, sw, params = make_problem(rng, hidden, loss, out_activation, weighted)
    assert_no_kink_in_stencil(sizes, activations, X, Y, params, loss)
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


# ---------------------------------------------------------------------------
# check_gradients on fastbp's own activations and losses, through the
# kernels compiled for each network's codes
# ---------------------------------------------------------------------------


def worst_error(errors):
    return max(max(layer["coefs"], layer["intercepts"]) for layer in errors)


def network_data(rng, net, n_samples=13):
    """Rows and targets for ``net`` whose kinks (leaky_relu, absolute error, huber) are out of the check's reach.

    Weights are drawn until leaky_relu pre-activations are clear of 0; the
    targets are the outputs minus residuals clear of 0 and of +-huber_delta.
    """
    margin = 0.05  # epsilon=1e-3 moves pre-activations and outputs by less than 0.02
    X = rng.normal(size=(n_samples, net.layer_units[0]))
    for _ in range(200):
        net.init_weights(rng)
        Z, A = net.forward(X)
        if min((np.abs(z).min() for z, name in zip(Z, net.activations) if name in KINKED), default=np.inf) > margin:
            break
    else:
        raise AssertionError("no kink-free weights in 200 draws")
    size = rng.uniform(margin, 1.0, size=A[-1].shape)
    if net.loss == "huber":  # away from delta on either side
        size = np.where(np.abs(size - net.huber_delta) < margin, size + 2 * margin, size)
    return X, A[-1] - size * rng.choice([-1, 1], size=size.shape)


@pytest.mark.parametrize("loss", ["squared_error", "absolute_error", "huber"])
@pytest.mark.parametrize("activation", NEW_HIDDEN + ["tanh"])
def test_check_gradients_of_each_new_activation_and_loss(rng, activation, loss):
    net = Network((4, 6, 5, 2), activation=activation, loss=loss, huber_delta=0.3)
    X, Y = network_data(rng, net)
    assert worst_error(check_gradients(net, X, Y, sample_weight=rng.uniform(0.5, 2, 13), alpha=0.1)) < 1e-6


@pytest.mark.parametrize("loss, out_activation", [("log_loss", "softmax"), ("huber", "logistic")])
def test_check_gradients_with_activations_mixed_per_layer(rng, loss, out_activation):
    net = Network((5, 7, 6, 5, 4, 3), activation=("gelu", "leaky_relu", "silu", "softplus"),
                  out_activation=out_activation, loss=loss, huber_delta=0.2)
    X, Y = network_data(rng, net)
    if loss == "log_loss":
        Y = np.eye(3)[rng.randint(3, size=13)]
    assert worst_error(check_gradients(net, X, Y)) < 1e-6


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("estimator", [
    MLPRegressor(hidden_layer_sizes=(6, 5), activation=("silu", "gelu"), loss="huber", huber_delta=0.5,
                 max_iter=3, random_state=0),
    MLPRegressor(hidden_layer_sizes=(6,), activation=("softplus",), loss="absolute_error", max_iter=3,
                 random_state=0),
    MLPClassifier(hidden_layer_sizes=(6, 5), activation=("gelu", "tanh"), max_iter=3, random_state=0),
], ids=["regressor-huber", "regressor-absolute_error", "classifier"])
def test_check_gradients_of_fitted_estimators_with_new_options(rng, estimator):
    X = rng.normal(size=(30, 4))
    if is_regressor(estimator):
        estimator.fit(X, X[:, 0] - 2 * X[:, 1])
        # targets at residuals clear of the loss's kinks (0, +-huber_delta)
        size = rng.uniform(0.05, 0.4, size=30) + (rng.uniform(size=30) < 0.5) * 0.6
        y = estimator.predict(X) - size * rng.choice([-1, 1], size=30)
    else:
        y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0)
        estimator.fit(X, y)
    assert worst_error(check_gradients(estimator, X, y)) < 1e-6

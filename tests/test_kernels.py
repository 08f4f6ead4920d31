"""Every fastbp kernel against the plain-NumPy reference in ``naive.py``.

Both dtypes, a batch of one row and of all rows, odd layer sizes (7 features,
hidden layers of 5 and 3 units), every activation and every loss pairing,
dense and CSR input. Work buffers start filled with NaN so that a kernel
reading memory it did not write shows up as a NaN in its result. The
reference itself is first checked against scikit-learn, the project's oracle.

The kernels that run a network are compiled per combination of activation
and loss codes; the grids here take the kernels that read every code at run
time (one compile serves them all), and the kernels compiled for each code
are checked to give exactly their bits.
"""

import copy
import math
from decimal import Decimal, localcontext

import numba
import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.neural_network import _base as sk_base
from sklearn.neural_network._stochastic_optimizers import AdamOptimizer, SGDOptimizer

import naive
from fastbp import kernels as K
from fastbp._engine import dropout_threshold
from fastbp._parallel import EpochTeam

DTYPES = [np.float32, np.float64]
RTOL = {np.float32: 1e-5, np.float64: 1e-12}

SKLEARN_HIDDEN = ["identity", "logistic", "tanh", "relu"]
HIDDEN = SKLEARN_HIDDEN + ["leaky_relu", "gelu", "silu", "softplus"]
ELEMENTWISE = ["identity", "logistic", "tanh", "relu", "exp", "leaky_relu", "gelu", "silu", "softplus"]
# Activations whose derivative the forward pass keeps (the backward pass cannot get it from A).
SLOPED = ["gelu", "silu"]
# The four canonical (loss, output activation) pairs of scikit-learn, and
# squared error behind a logistic output (the textbook network; not
# canonical); then absolute error and huber, canonically and behind a
# logistic output.
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
CANONICAL_PAIRINGS = PAIRINGS[:4]
CANONICAL_IDS = PAIR_IDS[:4]
# Huber's threshold in these tests: residuals fall on both sides of it.
HUBER_DELTA = 0.7

N_SAMPLES = 11
N_FEATURES = 7
HIDDEN_SIZES = (5, 3)
EMPTY_ROW = 3  # a row of zeros: an empty row of the CSR matrix

# SGD and Adam settings as the ``hyper`` vector of train_epoch (a larger SGD
# step makes the float32 trajectories of two correct codes drift apart):
# (learning_rate, momentum, nesterov, beta_1, beta_2, epsilon)
SOLVERS = {
    "sgd": ("sgd", [0.03, 0.0, 0.0, 0.9, 0.999, 1e-8]),
    "momentum": ("sgd", [0.03, 0.9, 0.0, 0.9, 0.999, 1e-8]),
    "nesterov": ("sgd", [0.03, 0.9, 1.0, 0.9, 0.999, 1e-8]),
    "adam": ("adam", [0.01, 0.0, 0.0, 0.9, 0.999, 1e-8]),
}


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def assert_close(got, want, dtype, rtol=None):
    """``got`` matches ``want`` to ``rtol`` relative to the scale of ``want``.

    Non-finite entries must match exactly (NaN where NaN, same-signed inf).
    """
    rtol = RTOL[dtype] if rtol is None else rtol
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    finite = np.abs(want[np.isfinite(want)])
    scale = finite.max() if finite.size else 0.0
    assert_allclose(got, want, rtol=rtol, atol=rtol * scale, equal_nan=True)


def n_outputs(out_activation):
    return 3 if out_activation == "softmax" else 2


def make_targets(rng, loss, out_activation, n_rows, n_out):
    if loss in ("squared_error", "absolute_error", "huber") and out_activation == "identity":
        return rng.normal(size=(n_rows, n_out))
    if loss in ("squared_error", "huber"):
        return rng.uniform(size=(n_rows, n_out))
    if loss == "poisson":
        return rng.poisson(1.5, size=(n_rows, n_out)).astype(float)  # has zeros
    if loss == "log_loss":
        return np.eye(n_out)[rng.randint(n_out, size=n_rows)]
    return rng.randint(0, 2, size=(n_rows, n_out)).astype(float)


class Problem:
    """A small network, its data and the kernels' view of it.

    ``codes`` are the compile-time codes its kernels are taken for: the
    network's own (``K.network_codes``), or all None (every activation and
    loss read at run time).
    """

    def __init__(self, rng, dtype, hidden, loss, out_activation, weighted=False, n_samples=N_SAMPLES,
                 hidden_sizes=HIDDEN_SIZES, run_time_codes=False):
        hidden = [hidden] * len(hidden_sizes) if isinstance(hidden, str) else list(hidden)
        self.dtype = dtype
        self.sizes = [N_FEATURES, *hidden_sizes, n_outputs(out_activation)]
        self.activations = hidden + [out_activation]
        self.layers = naive.layer_table(
            self.sizes, [K.ACTIVATION_CODES[a] for a in self.activations]
        )
        self.n_params = naive.n_params(self.sizes)
        self.loss = loss
        self.loss_code = K.LOSS_CODES[loss]
        self.run_time_codes = run_time_codes
        # scikit-learn reports the squared error averaged over outputs
        self.loss_scale = 1.0 / self.sizes[-1] if loss == "squared_error" else 1.0
        self.eps = float(np.finfo(dtype).eps)  # as the estimators pass it
        self.huber_delta = HUBER_DELTA

        X = rng.normal(size=(n_samples, N_FEATURES))
        X[rng.uniform(size=X.shape) < 0.4] = 0.0
        X[EMPTY_ROW % n_samples] = 0.0
        self.X = np.ascontiguousarray(X, dtype=dtype)
        self.Y = np.ascontiguousarray(
            make_targets(rng, loss, out_activation, n_samples, self.sizes[-1]), dtype=dtype
        )
        sw = rng.uniform(0.5, 2.0, size=n_samples) if weighted else np.ones(n_samples)
        self.sample_weight = sw.astype(dtype)
        self.params = rng.uniform(-0.6, 0.6, size=self.n_params).astype(dtype)

    @property
    def codes(self):
        if self.run_time_codes:
            return None, None, None
        return K.network_codes(self.layers, self.loss_code)

    def slopes(self, capacity, n_parts=None):
        """A NaN-filled slopes buffer for ``capacity`` rows (per part), or None when none is kept."""
        units = K.slope_units(self.layers)
        if units == 0:
            return None
        shape = capacity * units if n_parts is None else (n_parts, capacity * units)
        return np.full(shape, np.nan, dtype=self.dtype)

    @property
    def coefs(self):
        return naive.unpack(self.params, self.sizes)[0]

    @property
    def intercepts(self):
        return naive.unpack(self.params, self.sizes)[1]

    def units(self):
        return sum(self.sizes[1:])

    def naive_outputs(self, X=None, params=None):
        params = self.params if params is None else params
        coefs, intercepts = naive.unpack(params, self.sizes)
        return naive.forward(self.X if X is None else X, coefs, intercepts, self.activations)

    def naive_loss_and_gradient(self, alpha, fit_intercepts, sample_weight=None, X=None, Y=None):
        return naive.loss_and_gradient(
            self.X if X is None else X,
            self.Y if Y is None else Y,
            self.sample_weight if sample_weight is None else sample_weight,
            self.params, self.sizes, self.activations, alpha, self.loss,
            self.loss_scale, self.eps, fit_intercepts, self.huber_delta,
        )


def kernel_input(X, sparse):
    """``(X, csr)`` as the kernels take a dense (csr None) or a CSR input (X a dummy)."""
    if sparse:
        matrix = sp.csr_matrix(X)
        return np.empty((0, X.shape[1]), dtype=X.dtype), (
            np.ascontiguousarray(matrix.data, dtype=X.dtype),
            np.ascontiguousarray(matrix.indices, dtype=np.int32),
            np.ascontiguousarray(matrix.indptr, dtype=np.int32),
        )
    return X, None


def nan_buffer(n, dtype):
    return np.full(n, np.nan, dtype=dtype)


def kernel_loss_and_gradient(
    p, capacity, alpha, fit_intercepts, sparse, X=None, Y=None, sample_weight=None, loss_scale=None
):
    X = p.X if X is None else X
    Xk, csr = kernel_input(X, sparse)
    acts = nan_buffer(capacity * p.units(), p.dtype)
    deltas = nan_buffer(capacity * p.units(), p.dtype)
    grads = nan_buffer(p.n_params, p.dtype)
    scratch = nan_buffer(p.n_params, p.dtype)
    rows = np.full(capacity, -1, dtype=np.int64)
    objective = K.loss_and_gradient[p.codes](
        Xk, csr,
        p.Y if Y is None else Y,
        p.sample_weight if sample_weight is None else sample_weight,
        p.params, p.layers, acts, deltas, p.slopes(capacity), grads, scratch, rows, capacity,
        float(alpha), p.loss_code, float(p.loss_scale if loss_scale is None else loss_scale),
        p.eps, p.huber_delta, fit_intercepts,
    )
    return objective, grads


def kernel_predict(p, capacity, sparse, X=None, labels=False):
    """``K.predict``'s outputs; with ``labels``, its labels and the outputs (then logits)."""
    X = p.X if X is None else X
    Xk, csr = kernel_input(X, sparse)
    acts = nan_buffer(capacity * p.units(), p.dtype)
    rows = np.full(capacity, -1, dtype=np.int64)
    out = np.full((X.shape[0], p.sizes[-1]), np.nan, dtype=p.dtype)
    found = np.full(X.shape[0] if labels else 0, -1, dtype=np.int64)
    K.predict[p.codes[:2]](Xk, csr, p.params, p.layers, acts, rows, capacity, out, found, np.zeros(1, dtype=np.int64))
    return (found, out) if labels else out


def solver_state(solver, state_a, state_b):
    """The kernels' ``(velocity, first_moment, second_moment)``: None for the other solver."""
    return (None, state_a, state_b) if solver == "adam" else (state_a, None, None)


def kernel_train_epoch(p, order, batch_size, alpha, fit_intercepts, sparse, solver, hyper, state_a, state_b, t,
                       spare_rows=2, one_row=False, n_parts=1, threads=1,
                       schedule=None, max_grad_norm=None, dropout=None):
    """One epoch of ``K.train_epoch`` (or, with ``one_row``, of ``K.train_epoch_one_row``).

    Each mini-batch is cut into ``n_parts`` parts, computed by one call or
    shared by ``threads`` calls in threads that meet at the kernel's
    barriers (``fastbp._parallel.EpochTeam``). ``schedule`` and
    ``max_grad_norm`` are the kernels' options, ``dropout`` is ``(seed,
    epoch, rates)`` as for ``naive.train_epoch``.
    """
    if one_row:
        assert batch_size == 1 and not sparse
        return K.train_epoch_one_row[p.codes](
            p.X, p.Y, p.sample_weight, order, p.params, p.layers,
            nan_buffer(p.units(), p.dtype), nan_buffer(p.units(), p.dtype), p.slopes(1),
            float(alpha), p.loss_code, float(p.loss_scale), p.eps, p.huber_delta, fit_intercepts,
            np.asarray(hyper, dtype=np.float64), *solver_state(solver, state_a, state_b), t,
            schedule, max_grad_norm,
        )
    Xk, csr = kernel_input(p.X, sparse)
    capacity = -(-batch_size // n_parts) + spare_rows  # buffers may be larger than a part
    acts = np.full((n_parts, capacity * p.units()), np.nan, dtype=p.dtype)
    deltas = np.full_like(acts, np.nan)
    slopes = p.slopes(capacity, n_parts)
    grads = np.full((n_parts, p.n_params), np.nan, dtype=p.dtype)
    Xb = np.full((n_parts, 0 if sparse else capacity, p.sizes[0]), np.nan, dtype=p.dtype)
    Yb = np.full((n_parts, capacity, p.sizes[-1]), np.nan, dtype=p.dtype)
    swb = np.full((n_parts, capacity), np.nan, dtype=p.dtype)
    rows = np.full((n_parts, capacity), -1, dtype=np.int64)
    part_sums = np.full((n_parts, 3 if max_grad_norm is None else 4), np.nan)
    sync = np.full(threads + 2, -1, dtype=np.int64)  # the team zeroes it when threads share the parts
    if dropout is not None:
        seed, epoch, rates = dropout
        dropout = (
            np.full_like(acts, np.nan), np.full_like(acts, np.nan), np.array([seed, epoch], dtype=np.uint64),
            np.array([dropout_threshold(rate) for rate in rates], dtype=np.uint64),
            np.array([1.0 / (1.0 - rate) for rate in rates], dtype=p.dtype),
        )
    team = EpochTeam(threads, sync)

    def epoch(thread, n_threads):
        return K.train_epoch[p.codes](
            Xk, csr, p.Y, p.sample_weight, order, batch_size,
            p.params, p.layers, acts, deltas, slopes, grads, Xb, Yb, swb, rows, part_sums,
            float(alpha), p.loss_code, float(p.loss_scale), p.eps, p.huber_delta, fit_intercepts,
            np.asarray(hyper, dtype=np.float64), *solver_state(solver, state_a, state_b), t,
            schedule, max_grad_norm, dropout, thread, n_threads, team.sync,
        )

    try:
        return team.run(epoch)
    finally:
        team.close()


def batch_rows(rng, n_rows):
    """Row numbers of a batch: one row (not the first) or every row, shuffled."""
    if n_rows == 1:
        return np.array([5], dtype=np.int64)
    return rng.permutation(N_SAMPLES).astype(np.int64)


dtypes = pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
pairings = pytest.mark.parametrize("loss, out_activation", PAIRINGS, ids=PAIR_IDS)
sparse_or_dense = pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
one_or_all_rows = pytest.mark.parametrize("n_rows", [1, N_SAMPLES], ids=["1row", "allrows"])


# --------------------------------------------------------------------------
# The reference agrees with scikit-learn
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["identity", "logistic", "tanh", "relu", "exp", "softmax"])
def test_naive_activations_match_sklearn(rng, name):
    Z = rng.normal(scale=3, size=(6, 4))
    want = Z.copy()
    sk_base.ACTIVATIONS[name](want)
    A = naive.activate(name, Z)
    assert_allclose(A, want, rtol=1e-15)
    if name in sk_base.DERIVATIVES:
        delta = rng.normal(size=Z.shape)
        want_delta = delta.copy()
        sk_base.DERIVATIVES[name](A, want_delta)
        assert_allclose(naive.apply_derivative(name, A, delta), want_delta, rtol=1e-15)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("loss, out_activation", CANONICAL_PAIRINGS, ids=CANONICAL_IDS)
def test_naive_losses_match_sklearn(rng, loss, out_activation, weighted):
    p = Problem(rng, np.float64, "tanh", loss, out_activation, weighted=weighted)
    A = p.naive_outputs()[-1]
    want = sk_base.LOSS_FUNCTIONS[loss](p.Y, A, p.sample_weight if weighted else None)
    got = naive.weighted_loss_sum(loss, A, p.Y, p.sample_weight, p.eps)
    got *= p.loss_scale / p.sample_weight.sum()
    assert_allclose(got, want, rtol=1e-13)


@pytest.mark.parametrize("weighted", [False, True], ids=["plain", "weighted+alpha"])
@pytest.mark.parametrize("hidden", SKLEARN_HIDDEN)
@pytest.mark.parametrize("loss, out_activation", CANONICAL_PAIRINGS, ids=CANONICAL_IDS)
def test_naive_gradient_matches_sklearn_backprop(rng, loss, out_activation, hidden, weighted):
    p = Problem(rng, np.float64, hidden, loss, out_activation, weighted=weighted)
    alpha = 0.3 if weighted else 0.0
    if loss in ("squared_error", "poisson"):
        est = MLPRegressor(hidden_layer_sizes=HIDDEN_SIZES, activation=hidden, alpha=alpha, loss=loss)
    else:
        est = MLPClassifier(hidden_layer_sizes=HIDDEN_SIZES, activation=hidden, alpha=alpha)
    est.n_layers_ = len(p.sizes)
    est.out_activation_ = out_activation
    est.coefs_ = [W.copy() for W in p.coefs]
    est.intercepts_ = [b.copy() for b in p.intercepts]
    n_layers = len(p.sizes) - 1
    want_loss, coef_grads, intercept_grads = est._backprop(
        p.X, p.Y, p.sample_weight if weighted else None,
        [p.X] + [None] * n_layers, [None] * n_layers, [None] * n_layers, [None] * n_layers,
    )
    got_loss, got_grad = p.naive_loss_and_gradient(alpha, True)
    assert_allclose(got_loss, want_loss, rtol=1e-13)
    assert_allclose(got_grad, naive.pack(coef_grads, intercept_grads), rtol=1e-12, atol=1e-15)


@dtypes
@pytest.mark.parametrize("solver", list(SOLVERS))
def test_naive_optimizers_match_sklearn(rng, dtype, solver):
    kind, (lr, momentum, nesterov, beta_1, beta_2, epsilon) = SOLVERS[solver]
    params = rng.normal(size=10).astype(dtype)
    sk_params = [params[:6].reshape(2, 3).copy(), params[6:].copy()]
    if kind == "adam":
        opt = AdamOptimizer(sk_params, lr, beta_1, beta_2, epsilon)
    else:
        opt = SGDOptimizer(sk_params, lr, momentum=momentum, nesterov=bool(nesterov))
    state_a, state_b = np.zeros_like(params), np.zeros_like(params)
    for t in range(1, 4):
        grads = rng.normal(size=10).astype(dtype)
        opt.update_params(sk_params, [grads[:6].reshape(2, 3), grads[6:]])
        if kind == "adam":
            naive.adam_step(params, grads, state_a, state_b, t, lr, beta_1, beta_2, epsilon)
        else:
            naive.sgd_step(params, grads, state_a, lr, momentum, bool(nesterov))
        assert params.dtype == dtype
        assert_array_equal(params, naive.pack(sk_params[:1], sk_params[1:]))


# --------------------------------------------------------------------------
# Activations
# --------------------------------------------------------------------------


@dtypes
@one_or_all_rows
@pytest.mark.parametrize("name", list(K.ACTIVATION_CODES))
def test_add_bias_and_activate(rng, dtype, n_rows, name):
    Z = rng.normal(scale=2, size=(n_rows, 5)).astype(dtype)
    bias = rng.normal(size=5).astype(dtype)
    Z_biased = Z + bias
    want = naive.activate(name, Z_biased)
    slopes = np.full_like(Z, np.nan)
    K.add_bias_and_activate(Z, bias, K.ACTIVATION_CODES[name], slopes)
    assert Z.dtype == dtype
    assert_close(Z, want, dtype)
    if name == "softmax":
        assert_close(Z.sum(axis=1), np.ones(n_rows), dtype)
    if name in SLOPED:  # the derivative kept for the backward pass
        assert_close(slopes, naive.derivative(name, want, Z_biased), dtype)
    else:
        assert np.isnan(slopes).all()
    without_slopes = Z_biased - bias  # the same pre-activations
    K.add_bias_and_activate(without_slopes, bias, K.ACTIVATION_CODES[name])
    assert_array_equal(without_slopes, Z)


@numba.njit
def _tanh_each(x):
    """The kernels' tanh of each item of a float32 or float64 vector."""
    out = np.empty_like(x)
    for k in range(x.shape[0]):
        out[k] = K.activations.tanh_float64(np.float64(x[k]))  # rounded once into a float32 out
    return out


def test_tanh_float32_is_the_correctly_rounded_tanh():
    """Every 997th float32 from -10 to 10: tanh(x) rounded once to float32.

    The reference is NumPy's float64 tanh rounded to float32: tanh(x)
    correctly rounded but where the float64 value falls within an ulp or
    two of a tie (none of these). On every 7th float32 in that range, 312
    million, the kernels matched it on all, glibc 2.36's tanhf on 94.6%
    with errors of up to 2 ulps.
    """
    bits = np.concatenate([
        np.arange(0, 0x41200000, 997, dtype=np.uint32),  # 0 to 10
        np.arange(0x80000000, 0xC1200000, 997, dtype=np.uint32),  # -0 to -10
    ])
    x = bits.view(np.float32)
    ours = _tanh_each(x)
    reference = np.tanh(x.astype(np.float64)).astype(np.float32)
    assert_array_equal(ours, reference)


def test_tanh_float32_limits_signs_and_values_not_finite():
    """NaN kept, +-inf and large values give +-1, zeros and subnormals keep their sign and value."""
    smallest = np.float32(1e-45)
    x = np.array([np.nan, np.inf, -np.inf, 1e30, -1e30, 9.1, 0.0, -0.0, smallest, -smallest, 1e-20],
                 dtype=np.float32)
    ours = _tanh_each(x)
    assert np.isnan(ours[0])
    assert_array_equal(ours[1:6], [1, -1, 1, -1, 1])  # tanh(9.1) = 1 - 2.5e-8 rounds to 1
    assert_array_equal(ours[6:], x[6:])
    assert np.signbit(ours[7]) and np.signbit(ours[9])


def _tanh_to_float64(value):
    """tanh of a float64 in 50-digit decimal arithmetic, rounded once to float64."""
    if abs(value) < 1e-9:
        return float(value)  # tanh(x) = x - x^3 / 3, and x^3 / 3 is below half an ulp of x
    with localcontext() as context:
        context.prec = 50
        e = (2 * Decimal(float(value))).exp()
        return float((e - 1) / (e + 1))


def test_tanh_float64_is_within_two_ulps_and_mostly_correctly_rounded(rng):
    """Random float64 over every range the method treats apart: within 2 ulps of tanh, 0.2 ulp on average.

    On 60,000 such inputs: 81% correctly rounded, 0.19 ulp on average, 2
    ulps at most (glibc 2.36's tanh: 73%, 0.27, 2; NumPy's: 83%, 0.17, 1).
    """
    x = np.concatenate([
        rng.uniform(-1, 1, 1500), rng.uniform(-25, 25, 1500), rng.uniform(0.3, 0.8, 1000),
        10.0 ** rng.uniform(-320, 0, 500) * rng.choice([-1, 1], 500), np.arange(1, 60) * np.log(2) / 64,
    ])
    reference = np.array([_tanh_to_float64(v) for v in x])
    ulps = np.abs(_tanh_each(x) - reference) / np.spacing(np.abs(reference))
    assert ulps.max() <= 2
    assert ulps.mean() <= 0.25


def test_tanh_float64_limits_signs_and_values_not_finite():
    """NaN kept, +-inf and large values give +-1, zeros and subnormals keep their sign and value."""
    x = np.array([np.nan, np.inf, -np.inf, 1e300, -30.0, 0.0, -0.0, 5e-324, -5e-324, 1e-200])
    ours = _tanh_each(x)
    assert np.isnan(ours[0])
    assert_array_equal(ours[1:5], [1, -1, 1, -1])
    assert_array_equal(ours[5:], x[5:])
    assert np.signbit(ours[6]) and np.signbit(ours[8])


@dtypes
@one_or_all_rows
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_multiply_by_derivative(rng, dtype, n_rows, name):
    Z = rng.normal(scale=2, size=(n_rows, 5)).astype(dtype)
    Z[0, :2] = [0, -0]  # relu and leaky_relu take their slope below 0 there, as PyTorch does
    A = naive.activate(name, Z).astype(dtype)
    delta = rng.normal(size=(n_rows, 5)).astype(dtype)
    want = naive.apply_derivative(name, A, delta, Z)
    slopes = None
    if name in SLOPED:  # kept by the forward pass
        slopes = np.empty_like(Z)
        K.add_bias_and_activate(Z.copy(), np.zeros(5, dtype=dtype), K.ACTIVATION_CODES[name], slopes)
    A_before = A.copy()
    K.multiply_by_derivative(A, delta, K.ACTIVATION_CODES[name], slopes)
    assert_close(delta, want, dtype)
    assert_array_equal(A, A_before)


@pytest.mark.parametrize("name", SLOPED)
def test_derivatives_kept_by_the_forward_pass_are_required(name):
    A = np.ones((1, 2))
    with pytest.raises(ValueError, match="slopes kept by their forward pass"):
        K.multiply_by_derivative(A, A.copy(), K.ACTIVATION_CODES[name])


@dtypes
def test_new_activations_by_hand(dtype):
    """Values worked out by hand (or with Python's math module) at a few points, zero included."""
    z = np.array([[-2.0, -0.0, 0.0, 0.5, 3.0]], dtype=dtype)
    erf = np.vectorize(math.erf)
    phi = 0.5 * (1 + erf(z.astype(np.float64) / math.sqrt(2)))
    cases = {
        "leaky_relu": ([-0.02, 0.0, 0.0, 0.5, 3.0], [0.01, 0.01, 0.01, 1.0, 1.0]),
        "gelu": (z * phi, phi + z * np.exp(-z.astype(np.float64) ** 2 / 2) / math.sqrt(2 * math.pi)),
        "silu": (z / (1 + np.exp(-z.astype(np.float64))), None),
        "softplus": ([math.log1p(math.exp(-2)), math.log(2), math.log(2), math.log1p(math.exp(0.5)),
                      3 + math.log1p(math.exp(-3))], 1 / (1 + np.exp(-z.astype(np.float64)))),
    }
    sigmoid = 1 / (1 + np.exp(-z.astype(np.float64)))
    cases["silu"] = (cases["silu"][0], sigmoid * (1 + z * (1 - sigmoid)))
    for name, (value, slope) in cases.items():
        A = z.copy()
        slopes = np.empty_like(z)
        K.add_bias_and_activate(A, np.zeros(5, dtype=dtype), K.ACTIVATION_CODES[name], slopes)
        assert_close(A, np.reshape(value, z.shape), dtype)
        delta = np.ones_like(z)
        K.multiply_by_derivative(A, delta, K.ACTIVATION_CODES[name], slopes if name in SLOPED else None)
        assert_close(delta, np.reshape(slope, z.shape), dtype)


# --------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------


@dtypes
@one_or_all_rows
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pairings
def test_weighted_loss_sum(rng, dtype, n_rows, weighted, loss, out_activation):
    p = Problem(rng, dtype, "tanh", loss, out_activation, weighted=weighted)
    rows = batch_rows(rng, n_rows)
    A = np.ascontiguousarray(p.naive_outputs()[-1][rows])
    Y, sw = np.ascontiguousarray(p.Y[rows]), np.ascontiguousarray(p.sample_weight[rows])
    got = K.weighted_loss_sum(A, Y, sw, p.loss_code, p.eps, HUBER_DELTA)
    want = naive.weighted_loss_sum(loss, A, Y, sw, p.eps, HUBER_DELTA)
    assert want > 0
    assert_close(got, want, dtype)


@dtypes
@pytest.mark.parametrize("loss", ["log_loss", "binary_log_loss"])
def test_log_loss_clips_probabilities(dtype, loss):
    # probabilities of exactly 0 and 1, on both the right and the wrong label
    A = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]], dtype=dtype)
    Y = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=dtype)
    sw = np.array([1.0, 2.0, 0.5], dtype=dtype)
    eps = float(np.finfo(dtype).eps)  # as the estimators pass it
    got = K.weighted_loss_sum(A, Y, sw, K.LOSS_CODES[loss], eps, 1.0)
    want = naive.weighted_loss_sum(loss, A, Y, sw, eps)
    # worked by hand: row 0 pays -log(eps) (twice for binary log-loss),
    # row 1 pays -log(1 - eps) (twice), row 2 pays log 2 (twice)
    n_terms = 2 if loss == "binary_log_loss" else 1
    by_hand = n_terms * (-np.log(float(eps)) - 2 * np.log1p(-float(eps)) + 0.5 * np.log(2))
    assert np.isfinite(got)
    assert_close(want, by_hand, np.float64, rtol=1e-14)
    assert_close(got, want, dtype)


@dtypes
@one_or_all_rows
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pairings
def test_output_delta(rng, dtype, n_rows, weighted, loss, out_activation):
    p = Problem(rng, dtype, "tanh", loss, out_activation, weighted=weighted)
    rows = batch_rows(rng, n_rows)
    A = np.ascontiguousarray(p.naive_outputs()[-1][rows])
    Y, sw = np.ascontiguousarray(p.Y[rows]), np.ascontiguousarray(p.sample_weight[rows])
    delta = np.full_like(A, np.nan)
    K.output_delta(A, Y, sw, K.ACTIVATION_CODES[out_activation], p.loss_code, HUBER_DELTA, delta)
    assert_close(delta, naive.output_delta(loss, out_activation, A, Y, sw, HUBER_DELTA), dtype)


# --------------------------------------------------------------------------
# Network: forward, backward, finalize
# --------------------------------------------------------------------------


def kernel_forward(p, rows, sparse, capacity):
    """Forward pass of ``p.X[rows]``; the dense path takes the gathered rows."""
    Xk, csr = kernel_input(p.X, sparse)
    Xb = Xk if sparse else np.ascontiguousarray(p.X[rows])
    acts = nan_buffer(capacity * p.units(), p.dtype)
    slopes = p.slopes(capacity)
    hidden_code, out_code, _ = p.codes
    output = K.forward(Xb, csr, rows, p.params, p.layers, acts, capacity, slopes, hidden_code, out_code)
    return Xb, csr, acts, slopes, output


@dtypes
@one_or_all_rows
@sparse_or_dense
@pytest.mark.parametrize("out_activation", ["identity", "exp", "softmax", "logistic", "tanh", "relu"])
@pytest.mark.parametrize("hidden", HIDDEN)
def test_forward(rng, dtype, n_rows, sparse, out_activation, hidden):
    p = Problem(rng, dtype, hidden, "squared_error", out_activation)
    rows = batch_rows(rng, n_rows)
    capacity = N_SAMPLES + 2
    _, _, acts, _, output = kernel_forward(p, rows, sparse, capacity)
    want = p.naive_outputs(X=p.X[rows])
    assert output.shape == (n_rows, p.sizes[-1])
    assert_close(output, want[-1], dtype)
    # every layer's activations sit in its block of the flat buffer
    for start, A in zip(naive.block_offsets(p.sizes, capacity), want):
        assert_close(acts[start : start + A.size].reshape(A.shape), A, dtype)


@dtypes
@one_or_all_rows
@sparse_or_dense
@pytest.mark.parametrize("out_activation", ["identity", "exp", "softmax", "logistic"])
@pytest.mark.parametrize("hidden", HIDDEN)
def test_backward(rng, dtype, n_rows, sparse, out_activation, hidden):
    p = Problem(rng, dtype, hidden, "squared_error", out_activation)
    rows = batch_rows(rng, n_rows)
    capacity = N_SAMPLES + 2
    Xb, csr, acts, slopes, _ = kernel_forward(p, rows, sparse, capacity)
    delta_out = rng.normal(size=(n_rows, p.sizes[-1])).astype(dtype)
    deltas = nan_buffer(capacity * p.units(), dtype)
    start = naive.block_offsets(p.sizes, capacity)[-1]
    deltas[start : start + delta_out.size] = delta_out.ravel()
    grads = nan_buffer(p.n_params, dtype)
    K.backward(Xb, csr, rows, p.params, p.layers, acts, deltas, capacity, grads, slopes, p.codes[0])
    X = p.X[rows]
    pre_activations, outputs = naive.forward_z(X, p.coefs, p.intercepts, p.activations)
    dW, db = naive.backward(X, p.coefs, outputs, p.activations, delta_out, pre_activations)
    assert_close(grads, naive.pack(dW, db), dtype)


@dtypes
@pytest.mark.parametrize("alpha", [0.0, 0.25])
@pytest.mark.parametrize("fit_intercepts", [True, False], ids=["intercepts", "no-intercepts"])
def test_finalize_gradient(rng, dtype, alpha, fit_intercepts):
    p = Problem(rng, dtype, "relu", "log_loss", "softmax")
    raw = rng.normal(size=p.n_params).astype(dtype)
    weight_sum = 7.5
    grads = raw.copy()
    K.finalize_gradient(grads, p.params, p.layers, dtype(alpha), dtype(weight_sum), fit_intercepts)
    dW, db = naive.unpack(raw, p.sizes)
    want = naive.finalize(dW, db, p.coefs, alpha, weight_sum, fit_intercepts)
    assert_close(grads, want, dtype)
    if not fit_intercepts:
        assert_array_equal(grads[~naive.coef_mask(p.sizes)], 0)


@dtypes
def test_squared_coef_norm(rng, dtype):
    p = Problem(rng, dtype, "relu", "log_loss", "softmax")
    got = K.squared_coef_norm(p.params, p.layers)
    # intercepts are not penalised
    assert_close(got, np.sum(p.params[naive.coef_mask(p.sizes)].astype(np.float64) ** 2), dtype)
    assert_close(got, naive.squared_coef_norm(p.coefs), dtype)


# --------------------------------------------------------------------------
# Optimizers
# --------------------------------------------------------------------------


@dtypes
@pytest.mark.parametrize("momentum, nesterov", [(0.0, False), (0.9, False), (0.9, True)])
def test_sgd_step(rng, dtype, momentum, nesterov):
    params = rng.normal(size=13).astype(dtype)
    velocity = rng.normal(scale=0.1, size=13).astype(dtype)
    want_params, want_velocity = params.copy(), velocity.copy()
    for _ in range(3):
        grads = rng.normal(size=13).astype(dtype)
        K.sgd_step(params, grads, velocity, dtype(0.05), dtype(momentum), nesterov)
        naive.sgd_step(want_params, grads, want_velocity, 0.05, momentum, nesterov)
        assert_close(params, want_params, dtype)
        assert_close(velocity, want_velocity, dtype)


@dtypes
def test_adam_step(rng, dtype):
    params = rng.normal(size=13).astype(dtype)
    m, v = np.zeros_like(params), np.zeros_like(params)
    want_params, want_m, want_v = params.copy(), m.copy(), v.copy()
    for t in range(1, 5):
        grads = rng.normal(size=13).astype(dtype)
        K.adam_step(params, grads, m, v, t, 0.01, 0.9, 0.999, 1e-8)
        naive.adam_step(want_params, grads, want_m, want_v, t, 0.01, 0.9, 0.999, 1e-8)
        assert_close(m, want_m, dtype)
        assert_close(v, want_v, dtype)
        assert_close(params, want_params, dtype)


@dtypes
@pytest.mark.parametrize("nesterov", [False, True], ids=["momentum", "nesterov"])
def test_sgd_step_by_hand(dtype, nesterov):
    params = np.array([1.0, -2.0, 0.5], dtype=dtype)
    grads = np.array([0.5, 1.0, -2.0], dtype=dtype)
    velocity = np.array([0.1, 0.0, -0.2], dtype=dtype)
    K.sgd_step(params, grads, velocity, dtype(0.1), dtype(0.9), nesterov)
    # v = 0.9 v - 0.1 g = [0.09 - 0.05, 0 - 0.1, -0.18 + 0.2]
    assert_close(velocity, [0.04, -0.1, 0.02], dtype)
    if nesterov:
        # update = 0.9 v - 0.1 g = [0.036 - 0.05, -0.09 - 0.1, 0.018 + 0.2]
        assert_close(params, [0.986, -2.19, 0.718], dtype)
    else:
        assert_close(params, [1.04, -2.1, 0.52], dtype)


@dtypes
def test_adam_step_by_hand(dtype):
    g1 = np.array([0.5, 1.0, -2.0], dtype=dtype)
    g2 = np.array([1.0, -1.0, 2.0], dtype=dtype)
    params = np.array([1.0, -2.0, 0.5], dtype=dtype)
    m, v = np.zeros(3, dtype=dtype), np.zeros(3, dtype=dtype)
    # beta_1 = 0.5, beta_2 = 0.75, epsilon = 0: step 1 has m = g/2, v = g^2/4,
    # lr_t = 0.1 sqrt(1 - 0.75) / (1 - 0.5) = 0.1, so each weight moves 0.1 against g
    K.adam_step(params, g1, m, v, 1, 0.1, 0.5, 0.75, 0.0)
    assert_close(m, [0.25, 0.5, -1.0], dtype)
    assert_close(v, [0.0625, 0.25, 1.0], dtype)
    assert_close(params, [0.9, -2.1, 0.6], dtype)
    # step 2: m = g1/4 + g2/2 = [0.625, -0.25, 0.5];
    # v = 3/16 g1^2 + g2^2/4 = [0.296875, 0.4375, 1.75];
    # lr_t = 0.1 sqrt(1 - 0.5625) / (1 - 0.25)
    K.adam_step(params, g2, m, v, 2, 0.1, 0.5, 0.75, 0.0)
    assert_close(m, [0.625, -0.25, 0.5], dtype)
    assert_close(v, [0.296875, 0.4375, 1.75], dtype)
    lr_t = 0.1 * np.sqrt(0.4375) / 0.75
    step = lr_t * np.array([0.625, -0.25, 0.5]) / np.sqrt([0.296875, 0.4375, 1.75])
    assert_close(params, np.array([0.9, -2.1, 0.6]) - step, dtype)
    # epsilon: a fresh step 1 with epsilon = 0.5 moves 0.1 g / (|g| + 1)
    params = np.zeros(3, dtype=dtype)
    m, v = np.zeros(3, dtype=dtype), np.zeros(3, dtype=dtype)
    K.adam_step(params, g1, m, v, 1, 0.1, 0.5, 0.75, 0.5)
    assert_close(params, [-0.05 / 1.5, -0.1 / 2.0, 0.2 / 3.0], dtype)


# --------------------------------------------------------------------------
# Drivers: loss_and_gradient, predict, train_epoch
# --------------------------------------------------------------------------

# (capacity, weighted, alpha, fit_intercepts): one chunk, uneven chunks
# (11 = 4 + 4 + 3) and chunks of one row
LG_CASES = [
    (N_SAMPLES, False, 0.0, True),
    (4, True, 0.1, True),
    (1, True, 0.3, False),
]
LG_IDS = ["cap11-plain", "cap4-weighted-alpha", "cap1-weighted-alpha-nointercepts"]


@dtypes
@sparse_or_dense
@pytest.mark.parametrize("capacity, weighted, alpha, fit_intercepts", LG_CASES, ids=LG_IDS)
@pytest.mark.parametrize("hidden", HIDDEN)
@pairings
def test_loss_and_gradient(rng, dtype, sparse, capacity, weighted, alpha, fit_intercepts, hidden, loss, out_activation):
    p = Problem(rng, dtype, hidden, loss, out_activation, weighted=weighted, run_time_codes=True)
    if weighted:
        p.sample_weight[1] = 0  # a zero weight is allowed
    params_before = p.params.copy()
    got_objective, got_grad = kernel_loss_and_gradient(p, capacity, alpha, fit_intercepts, sparse)
    want_objective, want_grad = p.naive_loss_and_gradient(alpha, fit_intercepts)
    assert got_grad.dtype == dtype
    assert_close(got_objective, want_objective, dtype)
    assert_close(got_grad, want_grad, dtype)
    assert_array_equal(p.params, params_before)
    if not fit_intercepts:
        assert_array_equal(got_grad[~naive.coef_mask(p.sizes)], 0)


@dtypes
@pytest.mark.parametrize("capacity", [1, 4, N_SAMPLES])
def test_loss_and_gradient_does_not_depend_on_capacity(rng, dtype, capacity):
    p = Problem(rng, dtype, "tanh", "log_loss", "softmax", weighted=True)
    objective, grad = kernel_loss_and_gradient(p, capacity, 0.1, True, False)
    whole_objective, whole_grad = kernel_loss_and_gradient(p, N_SAMPLES, 0.1, True, False)
    assert_close(objective, whole_objective, dtype)
    assert_close(grad, whole_grad, dtype)


@dtypes
def test_loss_scale_scales_only_the_data_term(rng, dtype):
    p = Problem(rng, dtype, "tanh", "squared_error", "identity")
    alpha = 0.2
    objective_1, grad_1 = kernel_loss_and_gradient(p, N_SAMPLES, alpha, True, False, loss_scale=1.0)
    objective_half, grad_half = kernel_loss_and_gradient(p, N_SAMPLES, alpha, True, False, loss_scale=0.5)
    penalty = 0.5 * alpha * naive.squared_coef_norm(p.coefs) / N_SAMPLES
    assert penalty > 0
    assert_close(objective_half - penalty, 0.5 * (objective_1 - penalty), dtype)
    assert_array_equal(grad_half, grad_1)


@dtypes
@sparse_or_dense
@pytest.mark.parametrize("capacity", [1, 4, N_SAMPLES + 3])
@pairings
def test_predict(rng, dtype, sparse, capacity, loss, out_activation):
    p = Problem(rng, dtype, ["relu", "logistic"], loss, out_activation, run_time_codes=True)
    out = kernel_predict(p, capacity, sparse)
    assert_close(out, p.naive_outputs()[-1], dtype)


@dtypes
@sparse_or_dense
@pytest.mark.parametrize("capacity", [1, 4, N_SAMPLES + 3])
def test_predict_labels_are_the_first_largest_softmax_outputs(rng, dtype, sparse, capacity):
    p = Problem(rng, dtype, ["relu", "tanh"], "log_loss", "softmax")
    labels, logits = kernel_predict(p, capacity, sparse, labels=True)
    softmax = kernel_predict(p, capacity, sparse)
    assert_array_equal(labels, softmax.argmax(axis=1))
    assert_close(logits, p.naive_outputs()[-2] @ p.coefs[-1] + p.intercepts[-1], dtype)


@dtypes
def test_predict_labels_at_near_ties_and_values_not_finite(rng, dtype):
    """Labels are ``np.argmax`` of the kernel's own softmax rows, where the logits' argmax is not.

    One input, one softmax layer: the logits of row x are ``x * W + b``.
    Four outputs within a few units in the last place of each other, where
    rounding can make softmax outputs equal (the first then wins), and
    inputs that make logits infinite (one alone, or several) or NaN
    (``inf * 0``), where the softmax row is NaN and ``np.argmax`` takes its
    first entry.
    """
    tiny = np.finfo(dtype).eps / 4
    p = Problem(rng, dtype, [], "log_loss", "softmax", hidden_sizes=())
    n_outputs = 6
    p.sizes = [1, n_outputs]
    p.layers = naive.layer_table(p.sizes, [K.ACTIVATION_CODES["softmax"]])
    weights = np.zeros(n_outputs)
    weights[:5] = [1, 1, 1, 1, 2]  # the largest input makes the fifth logit alone infinite
    bias = np.full(n_outputs, -5.0)
    bias[:4] = [0, tiny, -tiny, 2 * tiny]
    p.params = np.concatenate([weights, bias]).astype(dtype)
    special = [np.nan, np.inf, -np.inf, np.finfo(dtype).max, -np.finfo(dtype).max, 0]
    X = np.concatenate([rng.uniform(-2, 2, size=3000), special]).astype(dtype)[:, None]
    labels, logits = kernel_predict(p, 64, False, X=X, labels=True)
    expected = kernel_predict(p, 64, False, X=X).argmax(axis=1)
    assert_array_equal(labels, expected)
    # the cases that need the softmax occur: near ties rounded to equal outputs, NaN rows
    differ = logits.argmax(axis=1) != expected
    assert differ[:3000].any() and differ[3000:].any()


# (batch_size, weighted, alpha, fit_intercepts, subset): one row per batch,
# uneven batches over a subset of rows (as after a validation split), one batch
EPOCH_CASES = [
    (1, False, 0.0, True, False),
    (4, True, 0.1, False, True),
    (N_SAMPLES, True, 0.3, True, False),
]
EPOCH_IDS = ["batch1-plain", "batch4-weighted-alpha-nointercepts-subset", "batch11-weighted-alpha"]


# the parts of each mini-batch: one; two computed by one call; two computed by
# two threads; three shared by two threads and four by three (with a batch of
# one row, all parts but one are empty)
PARTS = [(1, 1), (2, 1), (2, 2), (3, 2), (4, 3)]
PART_IDS = ["one-part", "two-parts", "two-threads", "three-parts-two-threads", "four-parts-three-threads"]


@dtypes
@sparse_or_dense
@pytest.mark.parametrize("batch_size, weighted, alpha, fit_intercepts, subset", EPOCH_CASES, ids=EPOCH_IDS)
@pytest.mark.parametrize("solver", list(SOLVERS))
@pytest.mark.parametrize("n_parts, threads", PARTS, ids=PART_IDS)
@pairings
def test_train_epoch(
    rng, dtype, sparse, batch_size, weighted, alpha, fit_intercepts, subset, solver, n_parts, threads,
    loss, out_activation,
):
    p = Problem(rng, dtype, ["tanh", "gelu"], loss, out_activation, weighted=weighted, run_time_codes=True)
    check_two_epochs(
        rng, p, batch_size, alpha, fit_intercepts, subset, solver, sparse=sparse, n_parts=n_parts, threads=threads
    )


# hidden layers narrower and wider than kernels.training.NARROW_LAYER: the
# one-row kernel orders its loops differently for the two
@dtypes
@pytest.mark.parametrize(
    "hidden, hidden_sizes, weighted, alpha, fit_intercepts, subset",
    [
        (["tanh", "relu"], HIDDEN_SIZES, False, 0.0, True, False),
        (["logistic", "identity"], (9, 12), True, 0.3, False, True),
        (["silu", "softplus"], HIDDEN_SIZES, True, 0.1, True, False),
        (["leaky_relu", "gelu"], (9, 12), False, 0.0, True, True),
    ],
    ids=[
        "narrow-tanh-relu-plain", "wide-logistic-identity-weighted-alpha-nointercepts-subset",
        "narrow-silu-softplus-weighted-alpha", "wide-leaky_relu-gelu-subset",
    ],
)
@pytest.mark.parametrize("solver", list(SOLVERS))
@pairings
def test_train_epoch_one_row(
    rng, dtype, hidden, hidden_sizes, weighted, alpha, fit_intercepts, subset, solver, loss, out_activation
):
    assert min(hidden_sizes) >= K.training.NARROW_LAYER or max(hidden_sizes) < K.training.NARROW_LAYER
    p = Problem(rng, dtype, hidden, loss, out_activation, weighted=weighted, hidden_sizes=hidden_sizes,
                run_time_codes=True)
    check_two_epochs(rng, p, 1, alpha, fit_intercepts, subset, solver, one_row=True)


def check_two_epochs(
    rng, p, batch_size, alpha, fit_intercepts, subset, solver, sparse=False, one_row=False, n_parts=1, threads=1
):
    """Two epochs of a kernel against the NumPy reference: loss, parameters and optimizer state."""
    dtype = p.dtype
    kind, hyper = SOLVERS[solver]
    params = p.params.copy()  # the reference's copy
    state_a, state_b = np.zeros_like(params), np.zeros_like(params)
    want_a, want_b = np.zeros_like(params), np.zeros_like(params)
    t = np.zeros(1, dtype=np.int64)
    want_t = 0
    initial = p.params.copy()
    intercepts_before = p.params[~naive.coef_mask(p.sizes)].copy()
    for _ in range(2):  # the optimizer state carries over between epochs
        order = rng.permutation(N_SAMPLES)[: N_SAMPLES - 2 if subset else N_SAMPLES].astype(np.int64)
        want_loss, want_t = naive.train_epoch(
            p.X, p.Y, p.sample_weight, order, batch_size, params, p.sizes, p.activations,
            alpha, p.loss, p.loss_scale, p.eps, fit_intercepts, kind, hyper, want_a, want_b, want_t,
            p.huber_delta,
        )
        got_loss = kernel_train_epoch(
            p, order, batch_size, alpha, fit_intercepts, sparse, kind, hyper, state_a, state_b, t,
            one_row=one_row, n_parts=n_parts, threads=threads,
        )
        assert np.isfinite(want_loss)
        assert_close(got_loss, want_loss, dtype)
        assert_close(p.params, params, dtype)
        assert_close(state_a, want_a, dtype)
        if kind == "adam":
            assert_close(state_b, want_b, dtype)
        assert t[0] == want_t
    coefs = naive.coef_mask(p.sizes)
    assert np.abs(p.params[coefs] - initial[coefs]).max() > 1e-3  # training did move
    if not fit_intercepts:
        assert_array_equal(p.params[~naive.coef_mask(p.sizes)], intercepts_before)


@dtypes
def test_train_epoch_loss_sum_adds_batch_objectives_times_lengths(rng, dtype):
    # lr = 0 freezes the weights; with unit weights each batch objective is
    # (its data loss + alpha/2 ||W||^2) / its length, so the epoch's loss sum
    # is the total data loss plus one penalty per batch (3 batches: 4, 4, 3)
    p = Problem(rng, dtype, "tanh", "log_loss", "softmax")
    alpha = 0.2
    order = np.arange(N_SAMPLES, dtype=np.int64)
    hyper = [0.0, 0.9, 1.0, 0.9, 0.999, 1e-8]
    state = np.zeros_like(p.params)
    t = np.zeros(1, dtype=np.int64)
    before = p.params.copy()
    loss_sum = kernel_train_epoch(p, order, 4, alpha, True, False, "sgd", hyper, state, state.copy(), t)
    data_loss = naive.weighted_loss_sum(p.loss, p.naive_outputs()[-1], p.Y, p.sample_weight, p.eps)
    penalty = 0.5 * alpha * naive.squared_coef_norm(p.coefs)
    assert_array_equal(p.params, before)
    assert_close(loss_sum, data_loss + 3 * penalty, dtype)


# --------------------------------------------------------------------------
# Kernels compiled for a network's codes: the bits of the run-time kernels
# --------------------------------------------------------------------------

# Every hidden activation with scikit-learn's classifier output, every
# (loss, output) pairing behind relu, and hidden layers that differ.
CODED_CASES = (
    [(hidden, "log_loss", "softmax") for hidden in HIDDEN]
    + [("relu", loss, out_activation) for loss, out_activation in PAIRINGS]
    + [(["gelu", "tanh"], "huber", "identity")]
)
CODED_IDS = [f"{hidden}-{loss}+{out}" for hidden, loss, out in CODED_CASES]


def run_time_twin(p):
    """``p`` with the same network and data, its kernels reading every code at run time."""
    twin = copy.copy(p)
    twin.run_time_codes = True
    twin.params = p.params.copy()
    return twin


@sparse_or_dense
@pytest.mark.parametrize("hidden, loss, out_activation", CODED_CASES, ids=CODED_IDS)
def test_compiled_codes_give_the_bits_of_the_run_time_kernels(rng, sparse, hidden, loss, out_activation):
    p = Problem(rng, np.float64, hidden, loss, out_activation, weighted=True)
    assert p.codes[1:] == (K.ACTIVATION_CODES[out_activation], K.LOSS_CODES[loss])
    twin = run_time_twin(p)
    got = kernel_loss_and_gradient(p, 4, 0.1, True, sparse)
    want = kernel_loss_and_gradient(twin, 4, 0.1, True, sparse)
    assert_array_equal(got[0], want[0])
    assert_array_equal(got[1], want[1])
    assert_array_equal(kernel_predict(p, 4, sparse), kernel_predict(twin, 4, sparse))
    if out_activation == "softmax":
        for got, want in zip(kernel_predict(p, 4, sparse, labels=True), kernel_predict(twin, 4, sparse, labels=True)):
            assert_array_equal(got, want)


@pytest.mark.parametrize("one_row", [False, True], ids=["batches", "one-row"])
@pytest.mark.parametrize(
    "hidden, loss, out_activation",
    [("relu", "log_loss", "softmax"), ("gelu", "huber", "identity"), (["silu", "tanh"], "absolute_error", "identity")],
    ids=["relu-log_loss+softmax", "gelu-huber+identity", "silu,tanh-absolute_error+identity"],
)
def test_compiled_codes_give_the_bits_of_the_run_time_epochs(rng, one_row, hidden, loss, out_activation):
    p = Problem(rng, np.float64, hidden, loss, out_activation, weighted=True)
    twin = run_time_twin(p)
    initial = p.params.copy()
    kind, hyper = SOLVERS["adam" if one_row else "nesterov"]
    states = []
    for problem in (p, twin):
        state_a, state_b, t = np.zeros_like(p.params), np.zeros_like(p.params), np.zeros(1, dtype=np.int64)
        order = np.random.RandomState(1).permutation(N_SAMPLES).astype(np.int64)
        batch_size = 1 if one_row else 5
        loss_sum = kernel_train_epoch(
            problem, order, batch_size, 0.1, True, False, kind, hyper, state_a, state_b, t,
            one_row=one_row, n_parts=1 if one_row else 2,
        )
        states.append((loss_sum, problem.params, state_a, state_b, t))
    for got, want in zip(*states):
        assert_array_equal(got, want)
    assert np.abs(p.params - initial).max() > 1e-3  # training did move


# --------------------------------------------------------------------------
# Losses of fastbp's own: worked by hand
# --------------------------------------------------------------------------


@dtypes
def test_absolute_error_by_hand(dtype):
    """Mean over outputs of |a - y|; the error sign(a - y) s / n_outputs, 0 where a == y."""
    A = np.array([[1.0, 2.0], [0.5, -1.0]], dtype=dtype)
    Y = np.array([[0.0, 2.0], [1.5, -3.0]], dtype=dtype)
    sw = np.array([2.0, 0.5], dtype=dtype)
    code = K.LOSS_CODES["absolute_error"]
    assert K.weighted_loss_sum(A, Y, sw, code, 0.0, 1.0) == 2.0 * (1 + 0) / 2 + 0.5 * (1 + 2) / 2
    delta = np.full_like(A, np.nan)
    K.output_delta(A, Y, sw, K.ACTIVATION_CODES["identity"], code, 1.0, delta)
    assert_array_equal(delta, np.array([[1.0, 0.0], [-0.25, 0.25]], dtype=dtype))


@dtypes
def test_huber_by_hand(dtype):
    """r^2 / 2 below delta, delta (|r| - delta / 2) from it on; the error is r clipped to +-delta."""
    delta_ = 1.5
    A = np.array([[0.0, 0.0, 0.0, 0.0]], dtype=dtype)
    Y = np.array([[1.0, -1.5, 3.0, -4.5]], dtype=dtype)  # residuals -1, 1.5 (= delta), -3, 4.5
    sw = np.array([2.0], dtype=dtype)
    code = K.LOSS_CODES["huber"]
    per_element = [0.5, 1.5 * (1.5 - 0.75), 1.5 * (3 - 0.75), 1.5 * (4.5 - 0.75)]
    assert_close(K.weighted_loss_sum(A, Y, sw, code, 0.0, delta_), 2.0 * sum(per_element) / 4, dtype)
    delta = np.full_like(A, np.nan)
    K.output_delta(A, Y, sw, K.ACTIVATION_CODES["identity"], code, delta_, delta)
    assert_array_equal(delta, np.array([[-1.0, 1.5, -1.5, 1.5]], dtype=dtype) * dtype(2.0 / 4))


@dtypes
def test_huber_with_a_delta_beyond_every_residual_is_squared_error_for_one_output(rng, dtype):
    """Exactly: the same loss sum and output error, bit for bit."""
    A = rng.normal(size=(9, 1)).astype(dtype)
    Y = rng.normal(size=(9, 1)).astype(dtype)
    sw = rng.uniform(0.5, 2, size=9).astype(dtype)
    huber, squared = K.LOSS_CODES["huber"], K.LOSS_CODES["squared_error"]
    identity = K.ACTIVATION_CODES["identity"]
    assert K.weighted_loss_sum(A, Y, sw, huber, 0.0, 1e300) == K.weighted_loss_sum(A, Y, sw, squared, 0.0, 1.0)
    delta_huber, delta_squared = np.empty_like(A), np.empty_like(A)
    K.output_delta(A, Y, sw, identity, huber, 1e300, delta_huber)
    K.output_delta(A, Y, sw, identity, squared, 1.0, delta_squared)
    assert_array_equal(delta_huber, delta_squared)


# --------------------------------------------------------------------------
# Non-finite values propagate; kernels never raise
# --------------------------------------------------------------------------


# relu must keep NaN as scikit-learn's np.maximum(Z, 0) does: a NaN input, or
# an inf input that turns into inf - inf = NaN one layer further, must not
# vanish behind a relu layer (a bug these tests caught once).


@dtypes
@pytest.mark.parametrize("name", list(K.ACTIVATION_CODES))
def test_activations_propagate_non_finite(dtype, name):
    Z = np.array([[np.nan, 0.5, -1.0], [np.inf, 0.5, -1.0], [-np.inf, 0.5, -1.0], [1.0, 2.0, 3.0]], dtype=dtype)
    bias = np.array([0.1, -0.2, 0.3], dtype=dtype)
    want = naive.activate(name, Z + bias)
    K.add_bias_and_activate(Z, bias, K.ACTIVATION_CODES[name])
    assert_close(Z, want, dtype)
    assert np.isnan(Z[0, 0]) and (name != "softmax" or np.isnan(Z[0]).all())


@dtypes
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_derivatives_propagate_non_finite(dtype, name):
    Z = np.array([[np.nan, 0.5, -1.0, 2.0]], dtype=dtype)
    A = naive.activate(name, Z).astype(dtype)
    delta = np.array([[1.0, np.nan, np.inf, 0.5]], dtype=dtype)
    want = naive.apply_derivative(name, A, delta, Z)
    slopes = None
    if name in SLOPED:
        slopes = np.empty_like(Z)
        K.add_bias_and_activate(Z.copy(), np.zeros(4, dtype=dtype), K.ACTIVATION_CODES[name], slopes)
    K.multiply_by_derivative(A, delta, K.ACTIVATION_CODES[name], slopes)
    assert_close(delta, want, dtype)
    assert np.isnan(delta[0, 1])


@dtypes
@pairings
def test_losses_propagate_nan(dtype, loss, out_activation):
    A = np.array([[0.3, np.nan], [0.4, 0.6]], dtype=dtype)
    Y = np.array([[0.0, 1.0], [1.0, 0.0]], dtype=dtype)
    sw = np.ones(2, dtype=dtype)
    code = K.LOSS_CODES[loss]
    assert np.isnan(K.weighted_loss_sum(A, Y, sw, code, np.finfo(dtype).eps, HUBER_DELTA))
    assert np.isnan(naive.weighted_loss_sum(loss, A, Y, sw, np.finfo(dtype).eps, HUBER_DELTA))
    delta = np.zeros_like(A)
    K.output_delta(A, Y, sw, K.ACTIVATION_CODES[out_activation], code, HUBER_DELTA, delta)
    assert np.isnan(delta[0, 1]) and np.isfinite(delta[1]).all()


@dtypes
@sparse_or_dense
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize(
    "loss, out_activation", [PAIRINGS[0], PAIRINGS[2]], ids=[PAIR_IDS[0], PAIR_IDS[2]]
)
def test_non_finite_input_propagates(rng, dtype, sparse, bad, hidden, loss, out_activation):
    p = Problem(rng, dtype, hidden, loss, out_activation, run_time_codes=True)
    X = p.X.copy()
    X[2, 1] = bad
    out = kernel_predict(p, 4, sparse, X=X)
    # a CSR product skips stored zeros, so 0 * NaN never happens there
    X_ref = sp.csr_matrix(X) if sparse else X
    want = p.naive_outputs(X=X_ref)[-1]
    assert_close(out, want, dtype)
    assert np.isfinite(np.delete(out, 2, axis=0)).all()
    if np.isnan(bad):
        assert np.isnan(out[2]).all()
    objective, grad = kernel_loss_and_gradient(p, 4, 0.1, True, sparse, X=X)
    want_objective, want_grad = p.naive_loss_and_gradient(0.1, True, X=X_ref)
    assert_close(objective, want_objective, dtype)
    assert_close(grad, want_grad, dtype)
    if np.isnan(bad):
        assert np.isnan(objective)


@dtypes
def test_nan_target_or_weight_propagates(rng, dtype):
    p = Problem(rng, dtype, "tanh", "squared_error", "identity")
    Y = p.Y.copy()
    Y[4, 0] = np.nan
    objective, grad = kernel_loss_and_gradient(p, 4, 0.0, True, False, Y=Y)
    assert np.isnan(objective) and np.isnan(grad).any()
    want_objective, want_grad = p.naive_loss_and_gradient(0.0, True, Y=Y)
    assert_close(grad, want_grad, dtype)
    sw = p.sample_weight.copy()
    sw[6] = np.nan
    objective, grad = kernel_loss_and_gradient(p, 4, 0.0, True, False, sample_weight=sw)
    assert np.isnan(objective) and np.isnan(grad).all()


@dtypes
def test_zero_weight_sum_gives_nan_without_raising(rng, dtype):
    p = Problem(rng, dtype, "tanh", "log_loss", "softmax")
    zeros = np.zeros(N_SAMPLES, dtype=dtype)
    objective, grad = kernel_loss_and_gradient(p, 4, 0.0, True, False, sample_weight=zeros)
    assert np.isnan(objective)  # 0 / 0
    assert np.isnan(grad).all()


@dtypes
@pytest.mark.parametrize("solver", ["momentum", "adam"])
def test_train_epoch_with_non_finite_params_does_not_raise(rng, dtype, solver):
    p = Problem(rng, dtype, "tanh", "poisson", "exp")
    p.params[0] = np.nan
    p.params[-1] = 1e4  # exp overflows to inf
    kind, hyper = SOLVERS[solver]
    state_a, state_b = np.zeros_like(p.params), np.zeros_like(p.params)
    t = np.zeros(1, dtype=np.int64)
    order = np.arange(N_SAMPLES, dtype=np.int64)
    loss_sum = kernel_train_epoch(p, order, 4, 0.1, True, False, kind, hyper, state_a, state_b, t)
    assert not np.isfinite(loss_sum)
    assert np.isnan(p.params).any()


# --------------------------------------------------------------------------
# The 2-D view helper
# --------------------------------------------------------------------------


@dtypes
def test_matrix_view_is_a_c_ordered_view_and_checks_its_size(dtype):
    from fastbp.kernels._arrays import matrix_view

    view = numba.njit(lambda flat, n_rows, n_cols: matrix_view(flat, n_rows, n_cols))
    flat = np.arange(12, dtype=dtype)
    got = view(flat[3:9], 2, 3)
    assert_array_equal(got, flat[3:9].reshape(2, 3))
    assert got.flags.c_contiguous and np.shares_memory(got, flat)
    got[1, 2] = -1  # a view: writes reach the buffer
    assert flat[8] == -1
    assert view(flat[:0], 0, 5).shape == (0, 5)
    for n_rows, n_cols in [(4, 2), (1, 5), (-2, -3)]:
        with pytest.raises(ValueError, match="n_rows \\* n_cols"):
            view(flat[3:9], n_rows, n_cols)


def test_internal_helpers_called_from_python_run_a_twin_with_the_same_results():
    from fastbp.kernels._jit import _InternalDispatcher, _LinkedOnlyLibrary

    helper = K.network.squared_sum
    assert isinstance(helper, _InternalDispatcher)
    values = np.arange(4.0)
    inside_a_kernel = numba.njit(lambda values: helper(values, 3))(values)
    assert inside_a_kernel == helper(values, 3) == 5.0
    twin = helper._python_twin
    assert twin is not None and not isinstance(twin, _InternalDispatcher)
    assert helper(values, 4) == 14.0 and helper._python_twin is twin  # compiled once
    # kernels link the helper's LLVM IR: it has no machine code of its own
    compiled = list(helper.overloads.values())
    assert compiled and all(isinstance(c.library, _LinkedOnlyLibrary) for c in compiled)
    with pytest.raises(TypeError, match="not enough arguments"):
        helper(values)


@numba.njit
def _numba_np_dot(a, b, out):
    np.dot(a, b, out)


@numba.njit
def _matmul_into(a, b, out):
    K._blas.matmul_into(a, b, out)


@dtypes
@pytest.mark.parametrize("m, k, n", [(1, 1, 1), (1, 7, 1), (6, 7, 1), (1, 7, 5), (6, 7, 5), (0, 7, 5), (6, 0, 5)])
def test_matmul_into_makes_numbas_np_dot_calls(rng, dtype, m, k, n):
    """Every layout the kernels use (``A @ W``, ``A.T @ delta``, ``delta @ W.T``), vectors and empty sizes."""
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    for left, right in [(a, b), (np.ascontiguousarray(a.T).T, b), (a, np.ascontiguousarray(b.T).T)]:
        got = np.full((m, n), np.nan, dtype=dtype)
        _matmul_into(left, right, got)
        expected = np.full((m, n), np.nan, dtype=dtype)
        _numba_np_dot(left, right, expected)
        assert_array_equal(got, expected)
        assert_close(got, a.astype(np.float64) @ b.astype(np.float64), dtype)


def test_matmul_into_rejects_mismatched_shapes():
    a, b = np.ones((3, 4)), np.ones((4, 2))
    for left, right, out in [(a, np.ones((5, 2)), np.empty((3, 2))), (a, b, np.empty((3, 3))), (a, b, np.empty((2, 2)))]:
        with pytest.raises(ValueError, match="incompatible array shapes"):
            _matmul_into(left, right, out)

"""Property-based tests (hypothesis): kernels against the NumPy reference, estimator invariants.

Hypothesis draws the shapes (1 to 40 rows, 1 to 8 features, one or two
hidden layers of 1 to 9 units), the dtype, the mini-batch size (1 to n), the
hidden activations and the (loss, output activation) pairing, dense or CSR
input, and the data. Kernels are called exactly as ``test_kernels.py`` calls
them (work buffers filled with NaN, int32 CSR indices, int64 row numbers,
C-contiguous arrays), so no new Numba specialisation is compiled, and their
results are compared with ``naive.py``. Estimators are checked for
invariants that hold for any data: probabilities sum to one, predictions have
the right shape and labels, partial_fit continues a fit.

Examples are derandomized so CI is stable; set FASTBP_HYPOTHESIS=explore to
draw ten times as many, fresh each run.
"""

import os
import warnings

import numpy as np
from hypothesis import HealthCheck, assume, given, reject, settings
from hypothesis import strategies as st
from numpy.testing import assert_array_equal

import naive
from fastbp import MLPClassifier, MLPRegressor
from fastbp import kernels as K
from test_kernels import (
    HIDDEN,
    HUBER_DELTA,
    PAIRINGS,
    RTOL,
    SOLVERS,
    Problem,
    assert_close,
    kernel_forward,
    kernel_loss_and_gradient,
    kernel_predict,
    kernel_train_epoch,
    make_targets,
)

EXPLORE = os.environ.get("FASTBP_HYPOTHESIS") == "explore"


def examples(n):
    """Settings for a property: ``n`` examples (ten times more when exploring)."""
    return settings(
        max_examples=n * 10 if EXPLORE else n,
        deadline=None,
        database=None,
        derandomize=not EXPLORE,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


# --------------------------------------------------------------------------
# Drawn problems
# --------------------------------------------------------------------------


class DrawnProblem(Problem):
    """A :class:`test_kernels.Problem` of drawn shapes (its methods work on any sizes)."""

    def __init__(self, seed, dtype, n_samples, n_features, hidden_sizes, hidden_activations,
                 loss, out_activation, n_out, weighted):
        rng = np.random.RandomState(seed)
        self.dtype = dtype
        self.sizes = [n_features, *hidden_sizes, n_out]
        self.activations = list(hidden_activations) + [out_activation]
        self.layers = naive.layer_table(self.sizes, [K.ACTIVATION_CODES[a] for a in self.activations])
        self.n_params = naive.n_params(self.sizes)
        self.loss = loss
        self.loss_code = K.LOSS_CODES[loss]
        self.run_time_codes = True  # one compiled kernel serves every drawn network
        self.loss_scale = 1.0 / n_out if loss == "squared_error" else 1.0
        self.eps = float(np.finfo(dtype).eps)  # as the estimators pass it
        self.huber_delta = HUBER_DELTA
        X = rng.normal(size=(n_samples, n_features))
        X[rng.uniform(size=X.shape) < 0.3] = 0.0  # empty CSR rows and columns happen
        self.X = np.ascontiguousarray(X, dtype=dtype)
        self.Y = np.ascontiguousarray(
            make_targets(rng, loss, out_activation, n_samples, n_out), dtype=dtype
        )
        sw = rng.uniform(0.5, 2.0, size=n_samples) if weighted else np.ones(n_samples)
        self.sample_weight = sw.astype(dtype)
        self.params = rng.uniform(-0.6, 0.6, size=self.n_params).astype(dtype)
        self._repr = (
            f"DrawnProblem(seed={seed}, dtype={np.dtype(dtype).name}, n_samples={n_samples}, "
            f"n_features={n_features}, hidden_sizes={list(hidden_sizes)}, "
            f"hidden_activations={list(hidden_activations)}, loss={loss!r}, "
            f"out_activation={out_activation!r}, n_out={n_out}, weighted={weighted})"
        )

    def __repr__(self):
        return self._repr


@st.composite
def problems(draw, pairings=PAIRINGS, max_samples=40):
    n_hidden = draw(st.integers(1, 2))
    loss, out_activation = draw(st.sampled_from(pairings))
    n_out = draw(st.integers(2, 4)) if out_activation == "softmax" else draw(st.integers(1, 3))
    return DrawnProblem(
        seed=draw(st.integers(0, 2**32 - 1)),
        dtype=draw(st.sampled_from([np.float32, np.float64])),
        n_samples=draw(st.integers(1, max_samples)),
        n_features=draw(st.integers(1, 8)),
        hidden_sizes=draw(st.lists(st.integers(1, 9), min_size=n_hidden, max_size=n_hidden)),
        hidden_activations=draw(
            st.lists(st.sampled_from(HIDDEN), min_size=n_hidden, max_size=n_hidden)
        ),
        loss=loss,
        out_activation=out_activation,
        n_out=n_out,
        weighted=draw(st.booleans()),
    )


# --------------------------------------------------------------------------
# Kernels against the reference
# --------------------------------------------------------------------------


def assert_loss_close(got, want, p, n_rows):
    """A summed loss: to RTOL relative, or RTOL per row absolute.

    A loss near zero is a difference of nearly equal numbers (``a - y``,
    ``log p`` with ``p`` near 1) whose last-bit changes in a float32 output
    are large relative to the loss but not to the rows' scale.
    """
    rtol = RTOL[p.dtype]
    np.testing.assert_allclose(float(got), float(want), rtol=rtol, atol=rtol * n_rows * p.sizes[-1])


@examples(150)
@given(p=problems(), sparse=st.booleans(), data=st.data())
def test_forward_and_predict_match_reference(p, sparse, data):
    n = p.X.shape[0]
    rows = np.asarray(
        data.draw(st.permutations(range(n)).map(lambda r: r[: max(1, len(r) // 2)])), dtype=np.int64
    )
    capacity = len(rows) + data.draw(st.integers(0, 3))
    _, _, acts, _, output = kernel_forward(p, rows, sparse, capacity)
    want = p.naive_outputs(X=p.X[rows])
    assert output.shape == (len(rows), p.sizes[-1])
    assert_close(output, want[-1], p.dtype)
    for start, A in zip(naive.block_offsets(p.sizes, capacity), want):
        assert_close(acts[start : start + A.size].reshape(A.shape), A, p.dtype)
    # predict runs every row in chunks of any capacity
    chunk = data.draw(st.integers(1, n + 2))
    assert_close(kernel_predict(p, chunk, sparse), p.naive_outputs()[-1], p.dtype)


def cancellation(p):
    """How much the output error ``a - y`` loses to cancellation (between 1 and 1e4).

    When outputs nearly equal their targets, a last-bit change in ``a`` is a
    large relative change of ``a - y`` and of every gradient entry, though not
    of the outputs' scale ``|a| + |y|``.
    """
    A = p.naive_outputs()[-1].astype(np.float64)
    residual = np.abs(A - p.Y).max()
    magnitude = np.abs(A).max() + np.abs(p.Y).max()
    return 1.0 if residual == 0 else float(np.clip(magnitude / residual, 1.0, 1e4))


@examples(150)
@given(
    p=problems(),
    sparse=st.booleans(),
    alpha=st.sampled_from([0.0, 1e-4, 0.3]),
    fit_intercepts=st.booleans(),
    data=st.data(),
)
def test_loss_and_gradient_match_reference(p, sparse, alpha, fit_intercepts, data):
    capacity = data.draw(st.integers(1, p.X.shape[0] + 2))
    params_before = p.params.copy()
    objective, grad = kernel_loss_and_gradient(p, capacity, alpha, fit_intercepts, sparse)
    want_objective, want_grad = p.naive_loss_and_gradient(alpha, fit_intercepts)
    assert np.isfinite(objective)
    assert_loss_close(objective, want_objective, p, 1)  # the objective is a mean
    assert_close(grad, want_grad, p.dtype, rtol=RTOL[p.dtype] * cancellation(p))
    assert_array_equal(p.params, params_before)
    if not fit_intercepts:
        assert_array_equal(grad[~naive.coef_mask(p.sizes)], 0)


@examples(150)
@given(
    p=problems(),
    sparse=st.booleans(),
    solver=st.sampled_from(sorted(SOLVERS)),
    alpha=st.sampled_from([0.0, 0.1]),
    fit_intercepts=st.booleans(),
    data=st.data(),
)
def test_train_epoch_matches_reference(p, sparse, solver, alpha, fit_intercepts, data):
    n = p.X.shape[0]
    kind, hyper = SOLVERS[solver]
    n_train = data.draw(st.integers(1, n))
    batch_size = data.draw(st.integers(1, n_train))
    params = p.params.copy()  # the reference's copy
    state_a, state_b = np.zeros_like(params), np.zeros_like(params)
    want_a, want_b = np.zeros_like(params), np.zeros_like(params)
    t = np.zeros(1, dtype=np.int64)
    want_t = 0
    intercepts = ~naive.coef_mask(p.sizes)
    intercepts_before = p.params[intercepts].copy()
    for epoch in range(2):  # the optimizer state carries over
        order = np.random.RandomState(epoch).permutation(n)[:n_train].astype(np.int64)
        want_loss, want_t = naive.train_epoch(
            p.X, p.Y, p.sample_weight, order, batch_size, params, p.sizes, p.activations,
            alpha, p.loss, p.loss_scale, p.eps, fit_intercepts, kind, hyper, want_a, want_b, want_t,
            p.huber_delta,
        )
        # a step size that makes this network explode (exp outputs, momentum) turns
        # last-bit differences into any difference at all: only tame runs compare
        assume(np.isfinite(want_loss) and np.abs(params).max() < 10)
        got_loss = kernel_train_epoch(
            p, order, batch_size, alpha, fit_intercepts, sparse, kind, hyper, state_a, state_b, t,
            spare_rows=0,
        )
        assert np.isfinite(got_loss)
        assert_loss_close(got_loss, want_loss, p, n_train)  # batch means times lengths
        assert_close(p.params, params, p.dtype, rtol=RTOL[p.dtype] * 10)
        assert_close(state_a, want_a, p.dtype, rtol=RTOL[p.dtype] * 10)
        if kind == "adam":
            assert_close(state_b, want_b, p.dtype, rtol=RTOL[p.dtype] * 10)
        assert t[0] == want_t == (-(-n_train // batch_size) * (epoch + 1) if kind == "adam" else 0)
    if not fit_intercepts:
        assert_array_equal(p.params[intercepts], intercepts_before)


# --------------------------------------------------------------------------
# Estimator invariants
# --------------------------------------------------------------------------


@st.composite
def estimator_settings(draw, solvers=("sgd", "adam", "lbfgs")):
    n_hidden = draw(st.integers(1, 2))
    return dict(
        hidden_layer_sizes=tuple(draw(st.lists(st.integers(1, 9), min_size=n_hidden, max_size=n_hidden))),
        activation=draw(st.sampled_from(HIDDEN)),
        solver=draw(st.sampled_from(solvers)),
        batch_size=draw(st.one_of(st.just("auto"), st.integers(1, 40))),
        alpha=draw(st.sampled_from([0.0, 1e-4, 1.0])),
        learning_rate_init=draw(st.sampled_from([1e-3, 1e-2])),
        max_iter=draw(st.integers(1, 4)),
        random_state=draw(st.integers(0, 1000)),
        shuffle=draw(st.booleans()),
    )


def classification_data(draw):
    n_classes = draw(st.integers(2, 4))
    n_samples = draw(st.integers(n_classes, 40))
    n_features = draw(st.integers(1, 8))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    rng = np.random.RandomState(draw(st.integers(0, 2**32 - 1)))
    X = rng.normal(size=(n_samples, n_features)).astype(dtype)
    y = rng.permutation(np.arange(n_samples) % n_classes)  # every class appears
    return X, y, n_classes


def quietly(call, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return call(*args, **kwargs)


def fit_or_reject(est, X, y):
    """Fit; a drawn configuration that diverges must leave the model unfitted, and is skipped."""
    try:
        return quietly(est.fit, X, y)
    except ValueError as exc:
        if "diverged" not in str(exc):
            raise
        assert not hasattr(est, "coefs_")
        reject()


@examples(50)
@given(params=estimator_settings(), data=st.data())
def test_classifier_probabilities_sum_to_one(params, data):
    X, y, n_classes = classification_data(data.draw)
    est = fit_or_reject(MLPClassifier(**params), X, y)
    proba = est.predict_proba(X)
    assert proba.shape == (len(X), n_classes)
    assert proba.dtype == X.dtype
    assert np.all(proba >= 0) and np.all(proba <= 1)
    tol = 1e-5 if X.dtype == np.float32 else 1e-12
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=tol)
    pred = est.predict(X)
    assert pred.shape == (len(X),) and set(pred) <= set(range(n_classes))
    assert_array_equal(pred, est.classes_[np.argmax(proba, axis=1)])
    assert_close(est.predict_log_proba(X), np.log(proba), X.dtype.type)


@examples(50)
@given(params=estimator_settings(), n_outputs=st.integers(1, 3), data=st.data())
def test_regressor_fit_then_predict_shapes(params, n_outputs, data):
    n_samples = data.draw(st.integers(1, 40))
    n_features = data.draw(st.integers(1, 8))
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    rng = np.random.RandomState(data.draw(st.integers(0, 2**32 - 1)))
    X = rng.normal(size=(n_samples, n_features)).astype(dtype)
    y = rng.normal(size=(n_samples, n_outputs)) if n_outputs > 1 else rng.normal(size=n_samples)
    est = fit_or_reject(MLPRegressor(**params), X, y)
    assert est.n_outputs_ == n_outputs
    assert [c.shape for c in est.coefs_] == list(
        zip((n_features, *params["hidden_layer_sizes"]), (*params["hidden_layer_sizes"], n_outputs))
    )
    assert all(w.dtype == dtype for w in est.coefs_ + est.intercepts_)
    pred = est.predict(X)
    assert pred.shape == y.shape and pred.dtype == dtype
    assert np.isfinite(pred).all()
    assert est.predict(X[:1]).shape == y[:1].shape


@examples(50)
@given(params=estimator_settings(solvers=("sgd", "adam")), regression=st.booleans(), data=st.data())
def test_partial_fit_after_fit_continues(params, regression, data):
    X, y, n_classes = classification_data(data.draw)
    if regression:
        y = y + 0.5 * np.random.RandomState(0).normal(size=len(y))
        est = fit_or_reject(MLPRegressor(**params), X, y)
    else:
        est = fit_or_reject(MLPClassifier(**params), X, y)
    t = est.t_
    curve = list(est.loss_curve_)
    weights = [w.copy() for w in est.coefs_ + est.intercepts_]
    try:
        quietly(est.partial_fit, X, y)
    except ValueError as exc:  # a diverging epoch changes nothing
        assert "diverged" in str(exc)
        assert est.t_ == t and est.loss_curve_ == curve
        assert all(np.array_equal(a, b) for a, b in zip(weights, est.coefs_ + est.intercepts_))
        reject()
    assert est.t_ == t + len(X)
    assert est.n_iter_ == 1  # as scikit-learn: partial_fit counts its one epoch
    assert est.loss_curve_[: len(curve)] == curve and len(est.loss_curve_) == len(curve) + 1
    assert any(not np.array_equal(a, b) for a, b in zip(weights, est.coefs_ + est.intercepts_))
    pred = est.predict(X)
    assert pred.shape == (len(X),)
    if not regression:
        assert set(pred) <= set(est.classes_)

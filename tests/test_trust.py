"""Trust (issue 6, items 1-5): nothing a user does loses their work or gives silently wrong numbers.

Five fault classes, each compared with scikit-learn wherever scikit-learn
defines the behaviour (same exception type; for conversions, the same
predictions):

1. bad input: non-finite values, wrong shapes, empty and one-row data, one
   class, odd labels, odd memory layouts and dtypes, invalid parameters and
   networks too large for memory. Every failing call on an already fitted
   model must leave every attribute (weights compared byte for byte) and
   every prediction exactly as before, and training must then continue as if
   the failed call had never happened;
2. divergence: a non-finite loss or weights stops training at the first bad
   epoch with a ValueError that says what diverged and what to try, and the
   model is left as before the call; with early stopping, as in scikit-learn,
   the fit ends with a ConvergenceWarning and the best validation weights;
3. interrupts: Ctrl-C (a KeyboardInterrupt from inside the epoch loop or from
   a callback) keeps every complete epoch and nothing of the interrupted one;
4. concurrency: fits in threads (ThreadPoolExecutor, joblib's threading
   backend, GridSearchCV) equal serial fits, the kernels release the GIL, and
   fits in forked and spawned worker processes equal the parent's;
5. determinism: the same random_state gives bit-identical models within a
   process and across fresh processes.

What can differ across machines (item 5): the kernels call BLAS (SciPy's
OpenBLAS) for every matrix product, so another BLAS build or CPU kernel may
sum in another order and change the last bits; this suite only promises bit
identity on one machine and BLAS build.
"""

import hashlib
import importlib.util
import json
import multiprocessing
import os
import re
import resource
import subprocess
import sys
import threading
import time
import tracemalloc
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import joblib
import numpy as np
import pytest
import sklearn.neural_network as sk_nn
import sklearn.utils
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone, is_classifier
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils._param_validation import InvalidParameterError
from threadpoolctl import threadpool_limits

import fastbp
import fastbp._multilayer_perceptron as mlp_module
from fastbp import _engine
from fastbp._engine import available_memory
from fastbp._network import Network

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

KINDS = ["MLPClassifier", "MLPRegressor"]
SOLVERS = ["sgd", "adam", "lbfgs"]
STOCHASTIC = ["sgd", "adam"]
TESTS_DIR = Path(__file__).resolve().parent
# Agreement of fastbp and scikit-learn (same maths summed in another order).
RTOL = 1e-7


# ---------------------------------------------------------------------------
# Data, estimators and the deep snapshot of an estimator
# ---------------------------------------------------------------------------


def make_data(kind, n_samples=40, n_features=5, seed=0):
    """Small ``X, y``: three balanced classes for a classifier, a linear target otherwise."""
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n_samples, n_features))
    z = X @ rng.normal(size=n_features) + 0.1 * rng.normal(size=n_samples)
    if kind == "MLPClassifier":
        return X, np.searchsorted(np.quantile(z, [1 / 3, 2 / 3]), z)
    return X, z


def build(api, kind, **params):
    """An estimator of ``kind`` from ``api`` (the fastbp or the sklearn.neural_network module)."""
    defaults = dict(hidden_layer_sizes=(6,), max_iter=8, random_state=0, learning_rate_init=0.01)
    defaults.update(params)
    return getattr(api, kind)(**defaults)


def quietly(call, *args, **kwargs):
    """``call(*args, **kwargs)`` with ConvergenceWarning and RuntimeWarning silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        return call(*args, **kwargs)


def outputs(est, X):
    """Everything the estimator predicts for X."""
    out = {"predict": est.predict(X)}
    if is_classifier(est):
        out["predict_proba"] = est.predict_proba(X)
    return out


def freeze(obj, depth=0):
    """A deep, comparable copy of ``obj``: arrays as (dtype, shape, bytes), NaN equal to NaN."""
    assert depth < 25, "cyclic or too deep estimator state"
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            return ("object-array", obj.shape, tuple(freeze(x, depth + 1) for x in obj.ravel()))
        return ("ndarray", obj.dtype.str, obj.shape, obj.tobytes())
    if isinstance(obj, np.random.RandomState):
        return ("RandomState", freeze(obj.get_state(), depth + 1))
    if isinstance(obj, dict):
        items = sorted(obj.items(), key=lambda item: repr(item[0]))
        return ("dict", tuple((repr(k), freeze(v, depth + 1)) for k, v in items))
    if isinstance(obj, (list, tuple)):
        return (type(obj).__name__, tuple(freeze(x, depth + 1) for x in obj))
    if isinstance(obj, (float, np.floating)):
        return (type(obj).__name__, repr(float(obj)))
    if obj is None or isinstance(obj, (str, bytes, int, np.integer, np.bool_)):
        return (type(obj).__name__, obj)
    if isinstance(obj, np.dtype):
        return ("dtype", obj.str)
    if hasattr(obj, "__dict__"):
        # the state pickling sees: run-time counters such as Network.version are not state
        state = obj.__getstate__() if hasattr(obj, "__getstate__") else vars(obj)
        return (type(obj).__qualname__, freeze(state, depth + 1))
    return ("repr", type(obj).__qualname__, repr(obj))


def snapshot(est, X):
    """Every attribute of ``est`` (deeply) and, when fitted, its predictions for X."""
    state = {name: freeze(value) for name, value in vars(est).items()}
    preds = {k: freeze(v) for k, v in outputs(est, X).items()} if hasattr(est, "coefs_") else None
    weights = (
        [(w.dtype.str, w.shape, w.tobytes()) for w in est.coefs_ + est.intercepts_]
        if hasattr(est, "coefs_") else None
    )
    return {"vars": state, "outputs": preds, "weights": weights}


def assert_unchanged(est, before, X):
    """``est`` has exactly the attributes, weight bytes and predictions of ``before``."""
    after = snapshot(est, X)
    added = sorted(set(after["vars"]) - set(before["vars"]))
    removed = sorted(set(before["vars"]) - set(after["vars"]))
    assert not added and not removed, f"attributes added {added}, removed {removed}"
    changed = [k for k in before["vars"] if after["vars"][k] != before["vars"][k]]
    assert not changed, f"attributes changed by the failed call: {changed}"
    assert after["weights"] == before["weights"], "coefs_ / intercepts_ bytes changed"
    assert after["outputs"] == before["outputs"], "predictions changed"


def fingerprint(est):
    """SHA-256 of every weight (bytes and dtype) and of the loss curve."""
    digest = hashlib.sha256()
    for w in est.coefs_ + est.intercepts_:
        digest.update(w.dtype.str.encode())
        digest.update(repr(w.shape).encode())
        digest.update(np.ascontiguousarray(w).tobytes())
    digest.update(repr([float(v) for v in getattr(est, "loss_curve_", [])]).encode())
    digest.update(repr(est.n_iter_).encode())
    return digest.hexdigest()


def assert_same_model(a, b):
    """Bit-identical weights and predictions-relevant state."""
    assert len(a.coefs_) == len(b.coefs_)
    for wa, wb in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        assert wa.dtype == wb.dtype and wa.shape == wb.shape
        assert wa.tobytes() == wb.tobytes()
    assert a.n_iter_ == b.n_iter_
    assert getattr(a, "loss_curve_", None) == getattr(b, "loss_curve_", None)


def public_type(exc):
    """The exception's type, NumPy's private MemoryError subclass counting as MemoryError."""
    return MemoryError if isinstance(exc, MemoryError) else type(exc)


def exception_of(call):
    """The exception ``call()`` raises (the test fails if it raises none)."""
    try:
        quietly(call)
    except Exception as exc:  # noqa: BLE001 - any error is the subject here
        return exc
    pytest.fail(f"{call} raised nothing")


# ---------------------------------------------------------------------------
# 1. Bad input: every failing call leaves the model exactly as it was
# ---------------------------------------------------------------------------


def with_value(a, index, value):
    a = np.array(a, dtype=float)
    a[index] = value
    return a


class Bad:
    """A failing call ``call(est, X, y)``, with the settings it needs.

    ``params`` are set (``set_params``) just before the call; ``fitted_only``
    cases only fail on an already fitted model; ``stochastic`` cases need a
    stochastic solver (partial_fit, early stopping).
    """

    def __init__(self, name, call, expected=ValueError, kinds=tuple(KINDS), params=None,
                 fitted_only=False, stochastic=False):
        self.name = name
        self.call = call
        self.expected = expected
        self.kinds = kinds
        self.params = params or {}
        self.fitted_only = fitted_only
        self.stochastic = stochastic
        self.method = name.split("-")[0] if name.startswith(("partial_fit", "predict")) else "fit"


def _sw(X, index, value):
    return with_value(np.ones(X.shape[0]), index, value)


BAD_CALLS = [
    # non-finite values
    Bad("X-nan", lambda e, X, y: e.fit(with_value(X, (3, 1), np.nan), y)),
    Bad("X-inf", lambda e, X, y: e.fit(with_value(X, (3, 1), np.inf), y)),
    Bad("X-minus-inf", lambda e, X, y: e.fit(with_value(X, (0, 0), -np.inf), y)),
    Bad("y-nan", lambda e, X, y: e.fit(X, with_value(y, 2, np.nan))),
    Bad("y-inf", lambda e, X, y: e.fit(X, with_value(y, 2, np.inf))),
    Bad("y-minus-inf", lambda e, X, y: e.fit(X, with_value(y, 2, -np.inf))),
    Bad("sample_weight-nan", lambda e, X, y: e.fit(X, y, sample_weight=_sw(X, 4, np.nan))),
    Bad("sample_weight-inf", lambda e, X, y: e.fit(X, y, sample_weight=_sw(X, 4, np.inf))),
    # shapes and types
    Bad("X-1d", lambda e, X, y: e.fit(X[:, 0], y)),
    Bad("X-3d", lambda e, X, y: e.fit(X[:, :, None], y)),
    Bad("X-strings", lambda e, X, y: e.fit(np.full(X.shape, "a"), y)),
    Bad("X-complex", lambda e, X, y: e.fit(X + 1j, y)),
    Bad("y-wrong-length", lambda e, X, y: e.fit(X, y[:-1])),
    Bad("y-3d", lambda e, X, y: e.fit(X, y[:, None, None])),
    Bad("sample_weight-wrong-length", lambda e, X, y: e.fit(X, y, sample_weight=np.ones(len(y) - 1))),
    Bad("sample_weight-2d", lambda e, X, y: e.fit(X, y, sample_weight=np.ones((len(y), 1)))),
    Bad("X-empty", lambda e, X, y: e.fit(X[:0], y[:0])),
    Bad("X-no-features", lambda e, X, y: e.fit(X[:, :0], y)),
    Bad("labels-mixed-types", lambda e, X, y: e.fit(X, np.array(["x", 3], dtype=object)[y % 2]),
        expected=TypeError, kinds=("MLPClassifier",)),
    Bad("labels-continuous", lambda e, X, y: e.fit(X, y + 0.5), kinds=("MLPClassifier",)),
    Bad("warm_start-other-n_features", lambda e, X, y: e.fit(X[:, :3], y),
        params=dict(warm_start=True), fitted_only=True),
    Bad("warm_start-other-classes", lambda e, X, y: e.fit(X, y + 1), kinds=("MLPClassifier",),
        params=dict(warm_start=True), fitted_only=True),
    Bad("early_stopping-one-sample", lambda e, X, y: e.fit(X[:1], y[:1]),
        params=dict(early_stopping=True), stochastic=True),
    Bad("early_stopping-validation-set-too-small", lambda e, X, y: e.fit(X, y),
        params=dict(early_stopping=True, validation_fraction=0.02), stochastic=True),
    # a network too large for memory
    Bad("hidden-layer-too-large", lambda e, X, y: e.fit(X, y), expected=MemoryError,
        params=dict(hidden_layer_sizes=(10**6, 10**6))),
    # partial_fit
    Bad("partial_fit-n_features", lambda e, X, y: e.partial_fit(X[:, :3], y), fitted_only=True,
        stochastic=True),
    Bad("partial_fit-X-nan", lambda e, X, y: e.partial_fit(with_value(X, (3, 1), np.nan), y),
        fitted_only=True, stochastic=True),
    Bad("partial_fit-y-wrong-length", lambda e, X, y: e.partial_fit(X, y[:-1]), fitted_only=True,
        stochastic=True),
    Bad("partial_fit-sample_weight-nan",
        lambda e, X, y: e.partial_fit(X, y, sample_weight=_sw(X, 4, np.nan)), fitted_only=True,
        stochastic=True),
    Bad("partial_fit-unseen-class", lambda e, X, y: e.partial_fit(X, y + 5),
        kinds=("MLPClassifier",), fitted_only=True, stochastic=True),
    Bad("partial_fit-other-classes", lambda e, X, y: e.partial_fit(X, y, classes=[0, 1, 2, 3]),
        kinds=("MLPClassifier",), fitted_only=True, stochastic=True),
    Bad("partial_fit-early_stopping", lambda e, X, y: e.partial_fit(X, y),
        params=dict(early_stopping=True), fitted_only=True, stochastic=True),
    # prediction
    Bad("predict-n_features", lambda e, X, y: e.predict(X[:, :3]), fitted_only=True),
    Bad("predict-nan", lambda e, X, y: e.predict(with_value(X, (0, 0), np.nan)), fitted_only=True),
    Bad("predict-minus-inf", lambda e, X, y: e.predict(with_value(X, (2, 1), -np.inf)), fitted_only=True),
    Bad("predict-empty", lambda e, X, y: e.predict(X[:0]), fitted_only=True),
    Bad("predict_proba-n_features", lambda e, X, y: e.predict_proba(X[:, :3]),
        kinds=("MLPClassifier",), fitted_only=True),
]

# Zero or negative sizes and rates, and other out-of-range parameters.
INVALID_PARAMS = [
    ("learning_rate_init", 0.0, InvalidParameterError),
    ("learning_rate_init", -0.1, InvalidParameterError),
    ("alpha", -1.0, InvalidParameterError),
    ("batch_size", 0, InvalidParameterError),
    ("batch_size", -3, InvalidParameterError),
    ("hidden_layer_sizes", 0, InvalidParameterError),
    ("hidden_layer_sizes", -1, InvalidParameterError),
    ("hidden_layer_sizes", (0,), ValueError),
    ("hidden_layer_sizes", (5, -2), ValueError),
    ("max_iter", 0, InvalidParameterError),
    ("max_iter", -5, InvalidParameterError),
    ("max_fun", 0, InvalidParameterError),
    ("n_iter_no_change", 0, InvalidParameterError),
    ("tol", -1.0, InvalidParameterError),
    ("power_t", -0.5, InvalidParameterError),
    ("momentum", 1.5, InvalidParameterError),
    ("validation_fraction", 1.0, InvalidParameterError),
    ("epsilon", 0.0, InvalidParameterError),
    ("beta_1", 1.0, InvalidParameterError),
    ("beta_2", -0.1, InvalidParameterError),
]
BAD_CALLS += [
    Bad(f"param-{name}={value!r}", lambda e, X, y: e.fit(X, y), expected=expected,
        params={name: value})
    for name, value, expected in INVALID_PARAMS
]


def _bad_cases():
    for case in BAD_CALLS:
        for kind in case.kinds:
            for solver in STOCHASTIC if case.stochastic else SOLVERS:
                yield pytest.param(kind, solver, case, id=f"{case.name}-{kind}-{solver}")


def _fitted_pair(kind, solver):
    """A fitted fastbp model and its never-failing twin, and a fitted scikit-learn model."""
    X, y = make_data(kind)
    ours = quietly(build(fastbp, kind, solver=solver).fit, X, y)
    twin = quietly(build(fastbp, kind, solver=solver).fit, X, y)
    theirs = quietly(build(sk_nn, kind, solver=solver).fit, X, y)
    return X, y, ours, twin, theirs


@pytest.mark.parametrize("kind, solver, case", list(_bad_cases()))
def test_failed_call_leaves_a_fitted_model_exactly_as_it_was(kind, solver, case):
    X, y, ours, twin, theirs = _fitted_pair(kind, solver)
    # scikit-learn defines the error: the same exception type
    theirs.set_params(**case.params)
    their_error = exception_of(lambda: case.call(theirs, X, y))
    original = {name: ours.get_params()[name] for name in case.params}
    ours.set_params(**case.params)
    before = snapshot(ours, X)
    our_error = exception_of(lambda: case.call(ours, X, y))
    assert isinstance(our_error, case.expected), repr(our_error)
    assert public_type(our_error) is public_type(their_error), (our_error, their_error)
    assert_unchanged(ours, before, X)
    # ... and training goes on as if the failed call had never happened
    ours.set_params(**original)
    if solver in STOCHASTIC:
        quietly(ours.partial_fit, X, y)
        quietly(twin.partial_fit, X, y)
    else:
        quietly(ours.set_params(warm_start=True).fit, X, y)
        quietly(twin.set_params(warm_start=True).fit, X, y)
    assert_same_model(ours, twin)
    assert snapshot(ours, X) == snapshot(twin, X)


@pytest.mark.parametrize(
    "kind, solver, case",
    [p for p in _bad_cases() if not p.values[2].fitted_only and p.values[2].method == "fit"],
)
def test_failed_fit_leaves_an_unfitted_model_unfitted(kind, solver, case):
    X, y = make_data(kind)
    their_error = exception_of(lambda: case.call(build(sk_nn, kind, solver=solver, **case.params), X, y))
    ours = build(fastbp, kind, solver=solver, **case.params)
    before = dict(vars(ours))
    our_error = exception_of(lambda: case.call(ours, X, y))
    assert public_type(our_error) is public_type(their_error), (our_error, their_error)
    assert vars(ours).keys() == before.keys()
    for name, value in before.items():
        assert vars(ours)[name] is value, name


def test_failed_first_partial_fit_leaves_the_classifier_unfitted():
    """A first partial_fit that fails (here on NaN in X) must not leave ``classes_``
    behind: the model must stay unfitted (NotFittedError, not AttributeError) and a
    corrected call with other classes must be accepted. (scikit-learn sets
    ``classes_`` and its label binarizer before validating the data and keeps
    them; fastbp promises atomic fits.)"""
    X, y = make_data("MLPClassifier")
    est = build(fastbp, "MLPClassifier", solver="sgd")
    before = dict(vars(est))
    with pytest.raises(ValueError, match="NaN"):
        est.partial_fit(with_value(X, (0, 0), np.nan), y, classes=[0, 1, 2])
    assert vars(est) == before
    with pytest.raises(NotFittedError):
        est.predict(X)
    quietly(est.partial_fit, X, y, classes=[0, 1, 2, 3])
    assert_array_equal(est.classes_, [0, 1, 2, 3])


def test_failed_fit_keeps_the_users_parameter_objects():
    """Parameters are the objects the user passed, before and after a failed fit.

    A failed fit must not swap a parameter for a copy: a RandomState shared
    with other code, or a class_weight dict, must stay the user's object.
    """
    X, y = make_data("MLPClassifier")
    rs = np.random.RandomState(3)
    class_weight = {0: 1.0, 1: 2.0, 2: 1.0}
    est = build(fastbp, "MLPClassifier", random_state=rs, class_weight=class_weight, solver="sgd")
    quietly(est.fit, X, y)
    with pytest.raises(ValueError):
        est.fit(with_value(X, (0, 0), np.nan), y)
    assert est.random_state is rs
    assert est.class_weight is class_weight
    with pytest.raises(ValueError):
        quietly(est.set_params(learning_rate_init=1e10, max_iter=50).fit, X * 1e200, y)
    assert est.random_state is rs
    assert est.class_weight is class_weight


# --- scikit-learn's own callbacks stay the user's and are torn down

needs_callbacks = pytest.mark.skipif(
    importlib.util.find_spec("sklearn.callback") is None, reason="no sklearn.callback"
)


class Recorder:
    """A FitCallback recording its hooks."""

    def __init__(self):
        self.log = []

    def setup(self, estimator, context):
        self.log.append("setup")

    def on_fit_task_begin(self, estimator, context):
        self.log.append(f"begin {context.task_name}")

    def on_fit_task_end(self, estimator, context):
        self.log.append(f"end {context.task_name}")

    def teardown(self, estimator, context):
        self.log.append("teardown")


class LockedRecorder(Recorder):
    """A callback holding what cannot be copied (a lock, like any thread-safe logger)."""

    def __init__(self):
        super().__init__()
        self.lock = threading.Lock()


@needs_callbacks
def test_failed_fit_tears_down_and_keeps_the_users_callbacks():
    """scikit-learn promises teardown whether fit succeeds or not; the callback object
    the user set must still be the one called by the next fit."""
    X, y = make_data("MLPRegressor")
    recorder = Recorder()
    est = build(fastbp, "MLPRegressor", solver="sgd", learning_rate_init=1e10, max_iter=50)
    est.set_callbacks(recorder)
    with pytest.raises(ValueError, match="diverged"):
        quietly(est.fit, X, y)
    assert recorder.log[0] == "setup"
    assert recorder.log[-1] == "teardown", recorder.log
    recorder.log.clear()
    quietly(est.set_params(learning_rate_init=0.01, max_iter=2).fit, X, y)
    assert recorder.log[:2] == ["setup", "begin fit"], recorder.log
    assert recorder.log.count("end epoch") == 2 and recorder.log[-1] == "teardown"


@needs_callbacks
def test_fit_works_with_a_callback_holding_a_lock():
    X, y = make_data("MLPRegressor")
    recorder = LockedRecorder()
    est = build(fastbp, "MLPRegressor", solver="adam", max_iter=2).set_callbacks(recorder)
    quietly(est.fit, X, y)
    assert recorder.log.count("end epoch") == 2


# --- documented conversions: same predictions as scikit-learn


def _layouts(X, tmp_path):
    """X in other memory layouts (same values)."""
    wide = np.zeros((X.shape[0], 2 * X.shape[1]))
    wide[:, ::2] = X
    readonly = X.copy()
    readonly.setflags(write=False)
    path = tmp_path / "X.dat"
    mm = np.memmap(path, dtype=np.float64, mode="w+", shape=X.shape)
    mm[:] = X
    mm.flush()
    del mm
    return {
        "F-ordered": np.asfortranarray(X),
        "non-contiguous": wide[:, ::2],
        "read-only": readonly,
        "memmap-readonly": np.memmap(path, dtype=np.float64, mode="r", shape=X.shape),
        "list-of-lists": X.tolist(),
    }


LAYOUTS = ["F-ordered", "non-contiguous", "read-only", "memmap-readonly", "list-of-lists"]


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_memory_layouts_give_the_c_contiguous_model(tmp_path, layout, kind, solver):
    X, y = make_data(kind)
    reference = quietly(build(fastbp, kind, solver=solver).fit, X, y)
    Xl = _layouts(X, tmp_path)[layout]
    before = np.array(Xl, copy=True)
    ours = quietly(build(fastbp, kind, solver=solver).fit, Xl, y)
    assert_same_model(ours, reference)
    assert_array_equal(np.asarray(Xl), before)  # the input was not written to
    for key, value in outputs(ours, Xl).items():
        assert value.tobytes() == outputs(reference, X)[key].tobytes(), key
    theirs = quietly(build(sk_nn, kind, solver=solver).fit, Xl, y)
    for key, value in outputs(theirs, Xl).items():
        if value.dtype.kind == "f":
            assert_allclose(outputs(ours, Xl)[key], value, rtol=RTOL, atol=1e-12)
        else:
            assert_array_equal(outputs(ours, Xl)[key], value)


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.float16, np.uint8])
def test_int_and_float16_X_are_converted_to_float64(kind, solver, dtype):
    X, y = make_data(kind)
    Xd = (X * 3).astype(dtype)
    reference = quietly(build(fastbp, kind, solver=solver).fit, Xd.astype(np.float64), y)
    ours = quietly(build(fastbp, kind, solver=solver).fit, Xd, y)
    assert ours.coefs_[0].dtype == np.float64
    assert_same_model(ours, reference)
    theirs = quietly(build(sk_nn, kind, solver=solver).fit, Xd, y)
    assert theirs.coefs_[0].dtype == ours.coefs_[0].dtype
    for key, value in outputs(theirs, Xd).items():
        mine = outputs(ours, Xd)[key]
        assert mine.dtype == value.dtype
        if value.dtype.kind == "f":
            assert_allclose(mine, value, rtol=RTOL, atol=1e-12)
        else:
            assert_array_equal(mine, value)


LABELS = {
    "strings": np.array(["ant", "bee", "cat"]),
    "objects": np.array(["ant", "bee", "cat"], dtype=object),
    "booleans": np.array([False, True, True]),  # two classes: 1 and 2 are both True
    "negative-ints": np.array([-7, 0, 9]),
}


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("labels", list(LABELS))
def test_string_boolean_and_object_labels(labels, solver):
    X, codes = make_data("MLPClassifier")
    values = LABELS[labels]
    y = values[codes]
    # the same sorted classes as integer codes: the same model, labels mapped
    classes, y_codes = np.unique(y, return_inverse=True)
    reference = quietly(build(fastbp, "MLPClassifier", solver=solver).fit, X, y_codes)
    ours = quietly(build(fastbp, "MLPClassifier", solver=solver).fit, X, y)
    theirs = quietly(build(sk_nn, "MLPClassifier", solver=solver).fit, X, y)
    assert_same_model(ours, reference)
    assert_array_equal(ours.classes_, theirs.classes_)
    assert ours.classes_.dtype == theirs.classes_.dtype
    pred = ours.predict(X)
    assert pred.dtype == theirs.predict(X).dtype
    assert_array_equal(pred, classes[reference.predict(X)])
    assert_array_equal(pred, theirs.predict(X))
    assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=RTOL, atol=1e-12)
    if solver != "lbfgs":  # partial_fit with these labels goes on working
        quietly(ours.partial_fit, X, y)
        assert set(ours.predict(X)) <= set(classes)


@pytest.mark.parametrize(
    "y, batch",
    [
        (np.array([3, 1, 2, 3, 1]), np.array([2, 2, 1])),  # partial_fit batch of fewer classes
        # integer labels looked up in a table: negative, offset, other dtypes, unseen labels
        (np.array([-3, 5, 0, 5, -3, 2, 0, 2], dtype=np.int8), np.array([5, 5, -3], dtype=np.int8)),
        (np.arange(12) % 4 + 2**40, np.array([2**40 + 3, 2**40], dtype=np.uint64)),
        (np.array([0, 9, 4, 9] * 3), np.array([4, 6, 9, 100, -1, 0] * 2, dtype=np.int16)),
        (np.array([2**64 - 1, 2**64 - 2] * 2, dtype=np.uint64), np.array([2**64 - 2], dtype=np.uint64)),
        (np.array(["b", "a", "b"]), np.array(["a", "a"])),
        (np.array(["ant", "bee", "cat", "ant"], dtype=object), np.array(["cat"], dtype=object)),
        (np.array([True, False, True]), np.array([True])),
        (np.array([1.0, -2.0, 7.0, 1.0]), np.array([7.0, -2.0])),
        (np.array([[1, 0], [0, 1], [1, 1]]), np.array([[0, 0]])),  # multilabel: the binarizer's path
        (np.array([4, 4, 4]), np.array([4])),  # one class: the binarizer's path
    ],
)
def test_target_rows_are_the_label_binarizers(y, batch):
    """The classifier's own one-hot encoding gives what ``LabelBinarizer.transform`` gives."""
    est = fastbp.MLPClassifier()
    est._label_binarizer = LabelBinarizer().fit(y)
    for labels in (y, batch):
        expected = est._label_binarizer.transform(labels).astype(bool)
        encoded = est._encode_targets(labels)
        assert encoded.dtype == bool
        assert_array_equal(encoded, expected)


@pytest.mark.parametrize(
    "y",
    [
        *(np.array([3, 1, 2, 3, 1, 0], dtype=dtype) for dtype in
          (np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64)),
        np.array([4, 4, 4]),  # one class
        np.array([7, 2, 7]),  # two classes
        np.array([-5, 3, 0, 3]),  # negative labels
        np.array([10**12, 3, 10**12]),  # labels too large to count
        np.array([np.iinfo(np.uint64).max, 0], dtype=np.uint64),
        np.arange(40)[::3],  # not contiguous
        np.arange(10**6 - 5, 10**6, dtype=np.uint32),
        np.array([], dtype=np.int64),  # the binarizer's path and its error
        np.array([1.0, -2.0, 1.0]),
        np.array(["b", "a"]),
        np.array([True, False]),
        np.array([[1, 0], [0, 1]]),  # multilabel
        [2, 1, 2],  # a list
    ],
    ids=lambda y: f"{np.asarray(y).dtype}-{np.asarray(y).shape}-{str(np.asarray(y).tolist())[:20]}",
)
def test_label_binarizer_is_fitted_as_sklearn_fits_it(y):
    """The classifier's fitted binarizer has every attribute of ``LabelBinarizer().fit(y)``, of the same dtype."""
    try:
        expected = LabelBinarizer().fit(y)
    except ValueError as exc:
        with pytest.raises(ValueError, match=re.escape(str(exc))):
            mlp_module._fitted_label_binarizer(y)
        return
    got = mlp_module._fitted_label_binarizer(y)
    assert vars(got).keys() == vars(expected).keys()
    for name, value in vars(expected).items():
        if isinstance(value, np.ndarray):
            assert_array_equal(vars(got)[name], value)
            assert vars(got)[name].dtype == value.dtype, name
        else:
            assert vars(got)[name] == value, name


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["C", "F", "strided"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf, "largest"])
@pytest.mark.parametrize("where", [(0, 0), (17, 3), (-1, -1)])
def test_finiteness_is_decided_right_for_every_layout(dtype, layout, value, where):
    """The finiteness check finds NaN and infinities anywhere in any layout, and passes the largest finite values.

    (A sum, or a sum of squares, of the largest finite values overflows: a
    check built on one must still pass them.)
    """
    X = np.random.default_rng(0).normal(size=(40, 2 * 6)).astype(dtype)
    X[where[0], 2 * where[1]] = np.finfo(dtype).max if value == "largest" else value
    X = {"C": X[:, ::2].copy(), "F": np.asfortranarray(X[:, ::2]), "strided": X[:, ::2]}[layout]
    assert X.flags.c_contiguous == (layout == "C") and X.flags.f_contiguous == (layout == "F")
    assert mlp_module._all_finite(X) is (value == "largest")
    assert mlp_module._all_finite(np.ones_like(X)) is True


@pytest.mark.parametrize("n_rows", [1, 2, 7, 1797])
@pytest.mark.parametrize("seed", [0, 1, 12345])
def test_epoch_shuffle_draws_as_sklearn_shuffle(n_rows, seed):
    """Each epoch's order, and the random state after it, are ``sklearn.utils.shuffle``'s."""
    ours, theirs = np.random.RandomState(seed), np.random.RandomState(seed)
    rows = np.random.RandomState(99).permutation(n_rows + 3)[:n_rows]  # any row numbers
    for _ in range(3):
        expected = sklearn.utils.shuffle(rows, random_state=theirs)
        got = mlp_module._shuffled(rows, ours)
        assert_array_equal(got, expected)
        assert got.dtype == expected.dtype
        rows = got
    assert ours.randint(1 << 30) == theirs.randint(1 << 30)


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("case", ["one-sample-regression", "one-sample-classification", "one-class"])
def test_one_sample_and_one_class_as_sklearn(case, solver):
    kind = "MLPRegressor" if case == "one-sample-regression" else "MLPClassifier"
    X, y = make_data(kind)
    if case.startswith("one-sample"):
        Xf, yf = X[:1], y[:1]
    else:
        Xf, yf = X, np.full(len(y), 4)
    ours = quietly(build(fastbp, kind, solver=solver).fit, Xf, yf)
    theirs = quietly(build(sk_nn, kind, solver=solver).fit, Xf, yf)
    assert ours.n_iter_ == theirs.n_iter_
    for key, value in outputs(theirs, X).items():
        mine = outputs(ours, X)[key]
        assert mine.shape == value.shape
        if value.dtype.kind == "f":
            assert_allclose(mine, value, rtol=RTOL, atol=1e-12)
        else:
            assert_array_equal(mine, value)
    if kind == "MLPClassifier":
        assert_array_equal(ours.predict(X), np.full(len(X), yf[0]))


# --- networks too large for memory: MemoryError before allocating


def _too_large_sizes():
    """Hidden sizes far beyond memory, and ones whose weights alone need twice what is free."""
    free = available_memory() or 16 * 2**30
    h = int(np.sqrt(2 * free / 8)) + 1
    return {"far-beyond": (10**6, 10**6), "twice-free-memory": (h, h)}


@pytest.mark.parametrize("size", ["far-beyond", "twice-free-memory"])
@pytest.mark.parametrize(
    "solver, method",
    [(s, "fit") for s in SOLVERS] + [(s, "partial_fit") for s in STOCHASTIC],
)
@pytest.mark.parametrize("kind", KINDS)
def test_network_too_large_raises_memory_error_before_allocating(kind, solver, method, size):
    X, y = make_data(kind)
    sizes = _too_large_sizes()[size]
    est = build(fastbp, kind, solver=solver, hidden_layer_sizes=sizes)
    kwargs = {"classes": np.unique(y)} if method == "partial_fit" and kind == "MLPClassifier" else {}
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(MemoryError) as info:
            getattr(est, method)(X, y, **kwargs)
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    rss_growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) * 1024
    assert elapsed < 2.0
    assert peak < 8 * 2**20, f"{peak} bytes were allocated before the MemoryError"
    assert rss_growth < 64 * 2**20
    n_outputs = 3 if kind == "MLPClassifier" else 1
    message = str(info.value)
    assert "-".join(map(str, (X.shape[1], *sizes, n_outputs))) in message
    assert re.search(r"needs about [\d.]+ GiB", message) and "hidden_layer_sizes" in message
    assert not hasattr(est, "coefs_") and not hasattr(est, "_network")
    if size == "far-beyond":  # scikit-learn fails at its first allocation: same type
        their_error = exception_of(
            lambda: getattr(build(sk_nn, kind, solver=solver, hidden_layer_sizes=sizes), method)(
                X, y, **kwargs
            )
        )
        assert public_type(their_error) is MemoryError


def test_network_constructor_refuses_a_network_too_large_for_memory():
    tracemalloc.start()
    try:
        with pytest.raises(MemoryError, match=r"A network of layer sizes \(5, 1000000, 1000000, 1\)"):
            Network((5, 10**6, 10**6, 1))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20


# ---------------------------------------------------------------------------
# 2. Divergence
# ---------------------------------------------------------------------------

# (kind, solver, cause): every combination that drives the weights or the loss
# to non-finite values in both fastbp and scikit-learn.
DIVERGING = [
    ("MLPClassifier", "sgd", "learning_rate"),
    ("MLPClassifier", "adam", "learning_rate"),
    ("MLPClassifier", "sgd", "huge_X"),
    ("MLPRegressor", "sgd", "learning_rate"),
    ("MLPRegressor", "adam", "learning_rate"),
    ("MLPRegressor", "sgd", "huge_X"),
    ("MLPRegressor", "adam", "huge_X"),
]
DIVERGED_MESSAGE = re.compile(
    r"(The training loss became (nan|inf|-inf)|Solver produced non-finite parameter weights)"
    r".*Training diverged in epoch \d+ and stopped.*Try scaling X.*learning_rate_init",
    re.S,
)


def _diverging(cause, solver):
    """Parameters and X transform that make training diverge."""
    if cause == "learning_rate":
        lr = 1e10 if solver == "sgd" else 1e300
        return dict(learning_rate_init=lr, max_iter=50, n_iter_no_change=1000), lambda X: X
    return dict(max_iter=50, n_iter_no_change=1000), lambda X: X * 1e200


def spy_on_epochs(monkeypatch, spy):
    """Make ``spy(trainer, order)`` run every epoch instead of ``EpochTrainer.run``."""
    monkeypatch.setattr(_engine.EpochTrainer, "run", lambda trainer, order: spy(trainer, order))


class EpochSpy:
    """Wraps EpochTrainer.run: counts calls, records whether each epoch ended finite and the weights."""

    def __init__(self):
        self.finite = []
        self.params = []  # the weights before the first epoch, then after each one
        self.real = _engine.EpochTrainer.run

    def __call__(self, trainer, order):
        if not self.params:
            self.params.append(trainer.params.copy())
        loss_sum = self.real(trainer, order)
        self.finite.append(bool(np.isfinite(loss_sum) and np.isfinite(trainer.params).all()))
        self.params.append(trainer.params.copy())
        return loss_sum


@pytest.mark.parametrize("kind, solver, cause", DIVERGING)
def test_divergence_stops_at_once_with_a_clear_error_and_changes_nothing(
    monkeypatch, kind, solver, cause
):
    X, y = make_data(kind)
    params, transform = _diverging(cause, solver)
    Xbad = transform(X)
    their_error = exception_of(lambda: build(sk_nn, kind, solver=solver, **params).fit(Xbad, y))
    assert type(their_error) is ValueError

    spy = EpochSpy()
    spy_on_epochs(monkeypatch, spy)
    # a fresh model stays unfitted
    est = build(fastbp, kind, solver=solver, **params)
    before = dict(vars(est))
    with pytest.raises(ValueError, match=DIVERGED_MESSAGE) as info:
        quietly(est.fit, Xbad, y)
    assert vars(est) == before
    # it stopped at the first epoch that ended non-finite, and says which
    assert spy.finite[-1] is False and all(spy.finite[:-1])
    assert f"epoch {len(spy.finite)} " in str(info.value)

    # a fitted model (also when warm-started) is left exactly as it was
    for warm_start in (False, True):
        est = quietly(build(fastbp, kind, solver=solver).fit, X, y)
        est.set_params(warm_start=warm_start, **params)
        snap = snapshot(est, X)
        with pytest.raises(ValueError, match=DIVERGED_MESSAGE):
            quietly(est.fit, Xbad, y)
        assert_unchanged(est, snap, X)


DIVERGED_WARNING = re.compile(
    r"Training diverged in epoch \d+: (the training loss became (nan|inf|-inf)|the weights "
    r"became non-finite)\. Training stopped and kept the weights with the best validation "
    r"(score|loss)\. Try scaling X.*learning_rate_init"
)


@pytest.mark.parametrize("metric", ["score", "loss"])
@pytest.mark.parametrize("kind, solver, cause", DIVERGING)
def test_divergence_with_early_stopping_warns_and_keeps_the_best_weights(
    monkeypatch, kind, solver, cause, metric
):
    """The first epoch that ends non-finite is recorded, warned about and ends the fit,
    which keeps the finite weights of the best validation epoch (the starting ones if none)."""
    X, y = make_data(kind)
    params, transform = _diverging(cause, solver)
    spy = EpochSpy()
    spy_on_epochs(monkeypatch, spy)
    est = build(fastbp, kind, solver=solver, early_stopping=True, early_stopping_metric=metric, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.warns(ConvergenceWarning, match=DIVERGED_WARNING) as caught:
            est.fit(transform(X), y)
    assert f"epoch {len(spy.finite)}:" in str(caught[-1].message)

    assert spy.finite[-1] is False and all(spy.finite[:-1])
    n_epochs = len(spy.finite)
    assert est.n_iter_ == n_epochs
    assert len(est.loss_curve_) == len(est.validation_scores_) == n_epochs
    assert len(est.validation_loss_curve_) == n_epochs
    assert str(est.loss_) == str(est.loss_curve_[-1])
    n_train = len(X) - int(np.ceil(est.validation_fraction * len(X)))
    assert est.t_ == n_epochs * n_train

    if metric == "score":
        scores = np.array(est.validation_scores_, dtype=float)
    else:
        scores = -np.array(est.validation_loss_curve_, dtype=float)
    best, kept = -np.inf, spy.params[0]
    for epoch in range(n_epochs):
        if np.isfinite(spy.params[epoch + 1]).all() and scores[epoch] > best:
            best, kept = scores[epoch], spy.params[epoch + 1]
    assert_array_equal(est._network.params, kept)
    assert np.isfinite(est._network.params).all()
    watched = est.best_validation_score_ if metric == "score" else -est.best_validation_loss_
    assert watched == best
    est.predict(X)


@pytest.mark.parametrize("kind, solver, cause", DIVERGING)
def test_divergence_with_early_stopping_keeps_sklearns_weights(kind, solver, cause):
    """scikit-learn trains on to max_iter and keeps its best validation weights: the same
    weights, and the same curves as far as fastbp went. When its best weights are the
    non-finite ones of a diverged epoch, it raises; fastbp keeps its finite best."""
    X, y = make_data(kind)
    params, transform = _diverging(cause, solver)
    params["early_stopping"] = True
    ours = quietly(build(fastbp, kind, solver=solver, **params).fit, transform(X), y)
    theirs = build(sk_nn, kind, solver=solver, **params)
    try:
        quietly(theirs.fit, transform(X), y)
    except ValueError as exc:
        assert "non-finite parameter weights" in str(exc)
        assert np.nanmax(theirs.validation_scores_) > ours.best_validation_score_
        return
    n = ours.n_iter_
    assert theirs.n_iter_ == params["max_iter"] > n
    assert_allclose(ours.loss_curve_, theirs.loss_curve_[:n], rtol=RTOL)
    assert_allclose(ours.validation_scores_, theirs.validation_scores_[:n], rtol=RTOL)
    assert_allclose(ours.best_validation_score_, theirs.best_validation_score_, rtol=RTOL)
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        assert_allclose(a, b, rtol=RTOL)


@pytest.mark.parametrize("kind, solver, cause", DIVERGING)
def test_partial_fit_that_diverges_changes_nothing(kind, solver, cause):
    """partial_fit calls one after another until one diverges: that call changes nothing."""
    X, y = make_data(kind)
    params, transform = _diverging(cause, solver)
    est = build(fastbp, kind, solver=solver, **params)
    kwargs = {"classes": np.unique(y)} if kind == "MLPClassifier" else {}
    for calls in range(1, 51):
        before = dict(vars(est)) if calls == 1 else snapshot(est, X)
        try:
            quietly(est.partial_fit, transform(X), y, **kwargs)
        except ValueError as exc:
            assert DIVERGED_MESSAGE.search(str(exc)), str(exc)
            break
    else:
        pytest.fail("partial_fit never diverged")
    if calls == 1:
        assert not hasattr(est, "coefs_")
    else:
        assert_unchanged(est, before, X)


@pytest.mark.parametrize("kind", KINDS)
def test_lbfgs_with_a_non_finite_loss_raises_and_changes_nothing(kind):
    """L-BFGS on data so large the loss is NaN at the start must not return a
    'fitted' model with loss_ = nan (scikit-learn does, with only a generic
    ConvergenceWarning): issue 6 asks for a clear error naming what diverged
    and what to try, with the model left as it was."""
    X, y = make_data(kind)
    est = build(fastbp, kind, solver="lbfgs")
    with pytest.raises(ValueError, match=r"(?i)(loss|non-finite).*scal"):
        quietly(est.fit, X * 1e200, y)
    assert not hasattr(est, "coefs_")
    est = quietly(build(fastbp, kind, solver="lbfgs").fit, X, y)
    snap = snapshot(est, X)
    with pytest.raises(ValueError, match=r"(?i)(loss|non-finite).*scal"):
        quietly(est.fit, X * 1e200, y)
    assert_unchanged(est, snap, X)


# ---------------------------------------------------------------------------
# 3. KeyboardInterrupt
# ---------------------------------------------------------------------------


class InterruptAt:
    """Wraps EpochTrainer.run; raises KeyboardInterrupt on call ``k``, before or after the real epoch."""

    def __init__(self, k, when):
        self.k, self.when = k, when
        self.calls = 0
        self.real = _engine.EpochTrainer.run
        self.initial = None
        self.moved = None

    def __call__(self, trainer, order):
        self.calls += 1
        if self.calls == 1:
            self.initial = trainer.params.copy()
        if self.calls == self.k and self.when == "before":
            raise KeyboardInterrupt
        before = trainer.params.copy()
        result = self.real(trainer, order)
        if self.calls == self.k and self.when == "after":
            self.moved = not np.array_equal(before, trainer.params)
            raise KeyboardInterrupt
        return result


INTERRUPT_STATE_IGNORED = {"max_iter", "_random_state"}  # one more shuffle was drawn
NONE = freeze(None)


def _assert_same_state_as(est, clean, X):
    """Same attributes and values, weights and predictions (an attribute the rollback
    created as None where the clean fit has none is left to
    test_rollback_creates_no_attributes)."""
    a, b = snapshot(est, X), snapshot(clean, X)
    keys = (a["vars"].keys() | b["vars"].keys()) - INTERRUPT_STATE_IGNORED
    keys -= {k for k in a["vars"].keys() - b["vars"].keys() if a["vars"][k] == NONE}
    differ = [k for k in keys if a["vars"].get(k) != b["vars"].get(k)]
    assert not differ, f"differs from the clean fit: {differ}"
    assert a["weights"] == b["weights"] and a["outputs"] == b["outputs"]


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize(
    "kind, solver, k, early_stopping",
    [
        ("MLPClassifier", "sgd", 3, False),
        ("MLPClassifier", "adam", 4, False),
        ("MLPRegressor", "sgd", 4, False),
        ("MLPRegressor", "adam", 3, False),
        ("MLPClassifier", "adam", 5, True),
        ("MLPRegressor", "sgd", 5, True),
    ],
)
def test_interrupted_fit_keeps_the_complete_epochs(monkeypatch, kind, solver, k, early_stopping, when):
    X, y = make_data(kind, n_samples=60)
    params = dict(solver=solver, max_iter=10, early_stopping=early_stopping, batch_size=16)
    interrupt = InterruptAt(k, when)
    spy_on_epochs(monkeypatch, interrupt)
    est = build(fastbp, kind, **params)
    with pytest.warns(UserWarning, match=r"^Training interrupted by user\.$"):
        est.fit(X, y)
    monkeypatch.undo()
    assert interrupt.calls == k
    if when == "after":
        assert interrupt.moved  # the interrupted epoch had changed the weights
    assert est.n_iter_ == len(est.loss_curve_) == k - 1
    clean = quietly(build(fastbp, kind, **{**params, "max_iter": k - 1}).fit, X, y)
    _assert_same_state_as(est, clean, X)
    assert np.isfinite(est.predict(X).astype(float)).all()
    # the optimizer state was rolled back too: training continues identically
    for model in (est, clean):
        quietly(model.set_params(early_stopping=False).partial_fit, X, y)
    _assert_same_state_as(est, clean, X)


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("kind", KINDS)
def test_interrupt_in_the_first_epoch_keeps_the_initial_weights(monkeypatch, kind, when):
    X, y = make_data(kind)
    interrupt = InterruptAt(1, when)
    spy_on_epochs(monkeypatch, interrupt)
    est = build(fastbp, kind, solver="adam")
    with pytest.warns(UserWarning, match="Training interrupted by user."):
        est.fit(X, y)
    assert est.n_iter_ == 0 and est.loss_curve_ == [] and est.t_ == 0
    assert_array_equal(est._network.params, interrupt.initial)
    assert est.predict(X).shape == (len(X),)


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("kind", KINDS)
def test_interrupted_partial_fit_changes_nothing(monkeypatch, kind, when):
    X, y = make_data(kind)
    est = quietly(build(fastbp, kind, solver="sgd").fit, X, y)
    twin = quietly(build(fastbp, kind, solver="sgd").fit, X, y)
    before = snapshot(est, X)
    spy_on_epochs(monkeypatch, InterruptAt(1, when))
    with pytest.warns(UserWarning, match="Training interrupted by user."):
        est.partial_fit(X, y)
    monkeypatch.undo()
    after = snapshot(est, X)
    assert after["weights"] == before["weights"] and after["outputs"] == before["outputs"]
    for name in ("t_", "loss_curve_", "loss_", "best_loss_", "_optimizer", "_no_improvement_count"):
        assert after["vars"][name] == before["vars"][name], name
    quietly(est.partial_fit, X, y)
    quietly(twin.partial_fit, X, y)
    _assert_same_state_as(est, twin, X)


@pytest.mark.parametrize("early_stopping", [False, True])
def test_rollback_creates_no_attributes(monkeypatch, early_stopping):
    """An interrupted fit has the attributes of a fit that ran its complete epochs:
    the rollback must not create attributes (as None) that did not exist."""
    X, y = make_data("MLPClassifier", n_samples=60)
    params = dict(solver="adam", early_stopping=early_stopping)
    spy_on_epochs(monkeypatch, InterruptAt(3, "after"))
    est = build(fastbp, "MLPClassifier", **params)
    with pytest.warns(UserWarning, match="Training interrupted by user."):
        est.fit(X, y)
    monkeypatch.undo()
    clean = quietly(build(fastbp, "MLPClassifier", max_iter=2, **params).fit, X, y)
    assert sorted(vars(est)) == sorted(vars(clean))


def test_interrupt_warning_is_sklearns(monkeypatch):
    """scikit-learn warns the same message with the same category."""
    X, y = make_data("MLPRegressor")
    sk_mlp = sys.modules[sk_nn.MLPRegressor.__module__]

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sk_mlp.BaseMultilayerPerceptron, "_update_no_improvement_count", interrupt)
    spy_on_epochs(monkeypatch, InterruptAt(2, "after"))
    with warnings.catch_warnings(record=True) as theirs:
        warnings.simplefilter("always")
        build(sk_nn, "MLPRegressor").fit(X, y)
    with warnings.catch_warnings(record=True) as ours:
        warnings.simplefilter("always")
        build(fastbp, "MLPRegressor").fit(X, y)
    theirs = [(w.category, str(w.message)) for w in theirs if "interrupted" in str(w.message)]
    ours = [(w.category, str(w.message)) for w in ours if "interrupted" in str(w.message)]
    assert ours == theirs == [(UserWarning, "Training interrupted by user.")]


class InterruptingCallback(Recorder):
    """Raises KeyboardInterrupt once, in the begin or end hook of epoch ``k`` (1-based)."""

    def __init__(self, hook, k):
        super().__init__()
        self.hook, self.k = hook, k
        self.raised = False
        self.epoch_ends = []

    def _maybe_raise(self, hook, context):
        if context.task_name == "epoch" and hook == self.hook and not self.raised:
            if context.task_id == self.k - 1:
                self.raised = True
                raise KeyboardInterrupt

    def on_fit_task_begin(self, estimator, context):
        super().on_fit_task_begin(estimator, context)
        self._maybe_raise("begin", context)

    def on_fit_task_end(self, estimator, context):
        super().on_fit_task_end(estimator, context)
        if context.task_name == "epoch":
            self.epoch_ends.append(context.task_id)
        self._maybe_raise("end", context)


@needs_callbacks
@pytest.mark.parametrize("hook, completed", [("begin", 2), ("end", 3)])
@pytest.mark.parametrize("solver", STOCHASTIC)
@pytest.mark.parametrize("kind", KINDS)
def test_interrupt_from_a_callback(kind, solver, hook, completed):
    """Ctrl-C in a callback: at the start of epoch 3 keeps 2 epochs, at its end keeps 3."""
    X, y = make_data(kind)
    cb = InterruptingCallback(hook, 3)
    est = build(fastbp, kind, solver=solver, max_iter=10).set_callbacks(cb)
    with pytest.warns(UserWarning, match="Training interrupted by user."):
        est.fit(X, y)
    assert cb.raised
    assert est.n_iter_ == len(est.loss_curve_) == completed
    clean = quietly(build(fastbp, kind, solver=solver, max_iter=completed).fit, X, y)
    assert_same_model(est, clean)
    assert cb.log[0] == "setup" and cb.log[-1] == "teardown"
    assert est.predict(X).shape == (len(X),)


@needs_callbacks
def test_interrupt_in_an_epoch_end_hook_ends_that_epoch_once():
    """Each epoch's end hook runs once, also when it raised KeyboardInterrupt."""
    X, y = make_data("MLPClassifier")
    cb = InterruptingCallback("end", 3)
    est = build(fastbp, "MLPClassifier", max_iter=10).set_callbacks(cb)
    with pytest.warns(UserWarning, match="Training interrupted by user."):
        est.fit(X, y)
    assert cb.epoch_ends == [0, 1, 2]


@pytest.mark.parametrize("fitted", [False, True], ids=["fresh", "fitted"])
@pytest.mark.parametrize("kind", KINDS)
def test_interrupted_lbfgs_propagates_and_changes_nothing(monkeypatch, kind, fitted):
    """L-BFGS (SciPy) cannot stop between iterations: the interrupt propagates, as in
    scikit-learn, and the model is left exactly as before the call."""
    X, y = make_data(kind)
    est = build(fastbp, kind, solver="lbfgs")
    if fitted:
        quietly(est.fit, X, y)
    before = snapshot(est, X)
    real = _engine.Objective.__call__
    calls = []

    def objective(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(_engine.Objective, "__call__", objective)
    with pytest.raises(KeyboardInterrupt):
        est.fit(X, y)
    monkeypatch.undo()
    assert_unchanged(est, before, X)


# ---------------------------------------------------------------------------
# 4. Concurrency
# ---------------------------------------------------------------------------

CONCURRENT_CONFIGS = [
    (kind, solver, dtype, seed)
    for kind, solver, dtype, seed in [
        ("MLPClassifier", "adam", "float64", 0),
        ("MLPClassifier", "sgd", "float32", 1),
        ("MLPClassifier", "lbfgs", "float64", 2),
        ("MLPRegressor", "adam", "float32", 3),
        ("MLPRegressor", "sgd", "float64", 4),
        ("MLPRegressor", "lbfgs", "float32", 5),
    ]
]


def fit_config(config, n_samples=300):
    """Fit one configuration (kind, solver, dtype, seed) on its own data; return the model."""
    kind, solver, dtype, seed = config
    X, y = make_data(kind, n_samples=n_samples, n_features=8, seed=seed)
    est = build(fastbp, kind, solver=solver, hidden_layer_sizes=(16, 8), max_iter=15,
                random_state=seed, batch_size=32)
    return quietly(est.fit, X.astype(dtype), y)


def fit_fingerprint(config):
    """Fingerprint of :func:`fit_config` (importable by worker processes)."""
    return fingerprint(fit_config(config))


def all_fingerprints():
    """Fingerprints of every determinism configuration (run by fresh processes)."""
    return {"|".join(map(str, c)): fit_fingerprint(c) for c in DETERMINISM_CONFIGS}


def test_fits_in_threads_equal_serial_fits():
    serial = [fit_fingerprint(c) for c in CONCURRENT_CONFIGS]
    with ThreadPoolExecutor(max_workers=4) as pool:
        threaded = list(pool.map(fit_fingerprint, CONCURRENT_CONFIGS))
    assert threaded == serial
    # the same configuration many times at once
    with ThreadPoolExecutor(max_workers=4) as pool:
        same = list(pool.map(fit_fingerprint, [CONCURRENT_CONFIGS[0]] * 6))
    assert same == [serial[0]] * 6


def test_joblib_threading_backend_equals_serial_fits(monkeypatch):
    threads = set()
    real = _engine.EpochTrainer.run

    def spy(*args, **kwargs):
        threads.add(threading.get_ident())
        return real(*args, **kwargs)

    serial = [fit_fingerprint(c) for c in CONCURRENT_CONFIGS]
    spy_on_epochs(monkeypatch, spy)
    threads.clear()
    parallel = joblib.Parallel(n_jobs=2, backend="threading")(
        joblib.delayed(fit_fingerprint)(c) for c in CONCURRENT_CONFIGS
    )
    assert parallel == serial
    assert len(threads) >= 2 and threading.get_ident() not in threads


def test_grid_search_in_threads_equals_serial(monkeypatch):
    X, y = make_data("MLPClassifier", n_samples=90, seed=7)
    grid = {"alpha": [1e-4, 1e-1], "solver": ["adam", "lbfgs"], "hidden_layer_sizes": [(5,), (9,)]}

    def search(n_jobs):
        est = build(fastbp, "MLPClassifier", max_iter=20)
        return quietly(GridSearchCV(est, grid, cv=KFold(3), n_jobs=n_jobs).fit, X, y)

    serial = search(1)
    threads = set()
    real = _engine.EpochTrainer.run

    def spy(*args, **kwargs):
        threads.add(threading.get_ident())
        return real(*args, **kwargs)

    spy_on_epochs(monkeypatch, spy)
    with joblib.parallel_config(prefer="threads"):
        threaded = search(2)
    assert len(threads) >= 2  # the fits ran in this process, in several threads
    for key in serial.cv_results_:
        if key.startswith(("split", "mean_test", "rank_", "param")):
            assert_array_equal(threaded.cv_results_[key], serial.cv_results_[key], err_msg=key)
    assert threaded.best_params_ == serial.best_params_
    assert fingerprint(threaded.best_estimator_) == fingerprint(serial.best_estimator_)


def _big_regression():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(12000, 100))
    return X, X @ rng.normal(size=100)


def _main_thread_gaps(target):
    """Run ``target`` in a thread while this thread spins; return (elapsed, stamps)."""
    worker = threading.Thread(target=target)
    stamps = [time.perf_counter()]
    worker.start()
    while worker.is_alive():
        stamps.append(time.perf_counter())
    worker.join()
    stamps.append(time.perf_counter())
    return np.array(stamps)


def test_kernels_release_the_gil(monkeypatch):
    """While a thread is inside a training kernel, this thread keeps running Python.

    A kernel holding the GIL would freeze this thread for the whole epoch
    (checked below on ``sum(range(n))``, a C loop that holds the GIL).
    """
    X, y = _big_regression()
    epochs = []
    real = _engine.EpochTrainer.run

    def timed(*args, **kwargs):
        start = time.perf_counter()
        result = real(*args, **kwargs)
        epochs.append((start, time.perf_counter()))
        return result

    est = build(fastbp, "MLPRegressor", solver="sgd", hidden_layer_sizes=(256, 128), max_iter=2,
                batch_size=200, shuffle=False)
    quietly(est.fit, X[:200], y[:200])  # load the compiled kernels first
    monkeypatch.setattr(_engine.EpochTrainer, "run", timed)
    with threadpool_limits(1, user_api="blas"):
        stamps = _main_thread_gaps(lambda: quietly(est.fit, X, y))
        control = _main_thread_gaps(lambda: sum(range(20_000_000)))
    # the control: a GIL-holding call stops this thread for nearly all its duration
    assert np.diff(control).max() > 0.5 * (control[-1] - control[0])
    assert epochs
    for start, stop in epochs:
        duration = stop - start
        inside = stamps[(stamps > start) & (stamps < stop)]
        gaps = np.diff(np.concatenate([[start], inside, [stop]]))
        assert duration > 0.05, "epoch too short to tell"
        assert gaps.max() < 0.5 * duration, (
            f"this thread was blocked {gaps.max():.3f} s of a {duration:.3f} s epoch"
        )


def _two_thread_ratio(target, repeats=3):
    """Best wall time of two concurrent calls over the best time of one."""
    one = two = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        target()
        one = min(one, time.perf_counter() - start)
        workers = [threading.Thread(target=target) for _ in range(2)]
        start = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        two = min(two, time.perf_counter() - start)
    return two / one


def clone_fit(est, X, y):
    return clone(est).fit(X, y)


def test_two_fits_in_threads_use_two_cores(monkeypatch):
    """Two fits in threads take clearly less than twice one fit, where the machine
    can run two threads at once at all (measured first on NumPy's sort, which
    releases the GIL; on a loaded or single-core machine nothing can be shown).
    Each fit runs in one thread (``threadpool_limits(1)``): a fit alone
    would otherwise share its mini-batches between two threads."""
    if (os.cpu_count() or 1) < 2:
        pytest.skip("one core")
    X, y = _big_regression()
    X, y = X[:4000], y[:4000]
    data = np.random.RandomState(0).uniform(size=2_000_000)
    est = build(fastbp, "MLPRegressor", solver="sgd", hidden_layer_sizes=(128,), max_iter=3,
                batch_size=200, shuffle=False)
    quietly(est.fit, X[:200], y[:200])
    with threadpool_limits(1, user_api="blas"):
        reference = _two_thread_ratio(lambda: np.sort(data))
        if reference > 1.4:
            pytest.skip(f"this machine does not run two threads at once (np.sort: {reference:.2f}x)")
        ratio = _two_thread_ratio(lambda: quietly(clone_fit, est, X, y))
    assert ratio < 1.8, f"two fits in threads took {ratio:.2f}x one fit"



@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_fit_in_a_worker_process_matches_the_parent(method):
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {method} start method here")
    configs = CONCURRENT_CONFIGS[:2] + CONCURRENT_CONFIGS[-1:]
    parent = [fit_fingerprint(c) for c in configs]
    context = multiprocessing.get_context(method)
    with context.Pool(1) as pool:
        child = pool.map_async(fit_fingerprint, configs).get(timeout=240)
    assert child == parent


# ---------------------------------------------------------------------------
# 5. Determinism
# ---------------------------------------------------------------------------

DETERMINISM_CONFIGS = [
    (kind, solver, dtype, 11)
    for solver in SOLVERS
    for dtype in ("float32", "float64")
    for kind in KINDS
]


@pytest.mark.parametrize("config", DETERMINISM_CONFIGS, ids=lambda c: "-".join(c[:3]))
def test_same_random_state_gives_bit_identical_models(config):
    config = config[:3] + (11,)
    first, second = fit_config(config), fit_config(config)
    assert first.coefs_[0].dtype == np.dtype(config[2])
    assert_same_model(first, second)
    assert fingerprint(first) == fingerprint(second)
    # the fingerprint has teeth: another random_state gives another model
    assert fit_fingerprint(config[:3] + (12,)) != fingerprint(first)


def test_bit_identical_across_fresh_processes():
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); import test_trust; "
        "print(json.dumps(test_trust.all_fingerprints()))"
    )
    children = []
    for hash_seed in ("1", "2"):  # also a different str hashing in each child
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        children.append(subprocess.Popen(
            [sys.executable, "-c", code, str(TESTS_DIR)], env=env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        ))
    results = []
    for child in children:
        out, err = child.communicate(timeout=300)
        assert child.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    parent = all_fingerprints()
    assert results[0] == results[1] == parent

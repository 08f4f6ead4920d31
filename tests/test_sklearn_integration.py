"""fastbp's MLPs inside scikit-learn's ecosystem, and errors as scikit-learn gives them.

scikit-learn's ``MLPClassifier`` / ``MLPRegressor`` are the oracle: wherever a
behaviour is observable (an error's type and message, a warning, a dtype,
printed output, a prediction) the same input is given to both and the results
compared. What is checked here:

- meta-estimators and tools: ``Pipeline`` with ``StandardScaler``,
  ``GridSearchCV`` (``n_jobs=1``, ``n_jobs=2`` and the threading backend),
  ``clone``, ``pickle`` / ``joblib`` round trips (predictions identical and
  ``partial_fit`` continuing exactly as without the round trip);
- input handling: pandas DataFrames and feature names, sparse CSR / CSC
  input (same predictions as dense, never densified), dtypes (float32 trains
  in float32, float64 in float64, int and float16 converted to float64);
- errors: invalid parameters, ``hidden_layer_sizes`` with zeros, NaN / inf,
  wrong ``n_features``, ``partial_fit`` misuse, ``warm_start`` with other
  classes, too small a validation set, use before fit, non-finite weights,
  bad ``sample_weight``;
- outputs: probabilities, log-probabilities, multilabel and string targets,
  ``coefs_`` / ``intercepts_`` written by the user (replaced or edited in
  place) used by ``predict`` and by further training, ``verbose`` output.

Data sets are tiny and ``max_iter`` small: these tests check behaviour, not
accuracy (trajectory parity lives in ``test_parity.py``).
"""

import contextlib
import io
import pickle
import re
import tracemalloc
import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import sklearn
import sklearn.neural_network as sk_nn
from numpy.testing import assert_allclose, assert_array_equal
from scipy.special import expit, softmax
from sklearn.base import clone, is_classifier
from sklearn.exceptions import ConvergenceWarning, DataConversionWarning, NotFittedError
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import InvalidParameterError

import fastbp
from reference import STRING_LABELS_WITH_EARLY_STOPPING

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

# The two implementations, by the names the tests use.
APIS = {"fastbp": fastbp, "sklearn": sk_nn}
KINDS = ["MLPClassifier", "MLPRegressor"]
STOCHASTIC = ["sgd", "adam"]
SOLVERS = ["sgd", "adam", "lbfgs"]

# Float64 agreement between two runs of the same maths summed in different
# orders (see test_parity.py for the reasoning).
RTOL = 1e-7


# ---------------------------------------------------------------------------
# Data and helpers
# ---------------------------------------------------------------------------


def make_data(kind, n_samples=30, n_features=4, seed=0, n_classes=2):
    """Tiny ``X, y`` for a classifier (integer labels) or a regressor."""
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n_samples, n_features))
    z = X @ rng.normal(size=n_features) + 0.1 * rng.normal(size=n_samples)
    if kind == "MLPClassifier":
        # Balanced classes by quantile of z.
        edges = np.quantile(z, np.linspace(0, 1, n_classes + 1)[1:-1])
        y = np.searchsorted(edges, z)
    else:
        y = z
    return X, y


def build(api, kind, **params):
    """An estimator of ``kind`` from ``api`` ("fastbp" or "sklearn")."""
    defaults = dict(hidden_layer_sizes=(5,), max_iter=5, random_state=0)
    defaults.update(params)
    return getattr(APIS[api], kind)(**defaults)


def fit_kwargs(kind, y):
    """``classes`` for a classifier's first partial_fit, nothing for a regressor."""
    return {"classes": np.unique(y)} if kind == "MLPClassifier" else {}


def outputs(est, X):
    """Everything an estimator predicts for X, as a dict of arrays."""
    out = {"predict": est.predict(X)}
    if is_classifier(est):
        out["predict_proba"] = est.predict_proba(X)
    return out


def assert_same_outputs(a, b, exact=True, rtol=RTOL):
    assert a.keys() == b.keys()
    for key in a:
        if exact or a[key].dtype.kind not in "fc":
            assert_array_equal(a[key], b[key], err_msg=key)
        else:
            assert_allclose(a[key], b[key], rtol=rtol, atol=1e-12, err_msg=key)


def assert_same_weights(a, b):
    assert len(a.coefs_) == len(b.coefs_)
    for wa, wb in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        assert wa.dtype == wb.dtype
        assert_array_equal(wa, wb)


def raises_like_sklearn(exc_type, match, action, extended=False):
    """Run ``action(api)`` for both implementations; both must raise the same error.

    ``action`` receives "fastbp" or "sklearn". The fastbp error must match
    ``match``; the scikit-learn one must be of the same type with the same
    message (both estimators have the same class names, so messages that
    mention the estimator agree word for word). With ``extended``, fastbp's
    message must start with scikit-learn's and may say more after it.
    """
    with pytest.raises(exc_type, match=match) as ours:
        action("fastbp")
    with pytest.raises(exc_type) as theirs:
        action("sklearn")
    assert type(ours.value) is type(theirs.value)
    mine, ref = _sorted_sets(str(ours.value)), _sorted_sets(str(theirs.value))
    if extended:
        assert mine.startswith(ref) and len(mine) > len(ref)
    else:
        assert mine == ref
    return ours.value


def _sorted_sets(message):
    """``message`` with the items of every ``{...}`` sorted.

    Messages of InvalidParameterError print sets of options, whose order
    depends on how each set was built (scikit-learn's come from marshalled
    frozensets in .pyc files), not on their content.
    """
    return re.sub(
        r"\{([^{}]*)\}", lambda m: "{" + ", ".join(sorted(m.group(1).split(", "))) + "}", message
    )


def reference_forward(est, X):
    """Output activations computed in NumPy from ``est.coefs_`` / ``est.intercepts_``."""
    hidden = {
        "identity": lambda z: z,
        "relu": lambda z: np.maximum(z, 0),
        "tanh": np.tanh,
        "logistic": expit,
    }[est.activation]
    out = {
        "identity": lambda z: z,
        "logistic": expit,
        "softmax": lambda z: softmax(z, axis=1),
        "exp": np.exp,
    }[est.out_activation_]
    a = np.asarray(X, dtype=np.float64)
    n_layers = len(est.coefs_)
    for i, (W, b) in enumerate(zip(est.coefs_, est.intercepts_)):
        a = a @ W + b
        a = hidden(a) if i < n_layers - 1 else out(a)
    return a


# ---------------------------------------------------------------------------
# Pipeline, GridSearchCV, clone
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_pipeline_with_standard_scaler(kind):
    """A pipeline predicts what the estimator fitted on scaled data predicts."""
    X, y = make_data(kind)
    X = X * np.array([1.0, 100.0, 0.01, 5.0]) + 3.0
    pipe = make_pipeline(StandardScaler(), build("fastbp", kind, max_iter=10)).fit(X, y)

    scaler = StandardScaler().fit(X)
    alone = build("fastbp", kind, max_iter=10).fit(scaler.transform(X), y)
    assert_same_outputs(outputs(pipe, X), outputs(alone, scaler.transform(X)))
    assert pipe.score(X, y) == alone.score(scaler.transform(X), y)

    # ... and what scikit-learn's pipeline predicts.
    theirs = make_pipeline(StandardScaler(), build("sklearn", kind, max_iter=10)).fit(X, y)
    assert_same_outputs(outputs(pipe, X), outputs(theirs, X), exact=False)


@pytest.mark.parametrize("kind", KINDS)
def test_grid_search(kind):
    """GridSearchCV gives the same scores with 1 or 2 processes, threads, and as scikit-learn."""
    X, y = make_data(kind, n_samples=36)
    grid = {"alpha": [1e-4, 10.0], "hidden_layer_sizes": [(1,), (6,)]}
    cv = KFold(3, shuffle=True, random_state=0)

    def search(api, n_jobs):
        est = build(api, kind, solver="lbfgs", max_iter=15)
        return GridSearchCV(est, grid, cv=cv, n_jobs=n_jobs).fit(X, y)

    serial = search("fastbp", 1)
    parallel = search("fastbp", 2)
    with joblib.parallel_config(backend="threading", n_jobs=2):
        threaded = search("fastbp", None)
    reference = search("sklearn", 1)

    scores = serial.cv_results_["mean_test_score"]
    assert np.unique(scores).size > 1  # the grid makes a difference
    for other in (parallel, threaded):
        assert_array_equal(other.cv_results_["mean_test_score"], scores)
        assert other.best_params_ == serial.best_params_
        assert_same_outputs(outputs(other, X), outputs(serial, X))
    assert_allclose(scores, reference.cv_results_["mean_test_score"], rtol=1e-6)
    assert serial.best_params_ == reference.best_params_
    assert isinstance(serial.best_estimator_, getattr(fastbp, kind))


@pytest.mark.parametrize("kind", KINDS)
def test_clone(kind):
    """clone keeps parameters, drops fitted state, and the clone refits identically."""
    X, y = make_data(kind)
    est = build("fastbp", kind, solver="sgd", alpha=0.3, batch_size=7).fit(X, y)
    copy = clone(est)
    assert copy.get_params() == est.get_params()
    assert not hasattr(copy, "coefs_")
    assert not [a for a in vars(copy) if a.endswith("_") and not a.startswith("__")]
    with pytest.raises(NotFittedError):
        copy.predict(X)
    copy.fit(X, y)
    assert_same_weights(copy, est)
    assert copy.loss_curve_ == est.loss_curve_


# ---------------------------------------------------------------------------
# Pickle and joblib
# ---------------------------------------------------------------------------


def _pickle_round_trip(est):
    return pickle.loads(pickle.dumps(est))


def _joblib_round_trip(est, path):
    joblib.dump(est, path)
    return joblib.load(path)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("kind", KINDS)
def test_pickle_and_joblib_round_trip(kind, solver, dtype, tmp_path):
    """A loaded estimator predicts exactly what the original predicts."""
    X, y = make_data(kind)
    X = X.astype(dtype)
    est = build("fastbp", kind, solver=solver).fit(X, y)
    expected = outputs(est, X)
    for loaded in (_pickle_round_trip(est), _joblib_round_trip(est, tmp_path / "est.joblib")):
        assert type(loaded) is type(est)
        assert loaded.get_params() == est.get_params()
        assert_same_weights(loaded, est)
        assert loaded.coefs_[0].dtype == dtype
        assert_same_outputs(outputs(loaded, X), expected)
        assert loaded.score(X, y) == est.score(X, y)
    # The original is untouched by being pickled.
    assert_same_outputs(outputs(est, X), expected)


@pytest.mark.parametrize("random_state", ["int", "RandomState"])
@pytest.mark.parametrize("solver", STOCHASTIC)
@pytest.mark.parametrize("kind", KINDS)
def test_partial_fit_continues_identically_after_unpickling(kind, solver, random_state, tmp_path):
    """Optimizer state, counters and random state survive the round trip.

    Two estimators are trained alike; one is pickled (and joblib-dumped) after
    three partial_fit calls. The loaded copies, the pickled original and the
    never-pickled twin then continue with the same calls and must agree
    exactly.
    """
    X, y = make_data(kind)

    def new():
        seed = 0 if random_state == "int" else np.random.RandomState(0)
        est = build("fastbp", kind, solver=solver, random_state=seed, batch_size=8)
        for _ in range(3):
            est.partial_fit(X, y, **fit_kwargs(kind, y))
        return est

    never_pickled, est = new(), new()
    loaded = [_pickle_round_trip(est), _joblib_round_trip(est, tmp_path / "est.joblib")]
    for _ in range(4):
        for model in [never_pickled, est] + loaded:
            model.partial_fit(X, y)
    for model in [est] + loaded:
        assert_same_weights(model, never_pickled)
        assert model.loss_curve_ == never_pickled.loss_curve_
        assert model.t_ == never_pickled.t_
        assert_same_outputs(outputs(model, X), outputs(never_pickled, X))
    assert len(never_pickled.loss_curve_) == 7


@pytest.mark.parametrize("api", ["fastbp", "sklearn"])
@pytest.mark.parametrize("kind", KINDS)
def test_pickling_does_not_change_the_estimator(kind, api):
    """Pickling reads the estimator and leaves it as it was: same attributes,
    same coefs_ arrays, which further training keeps updating in place."""
    X, y = make_data(kind)
    est = build(api, kind, solver="sgd", learning_rate_init=0.1)
    est.partial_fit(X, y, **fit_kwargs(kind, y))
    before = dict(vars(est))
    held = est.coefs_[0]
    pickle.dumps(est)
    missing = sorted(set(before) - set(vars(est)))
    assert not missing, f"pickling removed {missing} from the estimator"
    assert vars(est).keys() == before.keys()
    assert all(vars(est)[name] is value for name, value in before.items())
    snapshot = held.copy()
    est.partial_fit(X, y)
    assert est.coefs_[0] is held
    assert not np.array_equal(held, snapshot)


@pytest.mark.parametrize("kind", KINDS)
def test_warm_start_fit_continues_identically_after_unpickling(kind):
    X, y = make_data(kind)
    est = build("fastbp", kind, solver="adam", warm_start=True).fit(X, y)
    loaded = _pickle_round_trip(est)
    est.fit(X, y)
    loaded.fit(X, y)
    assert_same_weights(loaded, est)
    assert loaded.loss_curve_ == est.loss_curve_
    assert len(est.loss_curve_) == 10


def test_joblib_loaded_regressor_learns_with_partial_fit(tmp_path):
    """Port of scikit-learn's test_mlp_loading_from_joblib_partial_fit (gh-19626)."""
    est = fastbp.MLPRegressor(
        hidden_layer_sizes=(42,), random_state=42, learning_rate_init=0.01, max_iter=200
    ).fit([[2]], [4])
    joblib.dump(est, tmp_path / "mlp.pkl")
    loaded = joblib.load(tmp_path / "mlp.pkl")
    for _ in range(200):
        loaded.partial_fit([[2]], [1])
    assert_allclose(loaded.predict([[2]]), [1], rtol=1e-4)


# ---------------------------------------------------------------------------
# pandas input and feature names
# ---------------------------------------------------------------------------


def _frame(X, columns=("alpha", "beta", "gamma", "delta")):
    return pd.DataFrame(X, columns=list(columns))


@pytest.mark.parametrize("kind", KINDS)
def test_dataframe_input_sets_feature_names(kind):
    X, y = make_data(kind)
    df = _frame(X)
    est = build("fastbp", kind).fit(df, pd.Series(y, name="target"))
    assert_array_equal(est.feature_names_in_, np.array(df.columns, dtype=object))
    assert est.feature_names_in_.dtype == object
    assert est.n_features_in_ == 4
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no feature-name warning for a matching frame
        from_frame = outputs(est, df)
    assert_same_outputs(from_frame, outputs(build("fastbp", kind).fit(X, y), X))

    # Fitting on an array afterwards forgets the names, as in scikit-learn.
    est.fit(X, y)
    assert not hasattr(est, "feature_names_in_")


@pytest.mark.parametrize("kind", KINDS)
def test_feature_name_warnings_as_sklearn(kind):
    """Array after a frame, frame after an array: the same UserWarning as scikit-learn."""
    X, y = make_data(kind)
    df = _frame(X)

    def messages(api, fit_X, predict_X):
        est = build(api, kind).fit(fit_X, y)
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            est.predict(predict_X)
        return [(w.category, str(w.message)) for w in record]

    ours = messages("fastbp", df, X)
    assert ours == [
        (UserWarning, f"X does not have valid feature names, but {kind} was fitted with feature names")
    ]
    assert ours == messages("sklearn", df, X)

    ours = messages("fastbp", X, df)
    assert ours == [(UserWarning, f"X has feature names, but {kind} was fitted without feature names")]
    assert ours == messages("sklearn", X, df)


@pytest.mark.parametrize("kind", KINDS)
def test_feature_name_mismatch_errors_as_sklearn(kind):
    X, y = make_data(kind)
    df = _frame(X)
    reordered = df[["beta", "alpha", "gamma", "delta"]]
    renamed = df.rename(columns={"alpha": "zeta"})

    def predict(frame):
        return lambda api: build(api, kind).fit(df, y).predict(frame)

    raises_like_sklearn(ValueError, "Feature names must be in the same order", predict(reordered))
    raises_like_sklearn(ValueError, "Feature names unseen at fit time:\n- zeta", predict(renamed))

    def partial_fit(api):
        est = build(api, kind, solver="sgd")
        est.partial_fit(df, y, **fit_kwargs(kind, y))
        est.partial_fit(renamed, y)

    raises_like_sklearn(ValueError, "The feature names should match", partial_fit)


@pytest.mark.parametrize("kind", KINDS)
def test_early_stopping_with_dataframe_keeps_feature_names(kind):
    """Port of scikit-learn's test_preserve_feature_names (gh-24846)."""
    rng = np.random.RandomState(0)
    X = pd.DataFrame(rng.randn(10, 2), columns=["colname_a", "colname_b"])
    y = pd.Series(np.full(10, 1), name="colname_y")
    est = getattr(fastbp, kind)(early_stopping=True, validation_fraction=0.2, max_iter=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)  # a UserWarning too
        est.fit(X, y)
    assert len(est.validation_scores_) == est.n_iter_


# ---------------------------------------------------------------------------
# Sparse input
# ---------------------------------------------------------------------------


class _NoDenseMixin:
    """A sparse matrix whose densification fails the test."""

    def toarray(self, *args, **kwargs):
        raise AssertionError("sparse input was densified (toarray)")

    def todense(self, *args, **kwargs):
        raise AssertionError("sparse input was densified (todense)")

    def __array__(self, *args, **kwargs):
        raise AssertionError("sparse input was densified (__array__)")


class NoDenseCSR(_NoDenseMixin, sp.csr_matrix):
    pass


class NoDenseCSC(_NoDenseMixin, sp.csc_matrix):
    pass


def _sparse_data(kind, seed=0):
    X, y = make_data(kind, seed=seed)
    X[np.random.RandomState(seed).uniform(size=X.shape) < 0.5] = 0.0
    return X, y


@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("kind", KINDS)
def test_sparse_input_same_as_dense(kind, solver, fmt):
    X, y = _sparse_data(kind)
    X_sparse = sp.csr_matrix(X).asformat(fmt)

    dense_fit = build("fastbp", kind, solver=solver).fit(X, y)
    # Predicting sparse rows with a dense-fitted model.
    assert_same_outputs(outputs(dense_fit, X_sparse), outputs(dense_fit, X), exact=False)
    # Fitting on sparse rows.
    sparse_fit = build("fastbp", kind, solver=solver).fit(X_sparse, y)
    for a, b in zip(sparse_fit.coefs_ + sparse_fit.intercepts_, dense_fit.coefs_ + dense_fit.intercepts_):
        assert_allclose(a, b, rtol=RTOL, atol=1e-12)
    assert_same_outputs(outputs(sparse_fit, X_sparse), outputs(dense_fit, X), exact=False)
    if solver != "lbfgs":
        assert_allclose(sparse_fit.loss_curve_, dense_fit.loss_curve_, rtol=RTOL)


@pytest.mark.parametrize("api", ["fastbp", "sklearn"])
@pytest.mark.parametrize("matrix", [NoDenseCSR, NoDenseCSC], ids=["csr", "csc"])
@pytest.mark.parametrize("solver", SOLVERS)
def test_sparse_input_is_never_densified(api, matrix, solver):
    """No toarray / todense / __array__ on sparse X in fit, partial_fit, predict, score."""
    X, y = _sparse_data("MLPClassifier")
    X_sparse = matrix(X)
    est = build(api, "MLPClassifier", solver=solver).fit(X_sparse, y)
    est.predict(X_sparse)
    est.predict_proba(X_sparse)
    est.score(X_sparse, y)
    if solver != "lbfgs":
        est.partial_fit(X_sparse, y)


@pytest.mark.parametrize("api", ["fastbp", "sklearn"])
@pytest.mark.parametrize("solver", STOCHASTIC)
def test_sparse_fit_memory_does_not_scale_with_dense_size(api, solver):
    """Training on wide sparse data allocates far less than the dense matrix.

    100 rows of 20,000 features with 5 non-zeros each: 16 MB dense, ~10 kB
    sparse, 40k parameters. Anything near the dense size (a dense copy of X
    or of a mini-batch of 100 rows) fails; scikit-learn runs as a control.
    """
    rng = np.random.RandomState(0)
    n_samples, n_features = 100, 20_000
    X = sp.random(n_samples, n_features, density=5 / n_features, format="csr", random_state=rng)
    y = rng.normal(size=n_samples)
    dense_nbytes = n_samples * n_features * 8
    est = build(api, "MLPRegressor", solver=solver, hidden_layer_sizes=(2,), max_iter=2)
    est.fit(X, y)  # compile / warm up outside the measurement
    tracemalloc.start()
    try:
        est.fit(X, y)
        est.predict(X)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < dense_nbytes / 4, f"peak {peak / 1e6:.1f} MB, dense X is {dense_nbytes / 1e6:.0f} MB"


# ---------------------------------------------------------------------------
# Dtypes
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("kind", KINDS)
def test_float_dtype_is_kept(kind, solver, dtype):
    """float32 data trains and predicts in float32, float64 in float64, for every solver.

    (scikit-learn's lbfgs returns float64 weights for float32 data, an
    artifact of unpacking SciPy's float64 result; fastbp keeps float32.)
    """
    X, y = make_data(kind)
    est = build("fastbp", kind, solver=solver).fit(X.astype(dtype), y)
    for w in est.coefs_ + est.intercepts_:
        assert w.dtype == dtype
    if kind == "MLPRegressor":
        assert est.predict(X.astype(dtype)).dtype == dtype
    else:
        assert est.predict_proba(X.astype(dtype)).dtype == dtype
    assert np.isfinite(est.loss_)
    # Training data of the other dtype (warm start, partial fit) keeps the model's dtype,
    # as scikit-learn's in-place updates do.
    other = np.float64 if dtype == np.float32 else np.float32
    if solver != "lbfgs":
        est.partial_fit(X.astype(other), y)
        assert all(w.dtype == dtype for w in est.coefs_ + est.intercepts_)


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, np.float16, bool])
@pytest.mark.parametrize("kind", KINDS)
def test_other_dtypes_converted_to_float64(kind, dtype):
    """Integer, boolean and float16 X train in float64, as if converted first (as scikit-learn)."""
    X, y = make_data(kind)
    X_other = (X > 0) if dtype is bool else (np.abs(X) * 3).astype(dtype)
    est = build("fastbp", kind).fit(X_other, y)
    ref = build("fastbp", kind).fit(X_other.astype(np.float64), y)
    theirs = build("sklearn", kind).fit(X_other, y)
    assert est.coefs_[0].dtype == theirs.coefs_[0].dtype == np.float64
    assert_same_weights(est, ref)
    assert_same_outputs(outputs(est, X_other), outputs(ref, X_other.astype(np.float64)))


@pytest.mark.parametrize("model_dtype", [np.float32, np.float64])
def test_prediction_dtype_as_sklearn(model_dtype):
    """The dtype of predictions for every input dtype equals scikit-learn's."""
    X, y = make_data("MLPRegressor")
    ours = build("fastbp", "MLPRegressor").fit(X.astype(model_dtype), y)
    theirs = build("sklearn", "MLPRegressor").fit(X.astype(model_dtype), y)
    for dtype in (np.int64, np.float16, np.float32, np.float64):
        X_in = (X * 3).astype(dtype)
        pred = ours.predict(X_in)
        assert pred.dtype == theirs.predict(X_in).dtype, dtype
        expected = reference_forward(ours, X_in).ravel()
        assert_allclose(pred, expected, rtol=1e-5 if pred.dtype == np.float32 else 1e-12)


# ---------------------------------------------------------------------------
# Errors, as scikit-learn raises them
# ---------------------------------------------------------------------------

INVALID_PARAMS = [
    ("hidden_layer_sizes", 0),
    ("hidden_layer_sizes", "10"),
    ("solver", "newton"),
    ("alpha", -1.0),
    ("batch_size", 0),
    ("batch_size", "big"),
    ("learning_rate_init", 0.0),
    ("power_t", -0.5),
    ("max_iter", 0),
    ("max_iter", 2.5),
    ("shuffle", "yes"),
    ("random_state", "seed"),
    ("tol", -1e-4),
    ("verbose", "loud"),
    ("warm_start", 1.5),
    ("momentum", 1.5),
    ("nesterovs_momentum", None),
    ("early_stopping", "no"),
    ("validation_fraction", 1.0),
    ("beta_1", 1.0),
    ("beta_2", -0.1),
    ("epsilon", 0.0),
    ("n_iter_no_change", 0),
    ("n_iter_no_change", -np.inf),
    ("max_fun", 0),
]


@pytest.mark.parametrize("name, value", INVALID_PARAMS, ids=[f"{n}={v!r}" for n, v in INVALID_PARAMS])
@pytest.mark.parametrize("kind", KINDS)
def test_invalid_parameter(kind, name, value):
    X, y = make_data(kind)
    raises_like_sklearn(
        InvalidParameterError,
        f"The '{name}' parameter of {kind} must be",
        lambda api: build(api, kind, **{name: value}).fit(X, y),
    )


@pytest.mark.parametrize("kind", KINDS)
def test_invalid_learning_rate_lists_scikit_learns_schedules_and_cosine(kind):
    X, y = make_data(kind)
    with pytest.raises(InvalidParameterError, match=f"The 'learning_rate' parameter of {kind} must be") as ours:
        build("fastbp", kind, learning_rate="linear").fit(X, y)
    with pytest.raises(InvalidParameterError) as theirs:
        build("sklearn", kind, learning_rate="linear").fit(X, y)
    assert _sorted_sets(str(ours.value)) == _sorted_sets(str(theirs.value).replace("'constant'", "'constant', 'cosine'"))


@pytest.mark.parametrize("kind", KINDS)
def test_invalid_parameter_in_partial_fit(kind):
    X, y = make_data(kind)
    raises_like_sklearn(
        InvalidParameterError,
        f"The 'alpha' parameter of {kind} must be",
        lambda api: build(api, kind, solver="sgd", alpha=-1).partial_fit(X, y, **fit_kwargs(kind, y)),
    )


@pytest.mark.parametrize("kind", KINDS)
def test_invalid_activation_lists_scikit_learns_and_fastbps_activations(kind):
    X, y = make_data(kind)
    with pytest.raises(InvalidParameterError, match=f"The 'activation' parameter of {kind} must be") as ours:
        build("fastbp", kind, activation="cube").fit(X, y)
    with pytest.raises(InvalidParameterError) as theirs:
        build("sklearn", kind, activation="cube").fit(X, y)
    added = ["'gelu'", "'leaky_relu'", "'silu'", "'softplus'"]
    expected = _sorted_sets(str(theirs.value).replace("'identity'", ", ".join(["'identity'", *added])))
    assert _sorted_sets(str(ours.value)) == expected.replace("}.", "} or an instance of 'tuple'.")


def test_invalid_regression_loss_lists_scikit_learns_and_fastbps_losses():
    X, y = make_data("MLPRegressor")
    with pytest.raises(InvalidParameterError, match="The 'loss' parameter of MLPRegressor must be a str among") as ours:
        build("fastbp", "MLPRegressor", loss="cube").fit(X, y)
    with pytest.raises(InvalidParameterError) as theirs:
        build("sklearn", "MLPRegressor", loss="cube").fit(X, y)
    expected = str(theirs.value).replace("'poisson'", "'absolute_error', 'huber', 'poisson'")
    assert _sorted_sets(str(ours.value)) == _sorted_sets(expected)


@pytest.mark.parametrize("sizes", [(3, 0), [0], (4, -1, 2)])
@pytest.mark.parametrize("kind", KINDS)
def test_hidden_layer_sizes_with_zero(kind, sizes):
    X, y = make_data(kind)
    raises_like_sklearn(
        ValueError,
        re.escape(f"hidden_layer_sizes must be > 0, got {list(sizes)}."),
        lambda api: build(api, kind, hidden_layer_sizes=sizes).fit(X, y),
    )


@pytest.mark.parametrize("bad, message", [(np.nan, "Input X contains NaN"), (np.inf, "Input X contains infinity")])
@pytest.mark.parametrize("method", ["fit", "partial_fit", "predict"])
@pytest.mark.parametrize("kind", KINDS)
def test_non_finite_X(kind, method, bad, message):
    X, y = make_data(kind)
    X_bad = X.copy()
    X_bad[3, 1] = bad

    def action(api):
        est = build(api, kind, solver="sgd")
        if method == "fit":
            est.fit(X_bad, y)
        elif method == "partial_fit":
            est.partial_fit(X_bad, y, **fit_kwargs(kind, y))
        else:
            est.fit(X, y).predict(X_bad)

    raises_like_sklearn(ValueError, message, action)


@pytest.mark.parametrize("kind", KINDS)
def test_finite_X_whose_sum_overflows_is_accepted_as_sklearn(kind):
    """The sum scikit-learn tests first overflows, yet every value is finite: no error, no warning."""
    X, y = make_data(kind)
    X_huge = np.full((2, 4), np.finfo(np.float64).max)
    models = {api: build(api, kind).fit(X, y) for api in APIS}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        models["fastbp"].predict(X_huge)
    with np.errstate(all="ignore"):  # scikit-learn's products overflow, and NumPy says so
        models["sklearn"].predict(X_huge)


_HUGE = np.finfo(np.float64).max


# (X, y) given to a fit: the fast path of fastbp's input check must return
# what scikit-learn's validate_data returns, or raise what it raises
TRAINING_INPUTS = {
    "float64-C-float-y": lambda X, y: (X, y.astype(np.float64)),
    "float32-F-int-y": lambda X, y: (np.asfortranarray(X, dtype=np.float32), y.astype(np.int32)),
    "2-D-y": lambda X, y: (X, np.column_stack([y, y]).astype(np.float64)),
    "int-X": lambda X, y: (X.astype(np.int64), y),
    "list-X": lambda X, y: (X.tolist(), y),
    "X-sum-overflows": lambda X, y: (np.full_like(X, _HUGE), y),
    "y-sum-overflows": lambda X, y: (X, np.full(len(y), _HUGE)),
    "y-inf": lambda X, y: (X, np.where(np.arange(len(y)) == 2, np.inf, y)),
    "X-nan": lambda X, y: (np.where(np.arange(X.size).reshape(X.shape) == 5, np.nan, X), y),
    "y-too-short": lambda X, y: (X, y[:-1]),
    "3-D-y": lambda X, y: (X, y.reshape(-1, 1, 1)),
    "y-without-columns": lambda X, y: (X, np.empty((len(y), 0))),
    "bool-y": lambda X, y: (X, y > 0),
    "3-columns": lambda X, y: (X[:, :3].copy(), y),
}


@pytest.mark.parametrize("named", [False, True], ids=["unnamed", "fitted-with-names"])
@pytest.mark.parametrize("reset", [True, False], ids=["reset", "no-reset"])
@pytest.mark.parametrize("case", list(TRAINING_INPUTS))
@pytest.mark.parametrize("kind", KINDS)
def test_training_input_check_returns_what_validate_data_returns(kind, case, reset, named):
    from sklearn.utils.validation import validate_data

    X, y = TRAINING_INPUTS[case](*make_data(kind))
    ours, theirs = build("fastbp", kind), build("fastbp", kind)
    for est in (ours, theirs):
        est.n_features_in_ = 3 if reset else 4  # a reset must set it to X's 4
        if named:
            est.feature_names_in_ = np.array(["a", "b", "c", "d"], dtype=object)
    numeric = {"y_numeric": True} if kind == "MLPRegressor" else {}

    def check(est):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if est is ours:
                out = est._validate_training_input(X, y, reset, **numeric)
            else:
                out = validate_data(
                    est, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                    dtype=(np.float64, np.float32), reset=reset, **numeric,
                )
        return out, [str(w.message) for w in caught]

    try:
        (X_want, y_want), warned = check(theirs)
    except ValueError as exc:
        with pytest.raises(type(exc), match=re.escape(str(exc))):
            check(ours)
        return
    (X_got, y_got), got_warned = check(ours)
    assert got_warned == warned
    for got, want in ((X_got, X_want), (y_got, y_want)):
        assert got.dtype == want.dtype and got.flags.c_contiguous == want.flags.c_contiguous
        assert_array_equal(got, want)
    assert ours.n_features_in_ == theirs.n_features_in_
    assert hasattr(ours, "feature_names_in_") == hasattr(theirs, "feature_names_in_")


@pytest.mark.parametrize("kind", KINDS)
def test_assume_finite_skips_the_check_as_sklearn(kind):
    X, y = make_data(kind)
    X_bad = X.copy()
    X_bad[3, 1] = np.nan
    models = {api: build(api, kind).fit(X, y) for api in APIS}
    with sklearn.config_context(assume_finite=True), np.errstate(invalid="ignore"):
        ours, theirs = (outputs(models[api], X_bad) for api in APIS)
    assert_same_outputs(ours, theirs, exact=False)


def test_non_finite_y():
    X, y = make_data("MLPRegressor")
    y[2] = np.nan
    raises_like_sklearn(
        ValueError, "Input y contains NaN", lambda api: build(api, "MLPRegressor").fit(X, y)
    )


def _kind_methods(methods):
    """(kind, method) pairs; regressors have no predict_proba / predict_log_proba."""
    return [
        (kind, method)
        for kind in KINDS
        for method in methods
        if kind == "MLPClassifier" or not method.startswith("predict_")
    ]


@pytest.mark.parametrize(
    "kind, method", _kind_methods(["predict", "predict_proba", "predict_log_proba", "score", "partial_fit"])
)
def test_wrong_number_of_features(kind, method):
    X, y = make_data(kind)

    def action(api):
        est = build(api, kind, solver="sgd").fit(X, y)
        if method in ("score", "partial_fit"):
            getattr(est, method)(X[:, :3], y)
        else:
            getattr(est, method)(X[:, :3])

    raises_like_sklearn(
        ValueError, f"X has 3 features, but {kind} is expecting 4 features as input", action
    )


def test_partial_fit_unseen_label():
    X, y = make_data("MLPClassifier")

    def action(api):
        est = build(api, "MLPClassifier", solver="sgd")
        est.partial_fit(X, y, classes=[0, 1])
        est.partial_fit(X, y + 1)

    raises_like_sklearn(ValueError, re.escape("`y` has classes not in `self.classes_`"), action)


def test_partial_fit_unseen_label_given_in_classes_is_learnt():
    """Port of scikit-learn's test_partial_fit_unseen_classes (gh-6994)."""
    clf = fastbp.MLPClassifier(random_state=0)
    clf.partial_fit([[1], [2], [3]], ["a", "b", "c"], classes=["a", "b", "c", "d"])
    clf.partial_fit([[4]], ["d"])
    assert_array_equal(clf.classes_, ["a", "b", "c", "d"])
    assert clf.predict_proba([[1]]).shape == (1, 4)
    assert clf.score([[1], [2], [3], [4]], ["a", "b", "c", "d"]) > 0


def test_partial_fit_other_classes_than_first_call():
    X, y = make_data("MLPClassifier")

    def action(api):
        est = build(api, "MLPClassifier", solver="sgd")
        est.partial_fit(X, y, classes=[0, 1])
        est.partial_fit(X, y, classes=[0, 2])

    raises_like_sklearn(ValueError, "is not the same as on last call to partial_fit", action)


def test_partial_fit_without_classes_on_first_call():
    X, y = make_data("MLPClassifier")
    raises_like_sklearn(
        ValueError,
        "classes must be passed on the first call to partial_fit",
        lambda api: build(api, "MLPClassifier", solver="sgd").partial_fit(X, y),
    )


@pytest.mark.parametrize("fitted_first", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_partial_fit_with_early_stopping(kind, fitted_first):
    """Fresh or after fit (gh-25693), partial_fit refuses early_stopping=True."""
    X, y = make_data(kind)

    def action(api):
        est = build(api, kind, early_stopping=True)
        if fitted_first:
            est.fit(X, y)
        est.partial_fit(X, y, **fit_kwargs(kind, y))

    raises_like_sklearn(ValueError, "partial_fit does not support early_stopping=True", action)


@pytest.mark.parametrize("kind", KINDS)
def test_no_partial_fit_for_lbfgs(kind):
    """partial_fit is hidden for lbfgs, with scikit-learn's AttributeError.

    scikit-learn 1.9's MLPRegressor passes ``est._check_solver`` to
    ``available_if`` without calling it, so its lbfgs regressor still shows
    a partial_fit; fastbp follows the intended behaviour of the classifier.
    """
    est = getattr(fastbp, kind)(solver="lbfgs")
    assert not hasattr(est, "partial_fit")
    with pytest.raises(AttributeError, match=f"This '{kind}' has no attribute 'partial_fit'") as info:
        est.partial_fit
    assert "lbfgs is not stochastic" in str(info.value.__cause__)
    assert hasattr(getattr(fastbp, kind)(solver="sgd"), "partial_fit")
    if kind == "MLPClassifier":
        assert not hasattr(sk_nn.MLPClassifier(solver="lbfgs"), "partial_fit")
    # Switching the solver after construction switches partial_fit.
    est.set_params(solver="adam")
    assert hasattr(est, "partial_fit")


@pytest.mark.parametrize("y_new", [[0] * 15 + [1] * 14 + [2], [0] * 15 + [2] * 15, [1] * 30])
def test_warm_start_with_other_classes(y_new):
    X, y = make_data("MLPClassifier")

    def action(api):
        est = build(api, "MLPClassifier", solver="lbfgs", warm_start=True).fit(X, y)
        est.fit(X, np.array(y_new))

    raises_like_sklearn(
        ValueError,
        re.escape(
            "warm_start can only be used where `y` has the same classes as in the previous "
            f"call to fit. Previously got [0 1], `y` has {np.unique(y_new)}"
        ),
        action,
    )


def test_validation_set_too_small():
    """Port of scikit-learn's test_minimum_input_sample_size."""
    rng = np.random.RandomState(0)
    X, y = rng.normal(size=(2, 5)), rng.normal(size=2)
    raises_like_sklearn(
        ValueError,
        "The validation set is too small",
        lambda api: build(api, "MLPRegressor", early_stopping=True).fit(X, y),
    )
    # ceil(0.1 * 9) = 1 validation row
    X, y = rng.normal(size=(9, 3)), rng.normal(size=9)
    raises_like_sklearn(
        ValueError,
        "The validation set is too small",
        lambda api: build(api, "MLPRegressor", early_stopping=True, validation_fraction=0.1).fit(X, y),
    )


def test_early_stopping_split_is_stratified():
    """Port of scikit-learn's test_early_stopping_stratified."""
    X = [[1, 2], [2, 3], [3, 4], [4, 5]]
    y = [0, 0, 0, 1]
    raises_like_sklearn(
        ValueError,
        # scikit-learn 1.9's wording, or 1.7's
        r"The least populated (classes in y have only 1 member.*Classes with too few members are: \['True'\]"
        r"|class in y has only 1 member)",
        lambda api: build(api, "MLPClassifier", early_stopping=True).fit(X, y),
    )


@pytest.mark.parametrize("kind, method", _kind_methods(["predict", "predict_proba", "predict_log_proba", "score"]))
def test_not_fitted(kind, method):
    X, y = make_data(kind)
    args = (X, y) if method == "score" else (X,)
    raises_like_sklearn(
        NotFittedError,
        f"This {kind} instance is not fitted yet",
        lambda api: getattr(build(api, kind), method)(*args),
    )


NON_FINITE_MESSAGE = (
    "Solver produced non-finite parameter weights. The input data may contain large"
    " values and need to be preprocessed."
)


@pytest.mark.parametrize("solver", STOCHASTIC)
def test_non_finite_weights_from_huge_X(solver):
    """Port of scikit-learn's test_nonfinite_params."""
    rng = np.random.RandomState(0)
    X = np.finfo(np.float64).max * rng.uniform(size=(10, 2))
    y = rng.standard_normal(size=10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # overflow in scikit-learn's NumPy
        raises_like_sklearn(
            ValueError,
            re.escape(NON_FINITE_MESSAGE),
            lambda api: getattr(APIS[api], "MLPRegressor")(solver=solver, max_iter=5).fit(X, y),
            extended=True,
        )


@pytest.mark.parametrize("kind", KINDS)
def test_non_finite_weights_from_huge_learning_rate(kind):
    """Both raise ValueError; fastbp stops at the first epoch whose loss or weights
    are non-finite (scikit-learn trains on to max_iter first), and says which."""
    X, y = make_data(kind)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(ValueError, match=re.escape(NON_FINITE_MESSAGE)):
            build("sklearn", kind, solver="sgd", learning_rate_init=1e10, max_iter=50,
                  n_iter_no_change=np.inf).fit(X, y)
        model = build("fastbp", kind, solver="sgd", learning_rate_init=1e10, max_iter=50,
                      n_iter_no_change=np.inf)
        with pytest.raises(
            ValueError,
            match=r"(Solver produced non-finite parameter weights|The training loss became "
            r"(inf|nan)).*Training diverged in epoch \d+ and stopped",
        ):
            model.fit(X, y)
    assert not hasattr(model, "coefs_")


@pytest.mark.parametrize("kind", KINDS)
def test_non_finite_weights_from_large_X(kind):
    X, y = make_data(kind)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        raises_like_sklearn(
            ValueError,
            re.escape(NON_FINITE_MESSAGE),
            lambda api: build(api, kind, solver="sgd").fit(X * 1e200, y),
            extended=True,
        )


@pytest.mark.parametrize("solver", SOLVERS)
def test_sample_weight_of_wrong_length(solver):
    X, y = make_data("MLPRegressor")
    raises_like_sklearn(
        ValueError,
        re.escape("sample_weight.shape == (29,), expected (30,)!"),
        lambda api: build(api, "MLPRegressor", solver=solver).fit(X, y, sample_weight=np.ones(29)),
    )


def test_sample_weight_2d_or_nan():
    X, y = make_data("MLPRegressor")
    raises_like_sklearn(
        ValueError,
        "Sample weights must be 1D array or scalar",
        lambda api: build(api, "MLPRegressor").fit(X, y, sample_weight=np.ones((30, 1))),
    )
    raises_like_sklearn(
        ValueError,
        "Input sample_weight contains NaN",
        lambda api: build(api, "MLPRegressor").fit(X, y, sample_weight=np.full(30, np.nan)),
    )


@pytest.mark.parametrize("solver", SOLVERS)
def test_negative_sample_weight_as_sklearn(solver):
    """scikit-learn's MLPs accept negative weights (no error); fastbp must train the same."""
    X, y = make_data("MLPRegressor")
    sw = np.random.RandomState(1).uniform(-0.5, 1.0, size=30)
    assert (sw < 0).any()
    ours = build("fastbp", "MLPRegressor", solver=solver, max_iter=3).fit(X, y, sample_weight=sw)
    theirs = build("sklearn", "MLPRegressor", solver=solver, max_iter=3).fit(X, y, sample_weight=sw)
    assert_allclose(ours.loss_, theirs.loss_, rtol=1e-6)
    assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("method", ["fit", "partial_fit"])
@pytest.mark.parametrize("shuffle,batch_size,weights", [
    (False, 1, np.r_[np.ones(5), 0.0, np.ones(24)]),  # one row of weight zero, alone in its batch
    (False, 2, np.r_[1.0, -1.0, np.ones(28)]),  # weights that cancel
    (True, 3, np.r_[np.zeros(20), np.ones(10)]),  # the shuffle brings three zeros together
])
def test_mini_batch_weights_summing_to_zero_raise_as_sklearn(method, shuffle, batch_size, weights):
    X, y = make_data("MLPRegressor")
    raises_like_sklearn(
        ZeroDivisionError,
        "Weights sum to zero",
        lambda api: getattr(build(api, "MLPRegressor", shuffle=shuffle, batch_size=batch_size, max_iter=5),
                            method)(X, y, sample_weight=weights),
    )


@pytest.mark.parametrize("kind", KINDS)
def test_column_vector_y_warns_as_sklearn(kind):
    X, y = make_data(kind)

    def warning(api):
        with pytest.warns(DataConversionWarning) as record:
            build(api, kind).fit(X, y.reshape(-1, 1))
        return [str(w.message) for w in record if w.category is DataConversionWarning]

    ours = warning("fastbp")
    assert ours and ours == warning("sklearn")


# ---------------------------------------------------------------------------
# Outputs
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("n_classes", [2, 3, 5])
@pytest.mark.parametrize("solver", SOLVERS)
def test_predict_proba_rows_sum_to_one(solver, n_classes):
    X, y = make_data("MLPClassifier", n_samples=40, n_classes=n_classes)
    est = build("fastbp", "MLPClassifier", solver=solver).fit(X, y)
    proba = est.predict_proba(X)
    assert proba.shape == (40, n_classes)
    assert ((proba >= 0) & (proba <= 1)).all()
    assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    assert_array_equal(est.predict(X), est.classes_[proba.argmax(axis=1)])
    assert_allclose(proba, reference_forward(est, X) if n_classes > 2 else np.column_stack(
        [1 - reference_forward(est, X)[:, 0], reference_forward(est, X)[:, 0]]
    ), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("kind", KINDS)
def test_prediction_of_any_layout_and_float_dtype_as_sklearn(kind):
    X, y = make_data(kind)
    models = {api: build(api, kind).fit(X, y) for api in APIS}
    strided = np.hstack([X, X])[:, ::2]
    for X_new in [np.asfortranarray(X), strided, X[::-1], X.astype(np.float32)]:
        ours, theirs = (outputs(models[api], X_new) for api in APIS)
        assert_same_outputs(ours, theirs, exact=False)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("labels", [[0, 1], ["no", "yes"], [3, 1, 2], ["d", "a", "c", "b"]])
def test_predicted_class_at_ties_and_at_the_threshold_as_sklearn(labels, dtype):
    """Outputs tied for the largest (multiclass) or exactly 0.5 (binary): the class scikit-learn picks."""
    X, y_index = make_data("MLPClassifier", n_samples=40, n_classes=len(labels))
    X = X.astype(dtype)
    y = np.asarray(labels)[y_index]
    models = {api: build(api, "MLPClassifier").fit(X, y) for api in APIS}
    for est in models.values():  # equal outputs in every row: 0.5 for binary
        est.coefs_[-1][...] = 0
        est.intercepts_[-1][...] = 0
        if len(labels) > 2:  # the second and third classes tie above the others
            est.intercepts_[-1][1:3] = 1
    ours, theirs = (models[api].predict(X) for api in APIS)
    assert_array_equal(ours, theirs)
    expected = models["sklearn"].classes_[0 if len(labels) == 2 else 1]
    assert ours.dtype == theirs.dtype and (ours == expected).all()


@pytest.mark.parametrize("task", ["binary", "multiclass", "multilabel"])
def test_predict_log_proba_is_log_of_predict_proba(task):
    X, y = make_data("MLPClassifier", n_samples=40, n_classes=3 if task == "multiclass" else 2)
    if task == "multilabel":
        y = np.column_stack([y, 1 - y, X[:, 0] > 0]).astype(int)
    est = build("fastbp", "MLPClassifier", max_iter=10).fit(X, y)
    proba = est.predict_proba(X)
    log_proba = est.predict_log_proba(X)
    assert log_proba.shape == proba.shape
    assert_allclose(log_proba, np.log(proba), rtol=1e-12)
    assert_array_equal(log_proba.argmax(axis=1), proba.argmax(axis=1))


@pytest.mark.parametrize("solver", SOLVERS)
def test_multilabel(solver):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(40, 4))
    Y = (X[:, :3] + 0.2 * rng.normal(size=(40, 3)) > 0).astype(int)
    Y[:, 2] = 1 - Y[:, 0]  # a label set no single class can express
    est = build("fastbp", "MLPClassifier", solver=solver, max_iter=20).fit(X, Y)
    theirs = build("sklearn", "MLPClassifier", solver=solver, max_iter=20).fit(X, Y)
    assert est.out_activation_ == theirs.out_activation_ == "logistic"
    assert_array_equal(est.classes_, theirs.classes_)
    pred = est.predict(X)
    proba = est.predict_proba(X)
    assert pred.shape == proba.shape == (40, 3)
    assert pred.dtype == theirs.predict(X).dtype
    assert_array_equal(pred, (proba > 0.5).astype(int))
    assert not np.allclose(proba.sum(axis=1), 1.0)  # independent labels, no softmax
    assert_allclose(proba, theirs.predict_proba(X), rtol=1e-6)
    if solver != "lbfgs":
        est.partial_fit(X, Y)
        theirs.partial_fit(X, Y)
        assert_allclose(est.predict_proba(X), theirs.predict_proba(X), rtol=1e-6)


@pytest.mark.parametrize("early_stopping", [False, True])
@pytest.mark.parametrize("labels", [["cat", "dog"], ["class_a", "class_b", "class_c"]])
def test_string_labels(labels, early_stopping):
    X, y = make_data("MLPClassifier", n_samples=45, n_classes=len(labels))
    y_str = np.array(labels, dtype=object)[y]
    est = build("fastbp", "MLPClassifier", early_stopping=early_stopping, max_iter=8).fit(X, y_str)
    if early_stopping and not STRING_LABELS_WITH_EARLY_STOPPING:
        pytest.skip("scikit-learn's MLPClassifier raises TypeError here (scikit-learn#33760)")
    theirs = build("sklearn", "MLPClassifier", early_stopping=early_stopping, max_iter=8).fit(X, y_str)
    assert_array_equal(est.classes_, sorted(labels))
    pred = est.predict(X)
    assert pred.dtype == theirs.predict(X).dtype
    assert set(pred) <= set(labels)
    assert_array_equal(pred, theirs.predict(X))
    assert 0.0 <= est.score(X, y_str) <= 1.0
    if early_stopping:
        assert len(est.validation_scores_) == est.n_iter_
        assert np.isfinite(est.validation_scores_).all()
    # partial_fit with string classes
    pf = build("fastbp", "MLPClassifier", solver="sgd")
    pf.partial_fit(X, y_str, classes=np.array(labels, dtype=object))
    assert_array_equal(pf.classes_, sorted(labels))
    assert set(pf.predict(X)) <= set(labels)


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("kind", KINDS)
def test_assigned_coefs_are_used_by_predict(kind, solver):
    """Replacing coefs_ / intercepts_ (whole lists or single layers) changes predictions."""
    X, y = make_data(kind)
    est = build("fastbp", kind, solver=solver, hidden_layer_sizes=(5, 3)).fit(X, y)
    rng = np.random.RandomState(1)

    # Zero weights: every row gets the same output, from the intercepts alone.
    est.coefs_ = [c * 0 for c in est.coefs_]
    assert_allclose(reference_forward(est, X), reference_forward(est, X[:1]).repeat(30, axis=0))
    assert_allclose(est.predict(X), est.predict(X[:1]).repeat(30, axis=0))
    if kind == "MLPRegressor":
        assert_allclose(est.predict(X), est.intercepts_[-1][0], rtol=1e-12)

    # New random weights and intercepts, as new lists.
    est.coefs_ = [rng.normal(size=c.shape) for c in est.coefs_]
    est.intercepts_ = [rng.normal(size=b.shape) for b in est.intercepts_]
    _assert_predicts_from_weights(est, X)

    # One layer replaced inside the existing list.
    est.coefs_[1] = rng.normal(size=est.coefs_[1].shape)
    est.intercepts_[0] = rng.normal(size=est.intercepts_[0].shape)
    _assert_predicts_from_weights(est, X)


def _assert_predicts_from_weights(est, X):
    expected = reference_forward(est, X)
    if is_classifier(est):
        proba = est.predict_proba(X)
        assert_allclose(proba[:, 1:] if proba.shape[1] == 2 else proba, expected, rtol=1e-10, atol=1e-14)
    else:
        assert_allclose(est.predict(X), expected.ravel(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("kind", KINDS)
def test_in_place_edits_of_coefs_are_used_by_predict(kind, solver):
    X, y = make_data(kind)
    est = build("fastbp", kind, solver=solver, hidden_layer_sizes=(5, 3)).fit(X, y)
    before = est.predict_proba(X) if kind == "MLPClassifier" else est.predict(X)

    est.coefs_[0][...] = 0.0
    est.coefs_[1][:, 0] *= -2.0
    est.intercepts_[-1] += 0.5
    est.intercepts_[0][2] = 3.0
    _assert_predicts_from_weights(est, X)
    after = est.predict_proba(X) if kind == "MLPClassifier" else est.predict(X)
    assert not np.allclose(before, after)

    # Edits after a round trip through pickle are used too.
    loaded = _pickle_round_trip(est)
    loaded.coefs_[-1] *= 3.0
    loaded.intercepts_[-1] -= 1.0
    _assert_predicts_from_weights(loaded, X)


@pytest.mark.parametrize("solver", STOCHASTIC)
@pytest.mark.parametrize("kind", KINDS)
def test_training_continues_from_assigned_weights(kind, solver):
    """partial_fit and warm-start fit start from weights the user set, as in scikit-learn."""
    X, y = make_data(kind)
    rng = np.random.RandomState(2)
    ours = build("fastbp", kind, solver=solver, warm_start=True, max_iter=3).fit(X, y)
    theirs = build("sklearn", kind, solver=solver, warm_start=True, max_iter=3).fit(X, y)
    coefs = [rng.normal(size=c.shape) for c in ours.coefs_]
    intercepts = [rng.normal(size=b.shape) for b in ours.intercepts_]
    for est in (ours, theirs):
        est.coefs_ = [c.copy() for c in coefs]
        est.intercepts_ = [b.copy() for b in intercepts]
        est.coefs_[0][0, 0] = 0.25  # and an in-place edit on top
        est.partial_fit(X, y)
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        assert_allclose(a, b, rtol=RTOL, atol=1e-12)
    for est in (ours, theirs):
        est.intercepts_[-1][...] = 0.0
        est.fit(X, y)
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        assert_allclose(a, b, rtol=RTOL, atol=1e-12)


@pytest.mark.parametrize("origin", ["fitted", "unpickled", "assigned"])
@pytest.mark.parametrize("kind", KINDS)
def test_coefs_arrays_are_updated_in_place_by_stochastic_training(kind, origin):
    """As in scikit-learn, the arrays in coefs_ are the ones sgd/adam update:
    a reference held before partial_fit sees the update and stays coefs_[0],
    whether the estimator was fitted or unpickled. Arrays assigned by the user
    are copied into fastbp's buffer instead (README, deliberate differences)."""
    X, y = make_data(kind)
    for api in ("sklearn", "fastbp"):
        est = build(api, kind, solver="sgd", learning_rate_init=0.1)
        est.partial_fit(X, y, **fit_kwargs(kind, y))
        if origin == "unpickled":
            est = _pickle_round_trip(est)
        elif origin == "assigned":
            est.coefs_ = [c.copy() for c in est.coefs_]
        held = est.coefs_[0]
        snapshot = held.copy()
        est.partial_fit(X, y)
        if origin == "assigned" and api == "fastbp":
            # Documented difference: assigned arrays are copied into fastbp's
            # flat parameter buffer at the next call, and coefs_ then views it.
            assert est.coefs_[0] is not held
            assert_array_equal(held, snapshot)
            assert not np.array_equal(est.coefs_[0], snapshot)
            continue
        assert est.coefs_[0] is held, api
        assert not np.array_equal(held, snapshot), api


# ---------------------------------------------------------------------------
# Verbose output
# ---------------------------------------------------------------------------

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[+-]?\d+)?")


def _verbose_output(api, kind, X, y, partial=False, **params):
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        est = build(api, kind, verbose=True, **params)
        if partial:
            est.partial_fit(X, y, **fit_kwargs(kind, y))
            est.partial_fit(X, y)
        else:
            est.fit(X, y)
    return buffer.getvalue()


VERBOSE_CASES = {
    "sgd": dict(solver="sgd", max_iter=4),
    "adam-partial_fit": dict(solver="adam", partial=True),
    "adaptive": dict(solver="sgd", learning_rate="adaptive", tol=0.5, n_iter_no_change=2, max_iter=12),
    "no-improvement": dict(solver="adam", tol=10.0, n_iter_no_change=2, max_iter=20),
    "early-stopping": dict(solver="adam", early_stopping=True, tol=10.0, n_iter_no_change=2,
                           validation_fraction=0.2, max_iter=20),
}
# fastbp prints a line per L-BFGS iteration where scikit-learn prints nothing
# (tests/test_multilayer_perceptron.py checks those lines).


@pytest.mark.parametrize("case", list(VERBOSE_CASES))
@pytest.mark.parametrize("kind", KINDS)
def test_verbose_output_as_sklearn(kind, case, capsys):
    X, y = make_data(kind)
    ours = _verbose_output("fastbp", kind, X, y, **VERBOSE_CASES[case])
    theirs = _verbose_output("sklearn", kind, X, y, **VERBOSE_CASES[case])
    assert capsys.readouterr().out == ""  # everything went to the buffers
    ours_lines, theirs_lines = ours.splitlines(), theirs.splitlines()
    # Same lines up to the digits, and the numbers agree.
    assert [_NUMBER.sub("#", line) for line in ours_lines] == [_NUMBER.sub("#", line) for line in theirs_lines]
    ours_numbers = [float(x) for line in ours_lines for x in _NUMBER.findall(line)]
    theirs_numbers = [float(x) for line in theirs_lines for x in _NUMBER.findall(line)]
    assert_allclose(ours_numbers, theirs_numbers, rtol=1e-6, atol=2e-6)
    iterations = [line for line in ours_lines if line.startswith("Iteration")]
    assert iterations
    for i, line in enumerate(iterations, start=1):
        assert re.fullmatch(rf"Iteration {i if case != 'adam-partial_fit' else 1}, loss = \d+\.\d{{8}}", line)


def test_verbose_prints_iteration_lines(capsys):
    """Port of scikit-learn's test_verbose_sgd, on stdout as pytest captures it."""
    X = [[3, 2], [1, 6]]
    y = [1, 0]
    clf = fastbp.MLPClassifier(solver="sgd", max_iter=2, verbose=10, hidden_layer_sizes=2)
    clf.fit(X, y)
    clf.partial_fit(X, y)
    out = capsys.readouterr().out
    assert re.findall(r"^Iteration (\d+), loss = \d+\.\d{8}$", out, flags=re.M) == ["1", "2", "1"]


def test_not_verbose_prints_nothing(capsys):
    X, y = make_data("MLPClassifier")
    build("fastbp", "MLPClassifier", solver="sgd").fit(X, y)
    assert capsys.readouterr().out == ""

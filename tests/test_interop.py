"""Conversion to and from scikit-learn's MLPs, and on to ONNX through skl2onnx.

What is checked here:

- ``to_sklearn``: a fitted scikit-learn estimator of the same kind, for
  classifiers (binary, multiclass with string labels, multilabel) and
  regressors (single, multi-output, Poisson), float32 and float64, every
  solver: the same labels, probabilities equal to the last bits (atol 1e-15
  in float64, a few ulps in float32), regression outputs equal to rounding,
  every fitted attribute carried over, weights copied (not shared) in their
  dtype, and ``partial_fit`` continuing as fastbp's would (the optimizer
  state is translated, not restarted);
- ``from_sklearn``: the reverse, with ``coefs_`` / ``intercepts_`` views of
  a new network's buffer, and ``partial_fit`` continuing scikit-learn's run;
- fastbp -> scikit-learn -> fastbp is bit-exact;
- unfitted estimators convert; other types are refused;
- ONNX (when skl2onnx and onnxruntime are importable): the converted model's
  ONNX graph gives fastbp's predictions.

Scikit-learn computes the same maths with NumPy's BLAS and its own loops,
fastbp with Numba kernels: sums are taken in other orders, so outputs agree
to rounding, not bit for bit; labels agree exactly on these data.
"""

import copy
import warnings

import numpy as np
import pytest
import sklearn.neural_network as sk_nn
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.neural_network._stochastic_optimizers import AdamOptimizer, SGDOptimizer
from sklearn.utils.validation import check_is_fitted

import tasks
from tasks import CLASSIFICATION, REGRESSION
from fastbp import MLPClassifier, MLPRegressor
from fastbp._interop import from_sklearn, to_sklearn

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def make_data(task, seed=0, n_samples=50, n_features=4):
    """The shared task data, with 50 rows by default here."""
    return tasks.make_data(task, seed, n_samples, n_features)


def make_model(api, task, solver="adam", dtype=np.float64, **params):
    """A small model of ``api`` ("fastbp" or "sklearn") fitted on ``task``."""
    params = {"hidden_layer_sizes": (5, 3), "solver": solver, "max_iter": 10, "random_state": 0, **params}
    module = {"fastbp": __import__("fastbp"), "sklearn": sk_nn}[api]
    if task in CLASSIFICATION:
        est = module.MLPClassifier(**params)
    else:
        est = module.MLPRegressor(loss="poisson" if task == "poisson" else "squared_error", **params)
    X, y = make_data(task)
    return est.fit(X.astype(dtype), y), X.astype(dtype), y


def proba_atol(dtype):
    # float64: the brief's 1e-15; float32: a few ulps of a probability
    return 1e-15 if dtype == np.float64 else 8 * np.finfo(np.float32).eps


def assert_same_predictions(a, b, X, task):
    """Labels identical; probabilities / regression outputs equal to rounding."""
    dtype = a.coefs_[0].dtype
    if task in CLASSIFICATION:
        assert_array_equal(a.predict(X), b.predict(X))
        proba_a, proba_b = a.predict_proba(X), b.predict_proba(X)
        assert proba_a.dtype == proba_b.dtype
        assert_allclose(proba_a, proba_b, rtol=0, atol=proba_atol(dtype))
    else:
        rtol = 1e-13 if dtype == np.float64 else 1e-5
        assert_allclose(a.predict(X), b.predict(X), rtol=rtol, atol=rtol)


def assert_fitted_attributes_equal(source, target):
    names = [n for n in vars(source) if n.endswith("_") and not n.startswith("_")]
    assert names
    for name in names:
        a, b = getattr(source, name), getattr(target, name)
        if name in ("coefs_", "intercepts_"):
            for x, y in zip(a, b):
                assert x.dtype == y.dtype
                assert_array_equal(x, y)
        elif isinstance(a, np.ndarray):
            assert_array_equal(a, b)
        else:
            assert a == b or (a != a and b != b), name


# ---------------------------------------------------------------------------
# to_sklearn
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
@pytest.mark.parametrize("task", CLASSIFICATION + REGRESSION)
def test_to_sklearn_predicts_the_same(task, solver, dtype):
    model, X, y = make_model("fastbp", task, solver, dtype)
    sk_model = to_sklearn(model)
    expected = sk_nn.MLPClassifier if task in CLASSIFICATION else sk_nn.MLPRegressor
    assert type(sk_model) is expected
    check_is_fitted(sk_model)
    assert sk_model.get_params()["solver"] == solver
    assert_fitted_attributes_equal(model, sk_model)
    weights = sk_model.coefs_ + sk_model.intercepts_
    assert not any(np.shares_memory(w, model._network.params) for w in weights)
    assert_same_predictions(model, sk_model, X, task)
    # and on float64 rows, whatever the model's dtype
    assert_same_predictions(model, sk_model, X.astype(np.float64), task)
    assert sk_model.score(X, y) == pytest.approx(model.score(X, y), rel=1e-6)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize("task", ["multiclass", "multioutput"])
def test_to_sklearn_partial_fit_continues_fastbps_run(task, solver):
    params = {"learning_rate": "invscaling"} if solver == "sgd" else {}
    model, X, y = make_model("fastbp", task, solver, **params)
    sk_model = to_sklearn(model)
    assert isinstance(sk_model._optimizer, AdamOptimizer if solver == "adam" else SGDOptimizer)
    restarted = copy.deepcopy(sk_model)
    del restarted._optimizer  # what a conversion without the optimizer state would do
    for est in (model, sk_model, restarted):
        for _ in range(3):
            est.partial_fit(X, y)
    assert_allclose(sk_model.loss_curve_, model.loss_curve_, rtol=1e-12)
    for a, b in zip(sk_model.coefs_ + sk_model.intercepts_, model.coefs_ + model.intercepts_):
        assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    assert sk_model.t_ == model.t_ and sk_model.n_iter_ == model.n_iter_
    # the translated state matters: restarting the optimizer changes the run
    assert abs(restarted.loss_curve_[-1] - model.loss_curve_[-1]) > 1e-6


def test_to_sklearn_early_stopping_and_feature_names():
    pd = pytest.importorskip("pandas")
    X, y = make_data("multiclass", n_samples=80)
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    model = MLPClassifier((5,), early_stopping=True, max_iter=8, random_state=0).fit(frame, y)
    sk_model = to_sklearn(model)
    assert_array_equal(sk_model.feature_names_in_, ["a", "b", "c", "d"])
    assert sk_model.validation_scores_ == model.validation_scores_
    assert sk_model.best_validation_score_ == model.best_validation_score_
    best = np.concatenate([a.ravel() for a in sk_model._best_coefs + sk_model._best_intercepts])
    assert_array_equal(best, model._best_params)
    assert_same_predictions(model, sk_model, frame, "multiclass")


def test_to_sklearn_warns_about_parameters_scikit_learn_lacks():
    if "class_weight" not in MLPClassifier().get_params():
        pytest.skip("this fastbp has no class_weight")
    X, y = make_data("binary")
    model = MLPClassifier((3,), class_weight="balanced", max_iter=3, random_state=0).fit(X, y)
    with pytest.warns(UserWarning, match="class_weight"):
        sk_model = to_sklearn(model)
    assert "class_weight" not in sk_model.get_params()
    assert_same_predictions(model, sk_model, X, "binary")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        to_sklearn(MLPClassifier(class_weight=None))


@pytest.mark.parametrize("activation", [("tanh",), ("logistic", "logistic")], ids=["one-name", "same-names"])
def test_to_sklearn_turns_a_tuple_of_one_activation_into_its_name(activation):
    hidden = (5,) if len(activation) == 1 else (5, 3)
    model, X, y = make_model("fastbp", "multiclass", hidden_layer_sizes=hidden, activation=activation)
    sk_model = to_sklearn(model)
    assert sk_model.activation == activation[0]
    assert_same_predictions(model, sk_model, X, "multiclass")


@pytest.mark.parametrize(
    "cls, params, message",
    [
        (MLPClassifier, {"activation": "gelu"}, "no activation 'gelu'"),
        (MLPRegressor, {"activation": ("silu", "silu")}, "no activation 'silu'"),
        (MLPClassifier, {"activation": ("relu", "tanh")}, "one activation for every hidden layer"),
        (MLPRegressor, {"loss": "huber", "huber_delta": 2.0}, "no loss 'huber'"),
        (MLPRegressor, {"loss": "absolute_error"}, "no loss 'absolute_error'"),
    ],
    ids=["gelu", "silu-tuple", "per-layer", "huber", "absolute_error"],
)
@pytest.mark.parametrize("fitted", [False, True], ids=["unfitted", "fitted"])
def test_to_sklearn_refuses_what_scikit_learn_cannot_represent(cls, params, message, fitted):
    model = cls(hidden_layer_sizes=(4, 3), max_iter=2, random_state=0, **params)
    if fitted:
        X, y = make_data("multiclass" if cls is MLPClassifier else "single")
        model.fit(X, y)
    with pytest.raises(ValueError, match=message):
        to_sklearn(model)


@pytest.mark.parametrize("setting", [
    {"dropout": 0.2}, {"dropout": (0.0, 0.1)}, {"max_grad_norm": 5.0}, {"learning_rate": "cosine"},
])
def test_to_sklearn_refuses_training_settings_scikit_learn_lacks(setting):
    X, y = make_data("binary")
    model = MLPClassifier((3, 2), max_iter=3, random_state=0, **setting).fit(X, y)
    name = next(iter(setting))
    with pytest.raises(ValueError, match=f"cannot train with {name}=.*set_params"):
        to_sklearn(model)
    neutral = {"dropout": 0.0, "max_grad_norm": None, "learning_rate": "constant"}[name]
    sk_model = to_sklearn(model.set_params(**{name: neutral}))
    assert_same_predictions(model, sk_model, X, "binary")


def test_to_sklearn_names_every_setting_it_cannot_represent():
    model = MLPClassifier((3,), learning_rate="cosine", warmup_fraction=0.1, dropout=0.1)
    with pytest.raises(ValueError, match="dropout=0.1, learning_rate='cosine', warmup_fraction=0.1"):
        to_sklearn(model)


def test_to_sklearn_passes_the_neutral_training_settings_through_silently():
    X, y = make_data("binary")
    for setting in [{}, {"dropout": (0.0, 0.0)}, {"dropout": 0.0, "max_grad_norm": None}]:
        model = MLPClassifier((3, 2), max_iter=300, random_state=0, **setting).fit(X, y)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            sk_model = to_sklearn(model)
        assert "dropout" not in sk_model.get_params()
        assert_same_predictions(model, sk_model, X, "binary")
    assert from_sklearn(sk_model).get_params()["dropout"] == 0.0
    assert from_sklearn(sk_model).get_params()["max_grad_norm"] is None


# ---------------------------------------------------------------------------
# from_sklearn
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
@pytest.mark.parametrize("task", ["multiclass", "multilabel", "single", "poisson"])
def test_from_sklearn_predicts_the_same(task, solver, dtype):
    sk_model, X, y = make_model("sklearn", task, solver, dtype)
    model = from_sklearn(sk_model)
    assert type(model) is (MLPClassifier if task in CLASSIFICATION else MLPRegressor)
    assert model.get_params() == {**model.get_params(), **sk_model.get_params()}
    assert_fitted_attributes_equal(sk_model, model)
    assert model._network.owns(model.coefs_, model.intercepts_)
    # the weights' dtype is kept (scikit-learn's lbfgs leaves float64 weights even on float32 data)
    assert model._network.dtype == sk_model.coefs_[0].dtype
    assert model._network.dtype == (np.float64 if solver == "lbfgs" else dtype)
    assert_same_predictions(sk_model, model, X, task)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_from_sklearn_partial_fit_continues_sklearns_run(solver):
    sk_model, X, y = make_model("sklearn", "multiclass", solver, learning_rate="adaptive")
    model = from_sklearn(sk_model)
    optimizer = model._optimizer
    assert optimizer.solver == solver
    if solver == "adam":
        assert optimizer.step_counter[0] == sk_model._optimizer.t > 0
    for est in (sk_model, model):
        for _ in range(3):
            est.partial_fit(X, y)
    assert_allclose(model.loss_curve_, sk_model.loss_curve_, rtol=1e-12)
    for a, b in zip(model.coefs_ + model.intercepts_, sk_model.coefs_ + sk_model.intercepts_):
        assert_allclose(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("task", ["multiclass", "multioutput"])
def test_fastbp_to_sklearn_and_back_is_exact(task, dtype):
    model, X, _ = make_model("fastbp", task, "adam", dtype)
    back = from_sklearn(to_sklearn(model))
    assert_array_equal(back._network.params, model._network.params)
    assert back._network.params.dtype == dtype
    for name in ("state_a", "state_b", "step_counter"):
        assert_array_equal(getattr(back._optimizer, name), getattr(model._optimizer, name))
    assert_array_equal(back.predict(X), model.predict(X))
    if task in CLASSIFICATION:
        assert_array_equal(back.predict_proba(X), model.predict_proba(X))
    assert back.loss_curve_ == model.loss_curve_


@pytest.mark.parametrize("cls", [MLPClassifier, MLPRegressor])
def test_unfitted_models_convert(cls):
    model = cls(hidden_layer_sizes=(7, 2), alpha=0.5, solver="sgd")
    sk_model = to_sklearn(model)
    assert "coefs_" not in vars(sk_model)
    sk_params = sk_model.get_params()
    assert sk_params == {k: v for k, v in model.get_params().items() if k in sk_params}
    back = from_sklearn(sk_model)
    assert back.get_params() == model.get_params()


@pytest.mark.parametrize(
    "func, model",
    [(to_sklearn, sk_nn.MLPClassifier()), (from_sklearn, MLPClassifier()), (to_sklearn, "model"),
     (from_sklearn, None)],
)
def test_other_types_are_refused(func, model):
    with pytest.raises(TypeError, match="converts"):
        func(model)


# ---------------------------------------------------------------------------
# ONNX through skl2onnx
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("task", ["multiclass", "binary", "single", "multioutput"])
def test_onnx_export_of_the_converted_model(task):
    skl2onnx = pytest.importorskip("skl2onnx")
    ort = pytest.importorskip("onnxruntime")
    model, X, _ = make_model("fastbp", task, "adam", np.float32, max_iter=30)
    options = {"zipmap": False} if task in CLASSIFICATION else None
    onnx_model = skl2onnx.to_onnx(to_sklearn(model), X[:1], options=options)
    session = ort.InferenceSession(onnx_model.SerializeToString(), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {session.get_inputs()[0].name: X})
    if task in CLASSIFICATION:
        labels, proba = outputs
        assert_array_equal(labels, model.predict(X))
        assert_allclose(proba, model.predict_proba(X), atol=1e-5)
    else:
        expected = model.predict(X)
        assert_allclose(outputs[0].reshape(expected.shape), expected, rtol=1e-5, atol=1e-5)

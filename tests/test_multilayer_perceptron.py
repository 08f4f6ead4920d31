"""MLPClassifier / MLPRegressor: parameters checked at fit time; a deliberate difference."""

import importlib.util
import re
import warnings

import numpy as np
import pytest
import scipy.optimize
import scipy.sparse as sp
from numpy.testing import assert_array_equal
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier as SkMLPClassifier
from sklearn.neural_network import MLPRegressor as SkMLPRegressor

from fastbp import MLPClassifier, MLPRegressor, check_gradients

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture
def three_classes(rng):
    X = rng.normal(size=(30, 3))
    return X, np.arange(30) % 3


# ---------------------------------------------------------------------------
# class_weight
# ---------------------------------------------------------------------------

BAD_CLASS_WEIGHTS = [
    ({0: np.nan, 1: 1, 2: 1}, "got nan for class 0"),
    ({0: 1, 1: np.inf, 2: 1}, "got inf for class 1"),
    ({0: 1, 1: 1, 2: -np.inf}, "got -inf for class 2"),
    ({0: 1, 1: None, 2: 1}, "got None for class 1"),
    ({0: 1, 1: 1, 2: -0.5}, "got -0.5 for class 2"),
    ({0: "heavy", 1: 1, 2: 1}, "got 'heavy' for class 0"),
    ({0: "2", 1: 1, 2: 1}, "got '2' for class 0"),
    ({0: 1j, 1: 1, 2: 1}, r"got 1j for class 0"),
    ({0: 1, 1: 10**400, 2: 1}, "got 10{400} for class 1"),
    ({2: np.float32("nan")}, r"got (np\.float32\()?nan\)? for class 2"),
]


@pytest.mark.parametrize("class_weight, message", BAD_CLASS_WEIGHTS)
def test_class_weight_values_are_checked_by_name(class_weight, message, three_classes):
    X, y = three_classes
    model = MLPClassifier((3,), max_iter=2, class_weight=class_weight, random_state=0)
    expected = f"class_weight must give each class a finite weight >= 0, {message}"
    with pytest.raises(ValueError, match=expected):
        model.fit(X, y)
    assert not hasattr(model, "coefs_")


@pytest.mark.parametrize("class_weight", [{0: 0, 1: 0, 2: 0}, {0: 0.0, 1: 0, 2: 0, 7: 1}])
def test_class_weight_of_zero_for_every_class_is_refused(class_weight, three_classes):
    X, y = three_classes
    with pytest.raises(ValueError, match="class_weight gives every class the weight 0"):
        MLPClassifier((3,), max_iter=2, class_weight=class_weight).fit(X, y)


def test_class_weight_is_checked_for_string_labels_and_multilabel_columns(three_classes, rng):
    X, y = three_classes
    labels = np.array(["ant", "bee", "cat"])[y]
    with pytest.raises(ValueError, match="got -2 for class 'bee'"):
        MLPClassifier((3,), class_weight={"ant": 1, "bee": -2}).fit(X, labels)
    Y = (rng.uniform(size=(30, 3)) > 0.5).astype(int)
    weights = [{0: 1, 1: 1}, {0: 1, 1: np.nan}, {0: 1, 1: 1}]
    with pytest.raises(ValueError, match=r"class_weight\[1\] must give .* nan for class 1\."):
        MLPClassifier((3,), class_weight=weights).fit(X, Y)
    weights = [{0: 1, 1: 1}, {0: 1, 1: 1}, {0: 0, 1: 0}]
    with pytest.raises(ValueError, match=r"class_weight\[2\] gives every class the weight 0"):
        MLPClassifier((3,), class_weight=weights).fit(X, Y)


def test_class_weight_is_checked_by_partial_fit_for_classes_not_in_the_batch(three_classes):
    X, y = three_classes
    model = MLPClassifier((3,), class_weight={0: 1, 1: 1, 2: np.nan}, random_state=0)
    first = y < 2  # class 2 is announced but not in this batch
    with pytest.raises(ValueError, match="got nan for class 2"):
        model.partial_fit(X[first], y[first], classes=[0, 1, 2])
    assert not hasattr(model, "classes_")
    model.set_params(class_weight={0: 1, 1: 1, 2: 2})
    model.partial_fit(X[first], y[first], classes=[0, 1, 2])
    params = model._network.params.copy()
    model.set_params(class_weight={0: 1, 1: -1, 2: 2})
    with pytest.raises(ValueError, match="got -1 for class 1"):
        model.partial_fit(X[first], y[first])
    assert_array_equal(model._network.params, params)


def test_class_weight_is_checked_before_a_validation_set_is_weighted(three_classes):
    X, y = three_classes
    model = MLPClassifier((3,), max_iter=2, early_stopping=True, random_state=0,
                          class_weight={0: 1, 1: 1, 2: np.inf})
    with pytest.raises(ValueError, match="got inf for class 2"):
        model.fit(X[:20], y[:20], X_val=X[20:], y_val=y[20:])


def test_a_warm_fit_with_a_bad_class_weight_leaves_the_model_as_it_was(three_classes):
    X, y = three_classes
    model = MLPClassifier((3,), max_iter=2, warm_start=True, random_state=0).fit(X, y)
    params, curve = model._network.params.copy(), list(model.loss_curve_)
    model.set_params(class_weight={0: None, 1: 1, 2: 1})
    with pytest.raises(ValueError, match="got None for class 0"):
        model.fit(X, y)
    assert_array_equal(model._network.params, params)
    assert model.loss_curve_ == curve


def test_class_weight_keys_that_are_not_classes_behave_as_in_scikit_learn(three_classes):
    """compute_class_weight ignores them when every class has a key, and refuses them otherwise."""
    X, y = three_classes
    plain = MLPClassifier((3,), max_iter=3, random_state=0, class_weight={0: 1, 1: 2, 2: 1})
    extra = MLPClassifier((3,), max_iter=3, random_state=0,
                          class_weight={0: 1, 1: 2, 2: 1, 3: np.nan, "other": None})
    assert_array_equal(extra.fit(X, y).predict_proba(X), plain.fit(X, y).predict_proba(X))
    with pytest.raises(ValueError, match=r"The classes, \[2\], are not in class_weight"):
        MLPClassifier((3,), class_weight={0: 1, 1: 1, 5: 2}).fit(X, y)
    # a class without a key weighs 1, so zeros for the others are allowed
    MLPClassifier((3,), max_iter=2, class_weight={0: 0, 1: 0}).fit(X, y)


# ---------------------------------------------------------------------------
# hidden_layer_sizes
# ---------------------------------------------------------------------------


FLOAT = "'float' object cannot be interpreted as an integer"
NUMPY_FLOAT = "'numpy.float64' object cannot be interpreted as an integer"


@pytest.mark.parametrize(
    "sizes, problem, as_scikit_learn",
    [
        ((3.0,), FLOAT, True),
        ((3.5, 2), FLOAT, True),
        ((np.inf,), FLOAT, True),
        (np.array([3.0]), NUMPY_FLOAT, True),
        ((np.float64(3),), NUMPY_FLOAT, True),
        (np.array([[3]]), "only integer scalar arrays can be converted to a scalar index", True),
        # scikit-learn's own errors here come from inside NumPy or its arithmetic
        ((True,), "True is a bool", False),
        ([[3]], "'list' object cannot be interpreted as an integer", False),
        (((3,),), "'tuple' object cannot be interpreted as an integer", False),
        ((3, None), "'NoneType' object cannot be interpreted as an integer", False),
        ((3, "4"), "'str' object cannot be interpreted as an integer", False),
    ],
)
def test_hidden_layer_sizes_that_are_not_integers_raise_a_type_error_naming_them(
        sizes, problem, as_scikit_learn, three_classes):
    X, y = three_classes
    model = MLPClassifier(hidden_layer_sizes=sizes, max_iter=1)
    with pytest.raises(TypeError) as error:
        model.fit(X, y)
    assert str(error.value) == (
        f"hidden_layer_sizes must be a sequence of integers, got {sizes!r}: {problem}."
    )
    assert not hasattr(model, "coefs_")
    if as_scikit_learn:
        with pytest.raises(TypeError) as sklearn_error:
            SkMLPClassifier(hidden_layer_sizes=sizes, max_iter=1).fit(X, y)
        assert str(sklearn_error.value) == problem


@pytest.mark.parametrize("sizes", [(0,), (-1, 3), (0.0,), (-1.5,), (False,)])
def test_hidden_layer_sizes_of_zero_or_less_raise_scikit_learns_value_error(sizes, three_classes):
    X, y = three_classes
    with pytest.raises(ValueError, match="hidden_layer_sizes must be > 0") as sklearn_error:
        SkMLPClassifier(hidden_layer_sizes=sizes).fit(X, y)
    with pytest.raises(ValueError) as error:
        MLPClassifier(hidden_layer_sizes=sizes).fit(X, y)
    assert str(error.value) == str(sklearn_error.value)


@pytest.mark.parametrize("sizes", [np.array([3, 2], dtype=np.uint8), (np.int8(30), np.int16(40)),
                                   np.array([200, 200], dtype=np.uint8)])
def test_hidden_layer_sizes_of_any_integer_type_give_the_layers_asked_for(sizes, three_classes):
    """Sizes of a small NumPy integer type once overflowed in the size products."""
    X, y = three_classes
    model = MLPClassifier(hidden_layer_sizes=sizes, max_iter=2, random_state=0).fit(X, y)
    reference = MLPClassifier(hidden_layer_sizes=[int(s) for s in sizes], max_iter=2,
                              random_state=0).fit(X, y)
    assert [c.shape for c in model.coefs_] == [c.shape for c in reference.coefs_]
    assert_array_equal(model.predict_proba(X), reference.predict_proba(X))


# ---------------------------------------------------------------------------
# A warm start from loss="poisson" to "squared_error" (deliberate difference)
# ---------------------------------------------------------------------------


def test_squared_error_after_poisson_descends_the_true_gradient_where_scikit_learn_does_not(rng):
    """The exp output stays (out_activation_ is kept on a warm start) under the squared error.

    The true gradient of 0.5 * mean((exp(z) - y) ** 2) in the output
    pre-activation z is (exp(z) - y) * exp(z) / n; scikit-learn back-propagates
    (exp(z) - y) / n, the gradient of the canonical pairs. fastbp's is the true
    one (finite differences), so the two train differently from there on.
    """
    X = rng.normal(size=(40, 3))
    y = rng.poisson(np.exp(0.5 * X[:, 0])).astype(float)
    lr = 0.01
    # tanh: smooth, so finite differences hold everywhere (relu has kinks)
    params = dict(hidden_layer_sizes=(4,), activation="tanh", loss="poisson", solver="sgd",
                  momentum=0.0, alpha=0.0, batch_size=X.shape[0], shuffle=False,
                  learning_rate_init=lr, max_iter=20, warm_start=True, random_state=0)
    ours = MLPRegressor(**params).fit(X, y)
    theirs = SkMLPRegressor(**params).fit(X, y)
    for mine, other in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(mine, other, rtol=1e-10)
        other[...] = mine  # from the very same weights
    ours.set_params(loss="squared_error", max_iter=1)
    theirs.set_params(loss="squared_error", max_iter=1)
    assert ours.out_activation_ == theirs.out_activation_ == "exp"

    errors = check_gradients(ours, X, y)
    assert max(max(e["coefs"], e["intercepts"]) for e in errors) < 1e-6

    # one full-batch step of plain gradient descent: step = -lr * gradient
    output = ours.predict(X)
    true_gradient = np.mean((output - y) * output)
    simple_gradient = np.mean(output - y)
    # the true gradient of the output intercept, by central differences through predict
    h = 1e-6
    objective = []
    for step in (h, -h):
        ours.intercepts_[-1][0] += step
        objective.append(0.5 * np.mean((ours.predict(X) - y) ** 2))
        ours.intercepts_[-1][0] -= step
    np.testing.assert_allclose((objective[0] - objective[1]) / (2 * h), true_gradient, rtol=1e-6)
    before = ours.intercepts_[-1][0]
    ours.fit(X, y)
    theirs.fit(X, y)
    np.testing.assert_allclose(ours.intercepts_[-1][0] - before, -lr * true_gradient, rtol=1e-9)
    np.testing.assert_allclose(theirs.intercepts_[-1][0] - before, -lr * simple_gradient, rtol=1e-9)
    assert abs(true_gradient - simple_gradient) > 0.1 * abs(true_gradient)


# ---------------------------------------------------------------------------
# dropout, max_grad_norm and learning_rate="cosine" (issue 21)
# ---------------------------------------------------------------------------


def flat_weights(model):
    return np.concatenate([a.ravel() for a in model.coefs_ + model.intercepts_])


@pytest.fixture
def digits_like(rng):
    X = rng.normal(size=(240, 12))
    y = (X[:, :3].sum(axis=1) > 0).astype(int) + (X[:, 3] > 0.5)
    return X, y


@pytest.mark.parametrize(
    "options", [{"dropout": 0.0}, {"dropout": (0.0, 0.0)}, {"dropout": [0, 0.0]}, {"max_grad_norm": 1e300}],
    ids=["0.0", "tuple", "list", "huge-max-norm"],
)
@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_neutral_option_values_give_the_bits_of_the_defaults(digits_like, options, solver):
    X, y = digits_like
    settings = dict(hidden_layer_sizes=(8, 6), solver=solver, batch_size=50, max_iter=4,
                    early_stopping=True, n_iter_no_change=100, random_state=0)
    default = MLPClassifier(**settings).fit(X, y)
    model = MLPClassifier(**settings, **options).fit(X, y)
    assert model.loss_curve_ == default.loss_curve_
    assert model.validation_scores_ == default.validation_scores_  # the same split and shuffles
    assert_array_equal(flat_weights(model), flat_weights(default))
    reference = SkMLPClassifier(**settings).fit(X, y)
    np.testing.assert_allclose(model.loss_curve_, reference.loss_curve_, rtol=1e-11)


def test_dropout_fits_are_reproducible_and_follow_random_state(digits_like):
    X, y = digits_like

    def fit(random_state, dropout=0.3):
        return MLPClassifier((16, 8), dropout=dropout, max_iter=5, random_state=random_state).fit(X, y)

    first, again = fit(0), fit(0)
    assert first.loss_curve_ == again.loss_curve_
    assert_array_equal(flat_weights(first), flat_weights(again))
    assert fit(1).loss_curve_ != first.loss_curve_
    assert fit(0, dropout=0.0).loss_curve_ != first.loss_curve_
    assert fit(0, dropout=(0.3, 0.0)).loss_curve_ not in (first.loss_curve_, fit(0, 0.0).loss_curve_)


def test_dropout_changes_nothing_at_predict_time(digits_like):
    X, y = digits_like
    model = MLPClassifier((16,), activation="tanh", dropout=0.5, max_iter=5, random_state=0).fit(X, y)
    hidden = np.tanh(X @ model.coefs_[0] + model.intercepts_[0])
    logits = hidden @ model.coefs_[1] + model.intercepts_[1]
    proba = np.exp(logits - logits.max(axis=1, keepdims=True))
    proba /= proba.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(model.predict_proba(X), proba, rtol=1e-12)
    assert_array_equal(model.predict_proba(X), model.set_params(dropout=0.0).predict_proba(X))


def test_dropout_with_one_row_batches_and_partial_fit(digits_like):
    X, y = digits_like
    model = MLPClassifier((8,), dropout=0.2, batch_size=1, max_iter=2, random_state=0).fit(X, y)
    plain = MLPClassifier((8,), batch_size=1, max_iter=2, random_state=0).fit(X, y)
    assert np.isfinite(model.loss_curve_).all() and model.loss_curve_ != plain.loss_curve_
    streamed = MLPClassifier((8,), dropout=0.2, random_state=0)
    for _ in range(3):
        streamed.partial_fit(X, y, classes=[0, 1, 2])
    # every partial_fit call draws the same seed (random_state is an int), but the epochs' masks differ
    assert len(set(streamed.loss_curve_)) == 3


def test_dropout_is_refused_by_lbfgs_and_checked(digits_like):
    X, y = digits_like
    with pytest.raises(ValueError, match="dropout needs solver='sgd' or 'adam'"):
        MLPClassifier((4,), solver="lbfgs", dropout=0.1).fit(X, y)
    MLPClassifier((4,), solver="lbfgs", dropout=0.0, max_iter=5).fit(X, y)
    for dropout in [-0.1, 1.0, 1.5, "half", None]:
        with pytest.raises(ValueError, match="dropout"):
            MLPClassifier((4, 3), dropout=dropout).fit(X, y)
    for dropout, message in [((0.1,), "one per hidden layer"), ((0.1, 0.2, 0.3), "one per hidden layer"),
                             ((0.1, 1.0), r"in \[0, 1\)"), ((0.1, -0.5), r"in \[0, 1\)"),
                             ((0.1, "a"), r"in \[0, 1\)"), ((True, 0.1), r"in \[0, 1\)"),
                             ([[0.1, 0.2]], "one per hidden layer")]:
        with pytest.raises(ValueError, match=message):
            MLPClassifier((4, 3), dropout=dropout).fit(X, y)


def test_a_failed_warm_fit_with_bad_dropout_leaves_the_model_as_it_was(digits_like):
    X, y = digits_like
    model = MLPClassifier((4, 3), max_iter=3, random_state=0).fit(X, y)
    before = flat_weights(model).copy()
    with pytest.raises(ValueError, match="one per hidden layer"):
        model.set_params(warm_start=True, dropout=(0.5,)).fit(X, y)
    assert_array_equal(flat_weights(model), before)


def test_max_grad_norm_is_checked_clips_and_is_ignored_by_lbfgs(digits_like):
    X, y = digits_like
    for bad in [0, -1.0, "1"]:
        with pytest.raises(ValueError, match="max_grad_norm"):
            MLPClassifier((4,), max_grad_norm=bad).fit(X, y)
    settings = dict(hidden_layer_sizes=(8,), solver="sgd", max_iter=3, random_state=0)
    clipped = MLPClassifier(max_grad_norm=0.01, **settings).fit(X, y)
    plain = MLPClassifier(**settings).fit(X, y)
    # the clipped steps are much shorter: the weights move less from the same start
    start = MLPClassifier(**{**settings, "max_iter": 1, "learning_rate_init": 1e-300}).fit(X, y)
    moved = np.abs(flat_weights(clipped) - flat_weights(start)).max()
    assert moved < 0.3 * np.abs(flat_weights(plain) - flat_weights(start)).max()
    lbfgs = dict(hidden_layer_sizes=(4,), solver="lbfgs", max_iter=20, random_state=0)
    assert_array_equal(flat_weights(MLPClassifier(max_grad_norm=0.01, **lbfgs).fit(X, y)),
                       flat_weights(MLPClassifier(**lbfgs).fit(X, y)))


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_cosine_schedule_spans_max_iter_epochs_and_partial_fit_calls(digits_like, solver):
    X, y = digits_like
    model = MLPRegressor(hidden_layer_sizes=(6,), solver=solver, learning_rate="cosine", momentum=0.0, batch_size=60,
                         max_iter=3, random_state=0)
    target = y.astype(float)
    for call in range(5):
        before = flat_weights(model).copy() if call else None
        model.partial_fit(X, target)
        assert model._optimizer.step_counter[0] == 4 * (call + 1)
        if call in (1, 2):
            assert np.abs(flat_weights(model) - before).max() > 1e-6
        if call >= 3:  # after max_iter epochs of 4 steps the rate is 0: nothing moves
            assert_array_equal(flat_weights(model), before)
    # a warm-started fit starts the schedule again
    before = flat_weights(model).copy()
    model.set_params(warm_start=True).fit(X, target)
    assert model._optimizer.step_counter[0] == 4 * model.n_iter_
    assert np.abs(flat_weights(model) - before).max() > 1e-6


def test_cosine_is_a_schedule_of_its_own_and_others_are_unchanged(digits_like):
    X, y = digits_like
    with pytest.raises(ValueError, match="learning_rate"):
        MLPClassifier(learning_rate="cos").fit(X, y)
    settings = dict(hidden_layer_sizes=(8,), max_iter=4, random_state=0)
    for solver in ("sgd", "adam"):
        cosine = MLPClassifier(solver=solver, learning_rate="cosine", **settings).fit(X, y)
        constant = MLPClassifier(solver=solver, **settings).fit(X, y)
        assert cosine.loss_curve_[0] == constant.loss_curve_[0] or solver == "sgd"
        assert cosine.loss_curve_ != constant.loss_curve_
    # adam ignores scikit-learn's schedules, as scikit-learn does
    for schedule in ("invscaling", "adaptive"):
        model = MLPClassifier(solver="adam", learning_rate=schedule, **settings).fit(X, y)
        assert model.loss_curve_ == MLPClassifier(solver="adam", **settings).fit(X, y).loss_curve_


def test_warmup_fraction_rises_then_decays_and_needs_cosine(digits_like):
    X, y = digits_like
    with pytest.raises(ValueError, match="warmup_fraction=0.1 needs learning_rate='cosine'"):
        MLPClassifier(warmup_fraction=0.1).fit(X, y)
    with pytest.raises(ValueError, match="warmup_fraction"):
        MLPClassifier(learning_rate="cosine", warmup_fraction=1.0).fit(X, y)
    settings = dict(hidden_layer_sizes=(8,), solver="sgd", momentum=0.0, batch_size=240, learning_rate="cosine",
                    learning_rate_init=0.5, max_iter=10, tol=0, n_iter_no_change=100, random_state=0)
    plain = MLPClassifier(**settings).fit(X, y)
    assert_array_equal(flat_weights(MLPClassifier(warmup_fraction=0.05, **settings).fit(X, y)),
                       flat_weights(plain))  # floor(0.05 * 10) = 0 warm-up steps
    # one step per epoch: the first of 4 warm-up steps takes a quarter of the first plain step
    start = MLPClassifier(**{**settings, "max_iter": 1, "learning_rate_init": 1e-300}).fit(X, y)
    warm = MLPClassifier(**{**settings, "warmup_fraction": 0.4, "max_iter": 10}).set_params(max_iter=10)
    first_plain = MLPClassifier(**settings).partial_fit(X, y, classes=[0, 1, 2])
    first_warm = warm.partial_fit(X, y, classes=[0, 1, 2])
    np.testing.assert_allclose(flat_weights(first_warm) - flat_weights(start),
                               (flat_weights(first_plain) - flat_weights(start)) / 4, rtol=1e-9, atol=1e-15)


# ---------------------------------------------------------------------------
# L-BFGS progress: a verbose line and the callbacks' hooks per iteration
# ---------------------------------------------------------------------------

LBFGS_LINE = re.compile(
    r"^Iteration (\d+), loss = (\d+\.\d{8}), gradient inf-norm = (\d\.\d{8}e[+-]\d+)$"
)

needs_callbacks = pytest.mark.skipif(
    importlib.util.find_spec("sklearn.callback") is None,
    reason="scikit-learn has no sklearn.callback",
)


def _lbfgs_problem(kind, rng):
    X = rng.normal(size=(60, 5))
    z = X @ rng.normal(size=(5, 3))
    if kind == "MLPClassifier":
        return X, np.argmax(z, axis=1), (MLPClassifier, SkMLPClassifier)
    return X, z[:, :2], (MLPRegressor, SkMLPRegressor)


def _same_weights(a, b):
    pairs = zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_)
    return all(np.array_equal(u, v) for u, v in pairs)


class _LbfgsSpy:
    """Stands in for scipy.optimize.minimize and keeps what it returned."""

    def __init__(self, minimize):
        self.minimize, self.results = minimize, []

    def __call__(self, *args, **kwargs):
        self.results.append(self.minimize(*args, **kwargs))
        return self.results[-1]


@pytest.mark.parametrize("kind", ["MLPClassifier", "MLPRegressor"])
def test_lbfgs_verbose_prints_each_iteration_with_scikit_learns_loss(kind, rng, capsys, monkeypatch):
    """Line k holds the loss scikit-learn's L-BFGS reaches with max_iter=k, and the last
    line the largest absolute component of the gradient SciPy ends with."""
    X, y, (ours, theirs) = _lbfgs_problem(kind, rng)
    params = dict(hidden_layer_sizes=(6,), solver="lbfgs", max_iter=5, random_state=0)
    spy = _LbfgsSpy(scipy.optimize.minimize)
    monkeypatch.setattr(scipy.optimize, "minimize", spy)
    model = ours(**params, verbose=True).fit(X, y)
    lines = capsys.readouterr().out.splitlines()
    matches = [LBFGS_LINE.fullmatch(line) for line in lines]
    assert all(matches), lines
    assert [int(m.group(1)) for m in matches] == list(range(1, model.n_iter_ + 1))
    assert model.n_iter_ == 5
    losses = [float(m.group(2)) for m in matches]
    expected = [theirs(**{**params, "max_iter": k}).fit(X, y).loss_ for k in range(1, 6)]
    np.testing.assert_allclose(losses, expected, rtol=0, atol=1e-8)
    assert matches[-1].group(3) == "%.8e" % np.abs(spy.results[-1].jac).max()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_lbfgs_verbose_changes_nothing_and_prints_nothing_when_off(dtype, rng, capsys):
    X, y, _ = _lbfgs_problem("MLPClassifier", rng)
    X = X.astype(dtype)
    quiet = MLPClassifier((6,), solver="lbfgs", max_iter=30, random_state=0).fit(X, y)
    assert capsys.readouterr().out == ""
    loud = MLPClassifier((6,), solver="lbfgs", max_iter=30, random_state=0, verbose=True).fit(X, y)
    assert len(capsys.readouterr().out.splitlines()) == loud.n_iter_ == quiet.n_iter_
    assert _same_weights(loud, quiet) and loud.loss_ == quiet.loss_


def test_lbfgs_reports_the_accepted_iterate_when_scipy_evaluated_elsewhere_after_it(rng, capsys,
                                                                                 monkeypatch):
    """The gradient of a verbose line is the one at the iterate SciPy passes to the callback,
    also when the last point evaluated was another (SciPy does not do so today)."""
    X, y, _ = _lbfgs_problem("MLPRegressor", rng)
    params = dict(hidden_layer_sizes=(6,), solver="lbfgs", max_iter=6, random_state=0, verbose=True)
    plain = MLPRegressor(**params).fit(X, y)
    expected = capsys.readouterr().out
    minimize = scipy.optimize.minimize

    def evaluating_elsewhere(fun, x0, callback, **kwargs):
        # named as fastbp's: SciPy passes an OptimizeResult to a callback with this parameter
        def evaluate_elsewhere_first(intermediate_result):
            fun(intermediate_result.x + 0.5)
            callback(intermediate_result)

        return minimize(fun, x0, callback=evaluate_elsewhere_first, **kwargs)

    monkeypatch.setattr(scipy.optimize, "minimize", evaluating_elsewhere)
    detoured = MLPRegressor(**params).fit(X, y)
    assert capsys.readouterr().out == expected
    assert _same_weights(detoured, plain) and detoured.loss_ == plain.loss_


class _IterationRecorder:
    """A FitCallback recording its hooks; asks to stop at the end of iteration ``stop_at``."""

    def __init__(self, stop_at=None):
        self.stop_at, self.log, self.models = stop_at, [], []

    def setup(self, estimator, context):
        self.log.append("setup")

    def on_fit_task_begin(self, estimator, context):
        self.log.append(f"begin {context.task_name} {context.task_id}")

    def on_fit_task_end(self, estimator, context, *, fitted_estimator=None):
        self.log.append(f"end {context.task_name} {context.task_id}")
        if context.task_name == "lbfgs-iter":
            self.models.append(fitted_estimator)
            return context.task_id + 1 == self.stop_at
        return False

    def teardown(self, estimator, context):
        self.log.append("teardown")


def _hooks_of(n_iterations):
    iterations = [f"{hook} lbfgs-iter {i}" for i in range(n_iterations) for hook in ("begin", "end")]
    return ["setup", "begin fit 0", *iterations, "end fit 0", "teardown"]


@needs_callbacks
@pytest.mark.parametrize("kind", ["MLPClassifier", "MLPRegressor"])
def test_callbacks_see_each_lbfgs_iteration_as_a_model(kind, rng):
    """Each iteration is a task whose fitted_estimator predicts as a fit stopped there."""
    X, y, (ours, _) = _lbfgs_problem(kind, rng)
    recorder = _IterationRecorder()
    model = ours(hidden_layer_sizes=(6,), solver="lbfgs", max_iter=4, random_state=0)
    model.set_callbacks(recorder).fit(X, y)
    assert recorder.log == _hooks_of(4)
    for k, seen in enumerate(recorder.models, start=1):
        assert seen.n_iter_ == k
        stopped_there = ours(hidden_layer_sizes=(6,), solver="lbfgs", max_iter=k, random_state=0)
        stopped_there.fit(X, y)
        assert_array_equal(seen.predict(X), stopped_there.predict(X))
        assert seen.loss_ == stopped_there.loss_
    assert_array_equal(recorder.models[-1].predict(X), model.predict(X))


@needs_callbacks
def test_a_converged_lbfgs_fit_reports_only_the_iterations_it_ran(rng):
    X, y, _ = _lbfgs_problem("MLPClassifier", rng)
    recorder = _IterationRecorder()
    model = MLPClassifier((6,), solver="lbfgs", max_iter=500, tol=1e-2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        model.set_callbacks(recorder).fit(X, y)
    assert 1 < model.n_iter_ < 500
    assert recorder.log == _hooks_of(model.n_iter_)


@needs_callbacks
@pytest.mark.parametrize("kind", ["MLPClassifier", "MLPRegressor"])
@pytest.mark.parametrize("stop_at", [1, 3])
def test_a_callback_can_stop_lbfgs_after_any_iteration(kind, stop_at, rng):
    """The model is that iteration's: the weights, loss_ and n_iter_ of a fit with
    max_iter=stop_at, and no ConvergenceWarning (the user asked for the stop)."""
    X, y, (ours, _) = _lbfgs_problem(kind, rng)
    recorder = _IterationRecorder(stop_at=stop_at)
    model = ours(hidden_layer_sizes=(6,), solver="lbfgs", max_iter=50, random_state=0).set_callbacks(recorder)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.fit(X, y)
    assert model.n_iter_ == stop_at
    assert recorder.log == _hooks_of(stop_at)
    stopped_there = ours(hidden_layer_sizes=(6,), solver="lbfgs", max_iter=stop_at, random_state=0)
    stopped_there.fit(X, y)
    assert _same_weights(model, stopped_there)
    assert model.loss_ == stopped_there.loss_
    assert_array_equal(model.predict(X), stopped_there.predict(X))


def test_lbfgs_records_no_loss_curve(rng):
    """As in scikit-learn: loss_curve_ marks a stochastic fit (the parity tests, plots and
    the CLI rely on it); per-iteration losses come through verbose or callbacks."""
    X, y, _ = _lbfgs_problem("MLPClassifier", rng)
    model = MLPClassifier((6,), solver="lbfgs", max_iter=5, random_state=0).fit(X, y)
    assert not hasattr(model, "loss_curve_")
    assert not hasattr(SkMLPClassifier((6,), solver="lbfgs", max_iter=5).fit(X, y), "loss_curve_")


# ---------------------------------------------------------------------------
# partial_fit on a multilabel indicator y (scikit-learn #12505)
# ---------------------------------------------------------------------------


def _multilabel_problem(rng, n_samples=80, n_labels=4):
    X = rng.normal(size=(n_samples, 5))
    Y = (X @ rng.normal(size=(5, n_labels)) > 0.3).astype(int)
    return X, Y


@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize("sparse_y", [False, True], ids=["dense", "sparse"])
def test_multilabel_partial_fit_steps_are_the_epochs_of_fit(solver, sparse_y, rng):
    """k partial_fit calls on all rows are the k epochs of fit(max_iter=k), mini-batch for
    mini-batch, when the rows are not shuffled (fit shuffles the previous epoch's order,
    each partial_fit call the rows as given)."""
    X, Y = _multilabel_problem(rng)
    Y = sp.csr_matrix(Y) if sparse_y else Y
    params = dict(hidden_layer_sizes=(7,), solver=solver, learning_rate_init=0.05,
                  batch_size=20, shuffle=False, random_state=3)
    stepped = MLPClassifier(**params)
    for _ in range(3):
        stepped.partial_fit(X, Y, classes=np.arange(4))
    fitted = MLPClassifier(**params, max_iter=3).fit(X, Y)
    assert _same_weights(stepped, fitted)
    assert stepped.loss_curve_ == fitted.loss_curve_ and stepped.t_ == fitted.t_
    assert_array_equal(stepped.classes_, fitted.classes_)
    assert_array_equal(stepped.classes_, np.arange(4))
    prediction = stepped.predict(X)
    assert sp.issparse(prediction) == sparse_y
    assert_array_equal(prediction.toarray() if sparse_y else prediction,
                       fitted.predict(X).toarray() if sparse_y else fitted.predict(X))
    assert stepped.predict_proba(X).shape == (X.shape[0], 4)


def test_multilabel_partial_fit_in_batches_follows_scikit_learns(rng):
    X, Y = _multilabel_problem(rng)
    params = dict(hidden_layer_sizes=(7,), solver="adam", random_state=0)
    ours, theirs = MLPClassifier(**params), SkMLPClassifier(**params)
    for model in (ours, theirs):
        for rows in (slice(0, 30), slice(30, 80), slice(0, 80)):
            model.partial_fit(X[rows], Y[rows], classes=np.arange(4) if rows.start == 0 else None)
    for mine, other in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(mine, other, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)
    assert_array_equal(ours.predict(X), theirs.predict(X))


@pytest.mark.parametrize(
    "classes", [[0, 1], [1, 2, 3, 4], ["a", "b", "c", "d"], np.arange(5), np.arange(4.0)]
)
def test_multilabel_partial_fit_names_the_classes_it_needs(classes, rng):
    X, Y = _multilabel_problem(rng)
    model = MLPClassifier((3,), random_state=0)
    with pytest.raises(ValueError, match=r"4 label columns: classes must be .* np\.arange\(4\)"):
        model.partial_fit(X, Y, classes=classes)
    assert not hasattr(model, "classes_")
    model.partial_fit(X, Y, classes=np.arange(4))
    assert_array_equal(model.classes_, np.arange(4))


def test_multilabel_partial_fit_refuses_a_first_y_without_every_label_column(rng):
    """scikit-learn accepts this call (classes_ has 4 labels, the network 3 outputs) and
    fails at the next one."""
    X, Y = _multilabel_problem(rng)
    model = MLPClassifier((3,), random_state=0)
    with pytest.raises(ValueError, match=r"3 label columns: classes must be .* np\.arange\(3\)"):
        model.partial_fit(X, Y[:, :3], classes=np.arange(4))
    assert not hasattr(model, "classes_")


@pytest.mark.parametrize(
    "first, later, message",
    [
        ("multilabel", "fewer columns", "fitted on a multilabel indicator matrix of 4 label columns, "
                                        "but this y has 3 columns"),
        ("multilabel", "more columns", "of 4 label columns, but this y has 5 columns"),
        ("multilabel", "labels", "of 4 label columns, but this y has one label per row"),
        ("labels", "multilabel", r"fitted on one label per row \(classes_ = \[0 1 2 3\]\), "
                                 "but this y has 4 columns"),
    ],
)
@pytest.mark.parametrize("start", ["partial_fit", "fit"])
def test_partial_fit_refuses_targets_of_another_form(start, first, later, message, rng):
    """A multilabel model given one label per row would train the labels as indicator
    columns (scikit-learn does so silently); other mismatches failed in LabelBinarizer."""
    X, Y = _multilabel_problem(rng)
    targets = {
        "multilabel": Y,
        "labels": np.arange(len(X)) % 4,
        "fewer columns": Y[:, :3],
        "more columns": np.c_[Y, Y[:, :1]],
    }
    model = MLPClassifier((3,), random_state=0)
    if start == "fit":
        model.set_params(max_iter=2).fit(X, targets[first])
    else:
        model.partial_fit(X, targets[first], classes=np.arange(4))
    weights = [w.copy() for w in model.coefs_ + model.intercepts_]
    for call in (model.partial_fit, model.set_params(warm_start=True).fit):
        with pytest.raises(ValueError, match=message):
            call(X, targets[later])
        assert all(np.array_equal(w, v) for w, v in zip(weights, model.coefs_ + model.intercepts_))
    model.partial_fit(X, targets[first])


def test_multilabel_partial_fit_with_class_weights_per_label(rng):
    X, Y = _multilabel_problem(rng)
    weights = [{0: 1, 1: 3}] * 4
    stepped = MLPClassifier((5,), class_weight=weights, random_state=np.random.RandomState(1))
    stepped.partial_fit(X, Y, classes=np.arange(4))
    fitted = MLPClassifier((5,), class_weight=weights, max_iter=1,
                           random_state=np.random.RandomState(1)).fit(X, Y)
    assert _same_weights(stepped, fitted)
    plain = MLPClassifier((5,), random_state=np.random.RandomState(1)).partial_fit(X, Y, classes=np.arange(4))
    assert not _same_weights(stepped, plain)


# ---------------------------------------------------------------------------
# activation: fastbp's own, and one per hidden layer
# ---------------------------------------------------------------------------

SOLVERS = ["sgd", "adam", "lbfgs"]


@pytest.fixture
def regression(rng):
    X = rng.normal(size=(40, 3))
    return X, X @ [1.0, -2.0, 0.5] + 0.3 * np.abs(X[:, 0]) + 0.1 * rng.normal(size=40)


def assert_same_fit(a, b, X):
    assert a.loss_ == b.loss_ and a.n_iter_ == b.n_iter_
    for x, y in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        assert_array_equal(x, y)
    assert_array_equal(a.predict(X), b.predict(X))


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("cls", [MLPClassifier, MLPRegressor])
@pytest.mark.parametrize("name", ["logistic", "relu", "gelu"])
def test_a_tuple_of_one_activation_per_layer_is_that_activation_bit_for_bit(name, cls, solver, three_classes):
    X, y = three_classes
    y = y if cls is MLPClassifier else y.astype(float)
    params = dict(solver=solver, max_iter=12, random_state=0)
    plain = cls(hidden_layer_sizes=(4,), activation=name, **params).fit(X, y)
    assert_same_fit(cls(hidden_layer_sizes=(4,), activation=(name,), **params).fit(X, y), plain, X)
    plain = cls(hidden_layer_sizes=(4, 3), activation=name, **params).fit(X, y)
    assert_same_fit(cls(hidden_layer_sizes=(4, 3), activation=(name, name), **params).fit(X, y), plain, X)


@pytest.mark.parametrize("solver", SOLVERS)
def test_activations_per_layer_give_each_layer_its_own(solver, three_classes):
    X, y = three_classes
    params = dict(hidden_layer_sizes=(5, 4, 3), solver=solver, max_iter=30, random_state=0)
    model = MLPClassifier(activation=("gelu", "leaky_relu", "softplus"), **params).fit(X, y)
    assert model._network.activations == ("gelu", "leaky_relu", "softplus", "softmax")
    assert model.predict_proba(X).shape == (30, 3)
    swapped = MLPClassifier(activation=("softplus", "leaky_relu", "gelu"), **params).fit(X, y)
    assert not np.allclose(swapped.predict_proba(X), model.predict_proba(X))
    model.partial_fit(X, y) if solver != "lbfgs" else model.set_params(warm_start=True).fit(X, y)
    assert model._network.activations[:3] == ("gelu", "leaky_relu", "softplus")


@pytest.mark.parametrize(
    "hidden, activation, error, message",
    [
        ((4, 3), ("relu",), "InvalidParameterError", r"names 1 activation\(s\).*2 hidden layer\(s\)"),
        ((4,), ("relu", "tanh"), "InvalidParameterError", r"names 2 activation\(s\).*1 hidden layer\(s\)"),
        (5, ("relu", "tanh"), "InvalidParameterError", r"1 hidden layer\(s\)"),
        ((4, 3), ("relu", "swish"), "InvalidParameterError", "got 'swish' in"),
        ((4, 3), ("relu", 3), "InvalidParameterError", "got 3 in"),
        ((4, 3), ["relu", "tanh"], "InvalidParameterError", "'activation' parameter .* must be a str among"),
        ((4,), "swish", "InvalidParameterError", "'activation' parameter .* must be a str among"),
    ],
    ids=["too-few", "too-many", "int-sizes", "unknown-name", "not-a-name", "list", "unknown"],
)
def test_bad_activations_are_refused_by_name_and_leave_a_fitted_model_as_it_was(
    hidden, activation, error, message, three_classes
):
    X, y = three_classes
    model = MLPClassifier(hidden, max_iter=3, random_state=0).fit(X, y)
    weights = [w.copy() for w in model.coefs_]
    with pytest.raises(ValueError, match=message) as raised:
        model.set_params(activation=activation, warm_start=False).fit(X, y)
    assert type(raised.value).__name__ == error
    assert all(np.array_equal(a, b) for a, b in zip(model.coefs_, weights))
    with pytest.raises(ValueError, match=message):
        MLPClassifier(hidden, activation=activation).partial_fit(X, y, classes=[0, 1, 2])


# ---------------------------------------------------------------------------
# loss: absolute_error and huber
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("loss", ["absolute_error", "huber"])
def test_regression_losses_train_with_every_solver(loss, solver, regression):
    X, y = regression
    model = MLPRegressor(hidden_layer_sizes=(8,), loss=loss, huber_delta=0.5, solver=solver, learning_rate_init=0.01,
                         max_iter=200, random_state=0).fit(X, y)
    assert model.out_activation_ == "identity"
    assert model._network.loss == loss
    assert model.score(X, y) > 0.9  # R2
    predicted = model.predict(X)
    residuals = np.abs(predicted - y)
    if loss == "absolute_error":
        assert model.loss_ == pytest.approx(residuals.mean() + 0.5 * model.alpha * sum(
            (c**2).sum() for c in model.coefs_) / len(y), rel=1e-6 if solver == "lbfgs" else 0.2)


def test_huber_delta_is_used_and_checked(regression):
    X, y = regression
    params = dict(hidden_layer_sizes=(6,), loss="huber", solver="lbfgs", max_iter=30, random_state=0)
    small, large = MLPRegressor(huber_delta=0.05, **params).fit(X, y), MLPRegressor(huber_delta=5.0, **params).fit(X, y)
    assert not np.array_equal(small.coefs_[0], large.coefs_[0])
    assert small._network.huber_delta == 0.05
    for bad in (0, -1.0, "1"):
        with pytest.raises(ValueError, match="'huber_delta' parameter of MLPRegressor must be"):
            MLPRegressor(huber_delta=bad).fit(X, y)
    # another loss ignores it
    params = dict(hidden_layer_sizes=(6,), solver="lbfgs", max_iter=30, random_state=0)
    assert_same_fit(MLPRegressor(**params).fit(X, y), MLPRegressor(huber_delta=7.0, **params).fit(X, y), X)


def test_changing_huber_delta_after_a_fit_changes_the_next_one(regression):
    X, y = regression
    model = MLPRegressor(hidden_layer_sizes=(6,), loss="huber", huber_delta=0.1, solver="sgd", max_iter=2, random_state=0).fit(X, y)
    model.set_params(huber_delta=3.0, warm_start=True).fit(X, y)
    assert model._network.huber_delta == 3.0


def test_the_classifier_has_no_huber_delta():
    assert "huber_delta" not in MLPClassifier().get_params()
    with pytest.raises(TypeError, match="huber_delta"):
        MLPClassifier(huber_delta=1.0)

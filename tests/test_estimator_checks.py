"""scikit-learn's estimator checks and API identity for fastbp's MLPs.

``parametrize_with_checks`` runs scikit-learn's whole API contract (cloning,
pickling, input validation, dtypes, sparse input, sample weights, n_features
checks, idempotent fit, ...) on every solver family. scikit-learn's own test
suite runs these checks on its MLPs with ``max_iter=100`` and default hidden
layers; the configurations here stay close to that so the accuracy checks
(``check_classifiers_train``, ``check_regressors_train``) keep their margin,
and shrink only where scikit-learn's MLPs pass the same checks with the same
arguments (L-BFGS with ``hidden_layer_sizes=(10,)``).

No check is expected to fail: scikit-learn's estimators pass all of them with
these arguments, so a drop-in must too.

The second half checks that constructor signatures (names, order, kinds,
defaults), ``get_params`` keys, parameter constraints, public methods and
tags are those of ``sklearn.neural_network``.
"""

import inspect

import numpy as np
import pytest
import sklearn.neural_network as sk_nn
from sklearn.utils._param_validation import Interval, Options
from sklearn.utils.estimator_checks import parametrize_with_checks

from fastbp import MLPClassifier, MLPRegressor

PAIRS = [(MLPClassifier, sk_nn.MLPClassifier), (MLPRegressor, sk_nn.MLPRegressor)]
PAIR_IDS = ["MLPClassifier", "MLPRegressor"]

# One instance per solver family and estimator. scikit-learn's own
# test_common runs its MLPs with max_iter=100 (default adam, hidden (100,));
# the same instance for sgd; lbfgs with a 10-unit hidden layer and
# max_iter=50 (scikit-learn's MLPs pass every check with it too, in a
# fraction of the time of lbfgs on 100 units).
CHECKED_ESTIMATORS = [
    MLPClassifier(max_iter=100),
    MLPRegressor(max_iter=100),
    MLPClassifier(solver="sgd", max_iter=100),
    MLPRegressor(solver="sgd", max_iter=100),
    MLPClassifier(solver="lbfgs", hidden_layer_sizes=(10,), max_iter=50),
    MLPRegressor(solver="lbfgs", hidden_layer_sizes=(10,), max_iter=50),
]


# max_iter is small on purpose: the ConvergenceWarning is expected noise.
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@parametrize_with_checks(CHECKED_ESTIMATORS)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# ---------------------------------------------------------------------------
# The public surface equals scikit-learn's, plus fastbp's documented additions
# ---------------------------------------------------------------------------

# Keyword-only constructor parameters appended after scikit-learn's ...
TRAINING_OPTIONS = {"dropout": 0.0, "max_grad_norm": None, "warmup_fraction": 0.0}
EXTRA_PARAMS = {
    MLPClassifier: {"early_stopping_metric": "score", "class_weight": None, **TRAINING_OPTIONS},
    MLPRegressor: {"early_stopping_metric": "score", "huber_delta": 1.0, **TRAINING_OPTIONS},
}
# ... values added to scikit-learn's options of a parameter (and the other
# constraints of the parameter after its options) ...
NEW_ACTIVATIONS = ({"leaky_relu", "gelu", "silu", "softplus"}, [tuple])
EXTRA_OPTIONS = {
    (MLPClassifier, "activation"): NEW_ACTIVATIONS,
    (MLPRegressor, "activation"): NEW_ACTIVATIONS,
    (MLPRegressor, "loss"): ({"absolute_error", "huber"}, []),
    (MLPClassifier, "learning_rate"): ({"cosine"}, []),
    (MLPRegressor, "learning_rate"): ({"cosine"}, []),
}
# ... keyword arguments appended to fit (the names HistGradientBoosting uses) ...
EXTRA_FIT_ARGS = ["X_val", "y_val", "sample_weight_val"]
# ... and scikit-learn's callback API (scikit-learn >= 1.9).
EXTRA_METHODS = {"set_callbacks"} if hasattr(MLPClassifier, "set_callbacks") else set()


def without_extras(ours, mapping):
    return {k: v for k, v in mapping.items() if k not in EXTRA_PARAMS[ours]}


@pytest.mark.parametrize("ours, theirs", PAIRS, ids=PAIR_IDS)
def test_constructor_signature_matches_sklearn(ours, theirs):
    """Same parameter names, order, kinds (positional / keyword-only) and defaults."""

    def describe(cls):
        params = list(inspect.signature(cls.__init__).parameters.values())
        return [(p.name, p.kind, p.default) for p in params]

    mine, ref = describe(ours), describe(theirs)
    assert mine[: len(ref)] == ref
    keyword_only = inspect.Parameter.KEYWORD_ONLY
    assert mine[len(ref):] == [(k, keyword_only, v) for k, v in EXTRA_PARAMS[ours].items()]


@pytest.mark.parametrize("ours, theirs", PAIRS, ids=PAIR_IDS)
def test_get_params_matches_sklearn(ours, theirs):
    """get_params: same keys and default values, for both deep and shallow."""
    for deep in (True, False):
        mine = ours().get_params(deep=deep)
        ref = theirs().get_params(deep=deep)
        assert {k: mine[k] for k in EXTRA_PARAMS[ours]} == EXTRA_PARAMS[ours]
        mine = without_extras(ours, mine)
        assert list(mine) == list(ref)
        assert mine == ref


@pytest.mark.parametrize("ours, theirs", PAIRS, ids=PAIR_IDS)
def test_get_params_round_trips_non_default_values(ours, theirs):
    """Every constructor argument is stored unchanged under its own name."""
    rng = np.random.RandomState(0)
    values = dict(
        hidden_layer_sizes=(3, 2),
        activation="tanh",
        solver="sgd",
        alpha=0.5,
        batch_size=7,
        learning_rate="invscaling",
        learning_rate_init=0.3,
        power_t=0.7,
        max_iter=11,
        shuffle=False,
        random_state=rng,
        tol=0.25,
        verbose=3,
        warm_start=True,
        momentum=0.4,
        nesterovs_momentum=False,
        early_stopping=True,
        validation_fraction=0.3,
        beta_1=0.5,
        beta_2=0.6,
        epsilon=1e-3,
        n_iter_no_change=4,
        max_fun=123,
    )
    if ours is MLPRegressor:
        values["loss"] = "poisson"
    params = ours(**values).get_params()
    assert without_extras(ours, params) == theirs(**values).get_params()
    for name, value in values.items():
        assert params[name] is value


@pytest.mark.parametrize("ours, theirs", PAIRS, ids=PAIR_IDS)
def test_parameter_constraints_match_sklearn(ours, theirs):
    """The validation table has the same keys and the same constraints."""

    def describe(constraint):
        # Compare by content: the str() of a StrOptions lists a set, whose
        # order varies between processes.
        if isinstance(constraint, Interval):
            return ("Interval", constraint.type, constraint.left, constraint.right, constraint.closed)
        if isinstance(constraint, Options):  # StrOptions too
            return (type(constraint).__name__, constraint.type, frozenset(constraint.options))
        return constraint

    mine = ours._parameter_constraints
    ref = theirs._parameter_constraints
    assert sorted(mine) == sorted(set(ref) | set(EXTRA_PARAMS[ours]))
    for name in ref:
        if (ours, name) in EXTRA_OPTIONS:
            added, others = EXTRA_OPTIONS[ours, name]
            (options,) = ref[name]
            assert describe(mine[name][0]) == ("StrOptions", str, frozenset(options.options | added)), name
            assert mine[name][1:] == others, name
        else:
            assert [describe(c) for c in mine[name]] == [describe(c) for c in ref[name]], name


@pytest.mark.parametrize("ours, theirs", PAIRS, ids=PAIR_IDS)
def test_public_methods_match_sklearn(ours, theirs):
    """The same public methods, with the same signatures."""

    def methods(cls):
        return {
            name: inspect.signature(getattr(cls, name))
            for name in dir(cls)
            if not name.startswith("_") and callable(getattr(cls, name, None))
        }

    mine, ref = methods(ours), methods(theirs)
    assert sorted(mine) == sorted(set(ref) | EXTRA_METHODS)
    for name in ref:
        described = [(p.name, p.kind, p.default) for p in mine[name].parameters.values()]
        expected = [(p.name, p.kind, p.default) for p in ref[name].parameters.values()]
        if name == "fit":
            positional = inspect.Parameter.POSITIONAL_OR_KEYWORD
            expected += [(arg, positional, None) for arg in EXTRA_FIT_ARGS]
        elif name == "set_fit_request":  # metadata routing lists fit's extra arguments too
            routed = expected[1][1:]
            expected = sorted(expected[:1] + [(arg, *routed) for arg in EXTRA_FIT_ARGS] + expected[1:])
            described = sorted(described)
        assert described == expected, name


@pytest.mark.parametrize("ours, theirs", PAIRS, ids=PAIR_IDS)
def test_tags_match_sklearn(ours, theirs):
    """Estimator tags (sparse input, multi-label, estimator type) as scikit-learn's."""
    assert ours().__sklearn_tags__() == theirs().__sklearn_tags__()

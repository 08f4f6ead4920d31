"""scikit-learn's own MLP tests, run against fastbp's estimators.

The installed scikit-learn's ``sklearn/neural_network/tests/test_mlp.py`` is
executed with ``sklearn.neural_network.MLPClassifier`` / ``MLPRegressor``
swapped for fastbp's, so its module-level names and its parametrize lists
hold fastbp's classes; its ``test_*`` functions are then exposed here, each
one (and each parameter set) a pytest item of its own. Tests that reach into
scikit-learn's private internals are skipped, each named in
:data:`PRIVATE_INTERNALS` with the reason. scikit-learn's conftest is not
loaded, so its ``global_random_seed`` fixture is defined here with its default.
"""

import importlib.util
import sys
from pathlib import Path
from unittest import mock

import pytest
import sklearn
import sklearn.neural_network

import fastbp

SKLEARN_TEST_MLP = Path(sklearn.__file__).parent / "neural_network" / "tests" / "test_mlp.py"

# Tests that call scikit-learn's private implementation, which fastbp does not
# have, with the reason. Tests that only read or set private attributes fastbp
# keeps with scikit-learn's meaning (``_optimizer.learning_rate``,
# ``_no_improvement_count``, the state ``test_fit`` sets by hand) run.
PRIVATE_INTERNALS = {
    "test_gradient": (
        "calls MLPClassifier._loss_grad_lbfgs(packed, X, Y, sample_weight, activations, "
        "deltas, coef_grads, intercept_grads), scikit-learn's private L-BFGS objective on "
        "its per-layer work lists; fastbp's gradients are checked against finite "
        "differences in tests/test_gradients.py"
    ),
}


def _load_sklearn_tests():
    """The installed scikit-learn's test_mlp module, built on fastbp's estimators."""
    if not SKLEARN_TEST_MLP.is_file():
        raise ImportError(
            f"scikit-learn {sklearn.__version__} is installed without its tests "
            f"({SKLEARN_TEST_MLP} is missing); install it from its wheel."
        )
    spec = importlib.util.spec_from_file_location("sklearn_test_mlp_on_fastbp", SKLEARN_TEST_MLP)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # so that what it defines can be pickled, as when imported
    # Patched only while the module runs: its imports and parametrize lists
    # take fastbp's classes, and the rest of the process keeps scikit-learn's.
    with mock.patch.multiple(
        sklearn.neural_network,
        MLPClassifier=fastbp.MLPClassifier,
        MLPRegressor=fastbp.MLPRegressor,
    ):
        spec.loader.exec_module(module)
    return module


sklearn_tests = _load_sklearn_tests()
SKLEARN_TEST_NAMES = sorted(
    name for name, obj in vars(sklearn_tests).items() if name.startswith("test_") and callable(obj)
)
for _name in SKLEARN_TEST_NAMES:
    _test = getattr(sklearn_tests, _name)
    if _name in PRIVATE_INTERNALS:
        _test = pytest.mark.skip(reason=f"scikit-learn internals: {PRIVATE_INTERNALS[_name]}")(_test)
    globals()[_name] = _test
del _name, _test


@pytest.fixture
def global_random_seed():
    """The seed scikit-learn's conftest gives its ``global_random_seed`` tests by default."""
    return 42


def _sklearn_estimators_in(values):
    return [
        value for value in values
        if isinstance(value, type) and value.__module__.startswith("sklearn.neural_network")
    ]


def test_suite_is_built_on_fastbp():
    """The loaded module, and every parametrize list in it, uses fastbp's estimators."""
    assert sklearn_tests.MLPClassifier is fastbp.MLPClassifier
    assert sklearn_tests.MLPRegressor is fastbp.MLPRegressor
    assert _sklearn_estimators_in(vars(sklearn_tests).values()) == []
    parametrized = []
    for name in SKLEARN_TEST_NAMES:
        for mark in getattr(getattr(sklearn_tests, name), "pytestmark", []):
            if mark.name == "parametrize":
                values = [v for row in mark.args[1] for v in (row if isinstance(row, tuple) else [row])]
                parametrized.extend(values)
                assert _sklearn_estimators_in(values) == [], name
    assert fastbp.MLPClassifier in parametrized and fastbp.MLPRegressor in parametrized
    # the swap was undone: the rest of the process sees scikit-learn's classes
    assert sklearn.neural_network.MLPClassifier.__module__.startswith("sklearn.")
    assert len(SKLEARN_TEST_NAMES) > 30

"""What the installed scikit-learn, the tests' reference, can do (pip installs older ones on older Pythons)."""

import warnings

from sklearn.neural_network import MLPClassifier


def _handles_string_labels_with_early_stopping():
    """False before scikit-learn#33774: early stopping ran np.isnan on predicted labels (TypeError on strings)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            MLPClassifier((2,), early_stopping=True, max_iter=1, validation_fraction=0.5).fit(
                [[0.0], [1.0]] * 4, ["a", "b"] * 4)
        except TypeError:
            return False
    return True


STRING_LABELS_WITH_EARLY_STOPPING = _handles_string_labels_with_early_stopping()

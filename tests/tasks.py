"""Small data sets for every task an MLP handles, shared by the model-file and interop tests."""

import numpy as np

CLASSIFICATION = ["binary", "multiclass", "multilabel"]
REGRESSION = ["single", "multioutput", "poisson"]


def make_data(task, seed=0, n_samples=40, n_features=4):
    """X and y for ``task`` (classification labels are strings for multiclass)."""
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n_samples, n_features))
    z = X @ rng.normal(size=(n_features, 3))
    if task == "binary":
        y = (z[:, 0] > 0).astype(int)
    elif task == "multiclass":
        y = np.array(["ant", "bee", "cat"])[np.argmax(z, axis=1)]
    elif task == "multilabel":
        y = (z > 0).astype(int)
    elif task == "single":
        y = z[:, 0]
    elif task == "multioutput":
        y = z[:, :2]
    elif task == "poisson":
        y = rng.poisson(np.exp(0.3 * z[:, 0])).astype(float)
    return X, y

"""Workloads shared by the asv suite and ``compare.py``: data made once and cached.

Every workload trains for a fixed amount of work: ``tol=0`` and a huge
``n_iter_no_change`` stop nothing early, so ``max_iter`` epochs (or L-BFGS
iterations) always run, and ``random_state=0`` fixes the initialisation and
the shuffling. Data sets are generated once, stored under the cache directory
(``$FASTBP_BENCH_CACHE`` or ``benchmarks/cache/``) and memoised in-process, so
asv's many benchmark processes do not regenerate them.
"""

import functools
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

# Bump when a generator below changes, so stale cached arrays are not reused.
DATA_VERSION = 1

N_ITER_NO_CHANGE = 10**9

CACHE_DIR = Path(
    os.environ.get("FASTBP_BENCH_CACHE", Path(__file__).resolve().parent.parent / "cache")
)


@dataclass(frozen=True)
class Workload:
    """One benchmark workload: a data set, a network and a fixed training budget.

    Parameters
    ----------
    name : str
        Short name used on the command line and as the asv parameter.
    task : {"classification", "regression"}
        Which estimator trains it.
    dataset : str
        Key of the data set in :data:`DATASETS`.
    hidden_layer_sizes : tuple of int
        The hidden layers (the input and output sizes follow from the data).
    solver : {"adam", "sgd", "lbfgs"}
        The optimizer.
    batch_size : int or None
        Mini-batch size of the stochastic solvers (None for L-BFGS).
    max_iter : int
        Epochs, or L-BFGS iterations.
    dtype : str
        dtype of X (and of a regression target).
    momentum : float
        Momentum of "sgd" (unused by the other solvers).
    """

    name: str
    task: str
    dataset: str
    hidden_layer_sizes: tuple
    solver: str
    batch_size: object
    max_iter: int
    dtype: str
    momentum: float = 0.9

    @property
    def is_classifier(self):
        return self.task == "classification"

    def estimator_params(self):
        """Constructor parameters shared by fastbp and scikit-learn."""
        params = dict(
            hidden_layer_sizes=self.hidden_layer_sizes,
            solver=self.solver,
            max_iter=self.max_iter,
            tol=0.0,
            n_iter_no_change=N_ITER_NO_CHANGE,
            random_state=0,
        )
        if self.batch_size is not None:
            params["batch_size"] = self.batch_size
        if self.solver == "sgd":
            params["momentum"] = self.momentum
        return params

    def make_estimator(self, module, **overrides):
        """An unfitted ``module.MLPClassifier`` / ``module.MLPRegressor`` for this workload.

        ``module`` is ``fastbp`` or ``sklearn.neural_network``.
        """
        cls = module.MLPClassifier if self.is_classifier else module.MLPRegressor
        params = self.estimator_params()
        params.update(overrides)
        return cls(**params)


WORKLOADS = {
    w.name: w
    for w in [
        Workload("digits", "classification", "digits", (100,), "adam", 200, 50, "float64"),
        Workload("clf-medium", "classification", "clf-medium", (256, 128), "adam", 256, 5, "float32"),
        Workload("reg-wide", "regression", "reg-wide", (512, 512), "adam", 512, 2, "float32"),
        Workload("small-batch", "classification", "clf-medium", (64,), "adam", 32, 1, "float32"),
        Workload("online", "regression", "online", (32,), "sgd", 1, 1, "float64", momentum=0.0),
        Workload("lbfgs", "classification", "lbfgs", (50,), "lbfgs", None, 200, "float64"),
        Workload("sparse", "classification", "sparse", (128,), "adam", 200, 3, "float32"),
    ]
}

CLASSIFICATION_WORKLOADS = [w.name for w in WORKLOADS.values() if w.is_classifier]
REGRESSION_WORKLOADS = [w.name for w in WORKLOADS.values() if not w.is_classifier]


# --------------------------------------------------------------------------- data sets


def _digits():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


def _clf_medium():
    from sklearn.datasets import make_classification

    return make_classification(
        n_samples=50_000, n_features=100, n_informative=50, n_classes=10, random_state=0
    )


def _scaled_regression(n_samples, n_features, noise):
    from sklearn.datasets import make_regression

    X, y = make_regression(
        n_samples=n_samples, n_features=n_features, noise=noise, random_state=0
    )
    return X, y / y.std()


def _reg_wide():
    return _scaled_regression(50_000, 256, 1.0)


def _online():
    return _scaled_regression(20_000, 20, 0.1)


def _lbfgs():
    from sklearn.datasets import make_classification

    return make_classification(n_samples=5_000, n_features=30, random_state=0)


def _sparse(n_samples=20_000, n_features=5_000, n_classes=5, tokens_per_row=29):
    """A TF-IDF-like CSR matrix: Zipfian word counts with one topic per class.

    Each document draws ``tokens_per_row`` tokens on average (Poisson), 70%
    from a Zipf law over the whole vocabulary and 30% from its class's topic
    (250 words); repeated tokens become counts, then sublinear TF-IDF with
    L2-normalised rows, as ``TfidfVectorizer`` makes them. About 0.5% of the
    entries are non-zero.
    """
    from sklearn.feature_extraction.text import TfidfTransformer

    rng = np.random.RandomState(0)
    y = rng.randint(n_classes, size=n_samples)
    zipf = 1.0 / np.arange(1, n_features + 1) ** 1.1
    zipf /= zipf.sum()
    word_rank = rng.permutation(n_features)
    topics = np.array([rng.choice(n_features, 250, replace=False) for _ in range(n_classes)])
    lengths = np.maximum(1, rng.poisson(tokens_per_row, size=n_samples))
    rows = np.repeat(np.arange(n_samples), lengths)
    n_tokens = rows.shape[0]
    from_topic = rng.rand(n_tokens) < 0.3
    cols = word_rank[rng.choice(n_features, size=n_tokens, p=zipf)]
    topic_words = topics[y[rows], rng.randint(250, size=n_tokens)]
    cols = np.where(from_topic, topic_words, cols)
    counts = sp.csr_matrix(
        (np.ones(n_tokens), (rows, cols)), shape=(n_samples, n_features)
    )
    counts.sum_duplicates()
    X = TfidfTransformer(sublinear_tf=True).fit_transform(counts).tocsr()
    X.sort_indices()
    return X, y


DATASETS = {
    "digits": _digits,
    "clf-medium": _clf_medium,
    "reg-wide": _reg_wide,
    "online": _online,
    "lbfgs": _lbfgs,
    "sparse": _sparse,
}


def _save_atomic(path, X, y):
    """Write X and y to ``path`` (.npz) through a temporary file, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz")
    os.close(fd)
    try:
        if sp.issparse(X):
            np.savez(tmp, sparse=True, data=X.data, indices=X.indices, indptr=X.indptr,
                     shape=np.array(X.shape), y=y)
        else:
            np.savez(tmp, sparse=False, X=X, y=y)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _load(path):
    with np.load(path) as f:
        if bool(f["sparse"]):
            X = sp.csr_matrix((f["data"], f["indices"], f["indptr"]), shape=tuple(f["shape"]))
        else:
            X = f["X"]
        return X, f["y"]


@functools.lru_cache(maxsize=None)
def load_dataset(name):
    """``(X, y)`` of a data set in float64, from the disk cache or generated once."""
    path = CACHE_DIR / f"{name}-v{DATA_VERSION}.npz"
    try:
        return _load(path)
    except (OSError, ValueError, KeyError):
        pass
    X, y = DATASETS[name]()
    try:
        _save_atomic(path, X, y)
    except OSError as exc:  # a read-only checkout still benchmarks, just regenerates
        warnings.warn(f"could not cache data set {name!r} in {path}: {exc}")
    return X, y


@functools.lru_cache(maxsize=None)
def workload_data(name):
    """``(X, y)`` of a workload: X (dense C-contiguous or CSR) in the workload's dtype.

    A regression target is cast to the same dtype; class labels stay integers.
    """
    workload = WORKLOADS[name]
    X, y = load_dataset(workload.dataset)
    X = X.astype(workload.dtype) if sp.issparse(X) else np.ascontiguousarray(X, dtype=workload.dtype)
    if not workload.is_classifier:
        y = np.ascontiguousarray(y, dtype=workload.dtype)
    return X, y


def warmup_slice(name):
    """A small slice of a workload's data with the same dtype and layout (for JIT warm-up)."""
    workload = WORKLOADS[name]
    X, y = workload_data(name)
    n = min(X.shape[0], max(256, 2 * (workload.batch_size or 0)))
    return X[:n], y[:n]


def warm_up(module, name):
    """Fit and predict once on a small slice so every kernel of the real fit is compiled."""
    from sklearn.exceptions import ConvergenceWarning

    workload = WORKLOADS[name]
    X, y = warmup_slice(name)
    est = workload.make_estimator(module, max_iter=2 if workload.solver == "lbfgs" else 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    est.predict(X)
    return est


def fit(estimator, X, y):
    """``estimator.fit(X, y)`` without the expected ConvergenceWarning of a fixed budget."""
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(X, y)


# --------------------------------------------------------------------------- FLOP counts


def layer_units(name):
    """Units of every layer, input and output included."""
    workload = WORKLOADS[name]
    X, y = workload_data(name)
    if workload.is_classifier:
        n_classes = np.unique(y).shape[0]
        n_out = 1 if n_classes == 2 else n_classes
    else:
        n_out = 1
    return [X.shape[1], *workload.hidden_layer_sizes, n_out]


def flops_per_sample(name):
    """Multiply-add FLOPs (x2) of one forward + backward pass of one sample.

    Forward: ``2 * fan_in * fan_out`` per layer. Backward: the same again for
    every weight gradient, and again for every delta propagated to a hidden
    layer (none to the input). With a sparse X the first layer costs
    ``2 * nnz_per_row * fan_out`` in forward and in its weight gradient.
    Element-wise work (activations, loss, optimizer updates) is not counted,
    so the roofline built on it is a lower bound.
    """
    X, _ = workload_data(name)
    units = layer_units(name)
    first_in = X.nnz / X.shape[0] if sp.issparse(X) else units[0]
    total = 0.0
    for i, (fan_in, fan_out) in enumerate(zip(units[:-1], units[1:])):
        k = first_in if i == 0 else fan_in
        total += 2 * k * fan_out  # forward
        total += 2 * k * fan_out  # weight gradient
        if i > 0:
            total += 2 * fan_in * fan_out  # delta to the layer below
    return total


def training_flops(name, n_iter=None):
    """FLOPs of a whole fit: passes over the data x samples x :func:`flops_per_sample`.

    For L-BFGS a pass is one loss-and-gradient evaluation on all samples; the
    line search may evaluate more than once per iteration, so ``n_iter``
    (default ``max_iter``) evaluations is a lower bound.
    """
    workload = WORKLOADS[name]
    X, _ = workload_data(name)
    passes = workload.max_iter if n_iter is None else n_iter
    return passes * X.shape[0] * flops_per_sample(name)


# --------------------------------------------------------------------------- asv base


class _MLPBenchmark:
    """Base of the asv classes: fastbp on the workloads listed in ``params``.

    ``setup_cache`` (one per module, as asv keys it by where it is defined)
    fits every workload of the module once and hands the fitted models to
    ``time_predict`` and ``track_score``. ``setup`` loads the cached data and
    fits and predicts once on a small slice of the same dtype and layout, so
    Numba compiles (or loads from its cache) every kernel before anything is
    timed. The name starts with an underscore so asv does not collect it.
    """

    param_names = ["workload"]
    params = [[]]

    # One fit is one sample: fits take seconds, so no batching and no warm-up
    # calls of the timed function (compilation happens in setup).
    number = 1
    repeat = (3, 10, 60.0)
    rounds = 1
    warmup_time = 0
    timeout = 600
    setup_cache_timeout = 1800

    def _fit_all(self):
        import fastbp

        models = {}
        for name in self.params[0]:
            warm_up(fastbp, name)
            X, y = workload_data(name)
            models[name] = fit(WORKLOADS[name].make_estimator(fastbp), X, y)
        return models

    def setup(self, models, workload):
        import fastbp

        self.fastbp = fastbp
        self.workload = WORKLOADS[workload]
        self.X, self.y = workload_data(workload)
        warm_up(fastbp, workload)
        self.model = models[workload]

    def time_fit(self, models, workload):
        fit(self.workload.make_estimator(self.fastbp), self.X, self.y)

    def peakmem_fit(self, models, workload):
        fit(self.workload.make_estimator(self.fastbp), self.X, self.y)

    def time_predict(self, models, workload):
        self.model.predict(self.X)

    def track_score(self, models, workload):
        """Training score (accuracy or R^2) of the model fitted in ``setup_cache``."""
        return float(self.model.score(self.X, self.y))

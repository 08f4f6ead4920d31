#!/usr/bin/env python
"""Test score and fit time on real data sets that ship with a package: scikit-learn's MLP against fastbp.

Usage::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/real_data.py \
        [--datasets mnist1d digits diabetes] [--repeat 3] [--quick] [--json out.json]

Data sets (nothing is downloaded):

* ``mnist1d``: MNIST-1D, made by the ``mnist1d`` package (``pip install
  mnist1d``) with its ``make_dataset`` and default arguments: 5,000 sequences
  of 40 points, 10 classes, standardised, the package's 4,000 / 1,000
  train / test split. The package builds it from templates in its source;
  its ``get_dataset`` would download a copy instead and is not used.
* ``digits``: scikit-learn's bundled 8x8 digits (1,797 x 64, 10 classes),
  X / 16, a stratified 75 / 25 split (random_state=0).
* ``diabetes``: scikit-learn's bundled diabetes regression (442 x 10),
  standardised X and y (statistics of the training rows), a 75 / 25 split.

Every configuration of :data:`CONFIGURATIONS` whose task is the data set's
is fitted on the first 80% of the training rows and scored on the other 20%
(the validation rows); in each group (scikit-learn's own options, the same
options on fastbp, fastbp's options beyond scikit-learn) the configuration
with the best validation score is refitted on all training rows, ``--repeat``
times with the groups taking turns (each fit after a 0.3 s pause), and its
test score and median fit seconds are reported. Scores are accuracy or R^2.
A configuration whose options this fastbp does not have yet (issue 21's,
built in parallel) is listed as skipped, so the script runs at every commit
and includes them once they exist. fastbp's kernels are compiled on a small
slice before anything is timed.

Markdown goes to stdout, progress to stderr, everything to ``--json PATH``.
"""

import argparse
import json
import os
import random
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_diabetes, load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

import compare  # noqa: E402  (machine, versions and BLAS reports shared with compare.py)

PAUSE_SECONDS = 0.3


@dataclass(frozen=True)
class Configuration:
    """One estimator setting: its group, library, task and constructor parameters."""

    group: str
    library: str
    task: str
    params: dict = field(hash=False)

    @property
    def name(self):
        return ", ".join(f"{k}={v!r}" for k, v in self.params.items())


def _grid(task, library, group, **axes):
    """One Configuration per point of the grid ``axes`` (a dict of lists)."""
    points = [{}]
    for key, values in axes.items():
        points = [{**p, key: v} for p in points for v in values]
    return [Configuration(group, library, task, p) for p in points]


SKLEARN = "scikit-learn options"
NEW = "fastbp beyond scikit-learn"
_CLASSIFICATION_GRID = dict(
    solver=["adam"], hidden_layer_sizes=[(256,), (256, 128)], activation=["relu", "tanh"],
    alpha=[1e-4, 1e-2], max_iter=[200],
)
_REGRESSION_GRID = dict(
    solver=["adam", "lbfgs"], hidden_layer_sizes=[(64,), (64, 32)], activation=["relu", "tanh"],
    alpha=[1e-4, 1e-1], max_iter=[500],
)
_BASE = dict(solver="adam", hidden_layer_sizes=(256, 128), max_iter=200)

# Every setting compared, in one table: scikit-learn's own options on
# scikit-learn and (the drop-in) on fastbp, then issue 21's options on fastbp.
CONFIGURATIONS = [
    *_grid("classification", "scikit-learn", SKLEARN, **_CLASSIFICATION_GRID),
    *_grid("classification", "fastbp", SKLEARN, **_CLASSIFICATION_GRID),
    *_grid("regression", "scikit-learn", SKLEARN, **_REGRESSION_GRID),
    *_grid("regression", "fastbp", SKLEARN, **_REGRESSION_GRID),
    *[Configuration(NEW, "fastbp", "classification", {**_BASE, **extra}) for extra in (
        {"activation": "gelu"},
        {"activation": "silu"},
        {"activation": "leaky_relu"},
        {"activation": ("gelu", "tanh")},
        {"activation": "gelu", "dropout": 0.2},
        {"activation": "relu", "dropout": 0.2},
        {"activation": "gelu", "learning_rate": "cosine", "learning_rate_init": 3e-3},
        {"activation": "gelu", "dropout": 0.2, "learning_rate": "cosine",
         "learning_rate_init": 3e-3, "max_grad_norm": 1.0},
    )],
    *[Configuration(NEW, "fastbp", "regression", {"solver": "adam", "hidden_layer_sizes": (64, 32),
                                                  "max_iter": 500, **extra}) for extra in (
        {"loss": "huber"},
        {"loss": "absolute_error"},
        {"activation": "gelu"},
        {"activation": "gelu", "loss": "huber", "learning_rate": "cosine", "learning_rate_init": 3e-3},
    )],
]


# --------------------------------------------------------------------------- data


@dataclass
class DataSet:
    name: str
    task: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    source: str


def load_mnist1d():
    """MNIST-1D from the mnist1d package's generator (its default arguments and split)."""
    from mnist1d.data import get_dataset_args, make_dataset

    # make_dataset seeds the global generators: keep this process's
    saved = np.random.get_state(), random.getstate()
    try:
        data = make_dataset(get_dataset_args())
    finally:
        np.random.set_state(saved[0])
        random.setstate(saved[1])
    import mnist1d

    version = getattr(mnist1d, "__version__", None)
    if version is None:
        from importlib.metadata import version as installed_version

        version = installed_version("mnist1d")
    return DataSet("mnist1d", "classification", data["x"], data["y"], data["x_test"], data["y_test"],
                   f"mnist1d {version}, make_dataset(get_dataset_args())")


def load_digits_set():
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X / 16.0, y, test_size=0.25, stratify=y,
                                                        random_state=0)
    return DataSet("digits", "classification", X_train, y_train, X_test, y_test,
                   "sklearn.datasets.load_digits, X / 16")


def load_diabetes_set():
    X, y = load_diabetes(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    mean, std = X_train.mean(axis=0), X_train.std(axis=0)
    y_mean, y_std = y_train.mean(), y_train.std()
    return DataSet("diabetes", "regression", (X_train - mean) / std, (y_train - y_mean) / y_std,
                   (X_test - mean) / std, (y_test - y_mean) / y_std,
                   "sklearn.datasets.load_diabetes, standardised X and y")


LOADERS = {"mnist1d": load_mnist1d, "digits": load_digits_set, "diabetes": load_diabetes_set}


# --------------------------------------------------------------------------- fits


def estimator(config, random_state=0):
    """A new estimator for ``config`` (TypeError for a parameter the library lacks)."""
    if config.library == "scikit-learn":
        from sklearn.neural_network import MLPClassifier, MLPRegressor
    else:
        from fastbp import MLPClassifier, MLPRegressor
    cls = MLPClassifier if config.task == "classification" else MLPRegressor
    return cls(random_state=random_state, **config.params)


def available(config, data):
    """None if ``config`` runs here, else why not; fastbp compiles its kernels on the way."""
    try:
        model = estimator(config)
        rows = slice(0, min(64, len(data.X_train)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clone(model).set_params(max_iter=2).fit(data.X_train[rows], data.y_train[rows])
    except TypeError as exc:  # also scikit-learn's InvalidParameterError, raised at fit
        return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    return None


def timed_fit(config, X, y):
    """The fitted model and its fit seconds (after a pause for idle BLAS threads)."""
    time.sleep(PAUSE_SECONDS)
    model = estimator(config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning at max_iter
        start = time.perf_counter()
        model.fit(X, y)
        seconds = time.perf_counter() - start
    return model, seconds


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def run_dataset(data, repeat, quick):
    """Validation runs of every configuration, then the timed refits of each group's best."""
    n_fit = int(0.8 * len(data.X_train))
    X_fit, y_fit = data.X_train[:n_fit], data.y_train[:n_fit]
    X_val, y_val = data.X_train[n_fit:], data.y_train[n_fit:]
    rows, skipped = [], []
    for config in [c for c in CONFIGURATIONS if c.task == data.task]:
        if quick:
            config = Configuration(config.group, config.library, config.task,
                                   {**config.params, "max_iter": 5})
        reason = available(config, data)
        if reason is not None:
            skipped.append({"group": config.group, "library": config.library,
                            "params": config.name, "reason": reason})
            log(f"{data.name}: skipped {config.library} {config.name}: {reason}")
            continue
        model, seconds = timed_fit(config, X_fit, y_fit)
        rows.append({"config": config, "validation": float(model.score(X_val, y_val)),
                     "seconds": seconds, "n_iter": int(model.n_iter_)})
        log(f"{data.name}: {config.library:12s} {config.name}: validation "
            f"{rows[-1]['validation']:.4f}, {seconds:.2f} s, {model.n_iter_} iterations")

    best = {}
    for row in rows:
        key = (row["config"].group, row["config"].library)
        if key not in best or row["validation"] > best[key]["validation"]:
            best[key] = row
    finals = {key: {"seconds": [], "test": None} for key in best}
    for _ in range(repeat):
        for key, row in best.items():
            model, seconds = timed_fit(row["config"], data.X_train, data.y_train)
            finals[key]["seconds"].append(seconds)
            finals[key]["test"] = float(model.score(data.X_test, data.y_test))
            finals[key]["n_iter"] = int(model.n_iter_)
    return rows, skipped, best, finals


# --------------------------------------------------------------------------- report


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def report(run):
    out = ["# fastbp against scikit-learn on real data", ""]
    out.append(f"- machine: {run['cpu']}, {run['cores']} cores, {run['ram_gib']:.1f} GiB")
    out.append(f"- load average (1 min): {run['load_start']:.2f} at the start, "
               f"{run['load_end']:.2f} at the end")
    out.append("- versions: " + ", ".join(f"{k} {v}" for k, v in run["versions"].items()))
    out.append(f"- fastbp from {run['fastbp_source']}")
    out.append("- BLAS: " + "; ".join(
        f"{b['library']} ({b['shipped_with']}) {b['version']} {b['kernel']}, {b['threads']} threads"
        for b in run["blas"] if b["user_api"] == "blas"))
    for warning in run["warnings"]:
        out.append(f"- WARNING: {warning}")
    out.append(f"- repeats of each final fit: {run['repeat']}{' (--quick: 5 iterations)' if run['quick'] else ''}")
    for data in run["datasets"]:
        score = "accuracy" if data["task"] == "classification" else "R^2"
        out += ["", f"## {data['name']}", "",
                f"{data['source']}: {data['n_train']} training rows ({data['n_fit']} fitted, "
                f"{data['n_train'] - data['n_fit']} for validation), {data['n_test']} test rows, "
                f"{data['n_features']} features. Scores: {score}.", ""]
        rows = []
        for final in data["finals"]:
            rows.append([final["group"], final["library"], final["params"], f"{final['validation']:.4f}",
                         f"**{final['test']:.4f}**", f"{final['seconds']:.3f}", final["n_iter"]])
        out.append(table(["group", "library", "best configuration (by validation)", "validation",
                          "test", "fit s (median)", "iterations"], rows))
        out += ["", "All configurations (fitted on the validation split's training rows):", ""]
        out.append(table(["group", "library", "configuration", "validation", "fit s", "iterations"],
                         [[r["group"], r["library"], r["params"], f"{r['validation']:.4f}",
                           f"{r['seconds']:.3f}", r["n_iter"]] for r in data["rows"]]))
        if data["skipped"]:
            out += ["", "Skipped (not in this fastbp):", ""]
            out += [f"- {s['params']}: {s['reason']}" for s in data["skipped"]]
    return "\n".join(out)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", choices=list(LOADERS), default=list(LOADERS))
    parser.add_argument("--repeat", type=int, default=3, help="timed refits of each group's best")
    parser.add_argument("--quick", action="store_true",
                        help="5 iterations per fit, one repeat: checks that everything runs")
    parser.add_argument("--json", type=Path, help="write every measurement here")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeat = 1
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    run_warnings = [f"{k}={os.environ[k]!r} is set: OpenBLAS is forced onto slower kernels; run with "
                    "`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE`"
                    for k in compare.OPENBLAS_VARS if k in os.environ]
    load_start = os.getloadavg()[0]
    if load_start > 0.5:
        run_warnings.append(f"the machine was busy at the start (load {load_start:.2f} on "
                            f"{os.cpu_count()} cores): timings are inflated and noisy")
    run = {"cpu": compare.cpu_model(), "cores": os.cpu_count(), "ram_gib": compare.ram_gib(),
           "versions": compare.versions([]), "fastbp_source": compare.fastbp_source(),
           "blas": compare.blas_info([])[0], "warnings": run_warnings, "repeat": args.repeat,
           "quick": args.quick, "load_start": load_start, "datasets": []}
    for name in args.datasets:
        try:
            data = LOADERS[name]()
        except ImportError as exc:
            log(f"{name}: skipped, {exc} (pip install mnist1d)")
            continue
        rows, skipped, best, finals = run_dataset(data, args.repeat, args.quick)
        run["datasets"].append({
            "name": data.name, "task": data.task, "source": data.source,
            "n_train": len(data.X_train), "n_fit": int(0.8 * len(data.X_train)),
            "n_test": len(data.X_test), "n_features": data.X_train.shape[1],
            "rows": [{"group": r["config"].group, "library": r["config"].library,
                      "params": r["config"].name, "validation": r["validation"],
                      "seconds": r["seconds"], "n_iter": r["n_iter"]} for r in rows],
            "skipped": skipped,
            "finals": [{"group": key[0], "library": key[1], "params": best[key]["config"].name,
                        "validation": best[key]["validation"], "test": final["test"],
                        "seconds": statistics.median(final["seconds"]),
                        "all_seconds": final["seconds"], "n_iter": final["n_iter"]}
                       for key, final in finals.items()],
        })
    run["load_end"] = os.getloadavg()[0]
    print(report(run))
    if args.json:
        args.json.write_text(json.dumps(run, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())

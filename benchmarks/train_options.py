"""Cost per epoch of fastbp's training options: dropout, gradient clipping, the cosine schedule.

Usage (from the repository root, BLAS tuning variables unset)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/train_options.py [--rounds 5]

On the clf-medium workload (50,000 x 100 float32, 10 classes) with the
network 100-256-128-10, Adam and mini-batches of 200, it times epochs of
fits with each option against fits without, in rounds taken in turns (one
fit of each setting per round, after a warm-up that compiles every kernel),
on the threads fastbp chooses and on one thread, and prints the median
seconds per epoch and the ratio to the plain fit's.
"""

import argparse
import os
import statistics
import sys
import time
import warnings

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "benchmarks"))

import common  # noqa: E402

import fastbp  # noqa: E402

SETTINGS = {
    "plain": {},
    "dropout 0.2": {"dropout": 0.2},
    "dropout 0.5": {"dropout": 0.5},
    "max_grad_norm 1": {"max_grad_norm": 1.0},
    "cosine": {"learning_rate": "cosine"},
    "all three": {"dropout": 0.2, "max_grad_norm": 1.0, "learning_rate": "cosine"},
}
EPOCHS = 3


def fit_seconds_per_epoch(X, y, options):
    model = fastbp.MLPClassifier((256, 128), batch_size=200, max_iter=EPOCHS, tol=0, n_iter_no_change=100,
                                 random_state=0, **options)
    start = time.perf_counter()
    model.fit(X, y)
    return (time.perf_counter() - start) / model.n_iter_


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    X, y = common.workload_data("clf-medium")
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    for threads in ("fastbp's", "one"):
        limits = threadpool_limits(1) if threads == "one" else None
        for options in SETTINGS.values():  # compile every kernel before timing
            fit_seconds_per_epoch(X[:2000], y[:2000], options)
        times = {name: [] for name in SETTINGS}
        for _ in range(args.rounds):
            for name, options in SETTINGS.items():
                times[name].append(fit_seconds_per_epoch(X, y, options))
        if limits is not None:
            limits.restore_original_limits()
        plain = statistics.median(times["plain"])
        print(f"\n{threads} threads: median seconds per epoch over {args.rounds} rounds (min-max)")
        for name, values in times.items():
            median = statistics.median(values)
            print(f"  {name:16s} {median:.3f} ({min(values):.3f}-{max(values):.3f})  x{median / plain:.3f}")
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

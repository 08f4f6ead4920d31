#!/usr/bin/env python
"""Side-by-side comparison of fastbp with scikit-learn, PyTorch and JAX on the issue's workloads.

Usage::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/compare.py \
        [--workloads digits clf-medium ...] [--repeat 3] [--quick] [--json out.json]
    python benchmarks/compare.py --compile-only [--compile-rounds 3]

In ONE process, workload by workload, it runs fastbp, scikit-learn's MLP and,
when importable, an equivalent PyTorch CPU loop and a JAX loop whose epoch is
one ``jax.jit``-compiled ``lax.scan`` (``peers.py``). Every library first
warms up (fastbp and Numba compile on a small slice of the same dtype and
layout; JAX compiles ahead of time for the real shapes, timed and reported
apart); then, ``--repeat`` times, every library fits once in turn (so a slow
spell of the machine hits all of them), each fit after a short pause (so that
the previous library's idle threads have stopped spinning); the table gives
each library's median time and, as speed-ups, the median over rounds of the
ratio of two libraries' times in the same round.

Also reported:

* ratios: peer seconds / fastbp seconds (above 1: fastbp is faster);
* training score of every library (accuracy or R^2 on the training data);
* predict throughput of fastbp and scikit-learn (rows/s on the training X;
  rounds taking turns, each a pause, then back-to-back predictions: see
  ``time_predictions``);
* roofline: training FLOPs (``common.training_flops``: GEMM FLOPs only, so a
  lower bound) divided by the best GEMM rate measured in this run for that
  dtype (NumPy ``matmul`` and SciPy's BLAS ``?gemm`` at 2048 and 3072, best
  of 3);
* peak memory of fit, measured in a fresh subprocess per (library, workload):
  after the warm-up, the kernel's peak-RSS counter is reset
  (``/proc/self/clear_refs``) and ``VmHWM`` is read after one fit; the table
  shows that peak minus the RSS just before the fit (and the absolute peak).
  Where the counter cannot be reset, ``ru_maxrss`` is used instead and the
  table says so. (``tracemalloc`` would miss Numba's, BLAS's and the peers'
  native allocations.)
* fastbp's first-fit overhead: in a fresh process with Numba's cache warm,
  the first fit minus the second, per workload;
* the first fit's compile (``--compile-rounds`` rounds, in turns, each in a
  new process, wall and CPU seconds): a default ``MLPClassifier()`` fit on
  float64 digits in an empty kernel cache (first fit minus second fit in
  that process), with the time of each top-level kernel's compile from
  Numba's ``numba:compile`` events; the same on float32 data in another
  empty cache; the warm load (a new process on the filled cache: first fit
  minus second, plus the import); what a default ``MLPRegressor`` fit and a
  ``predict`` compile after that; and JAX's jit compile of the same digits
  epoch (``peers.JaxMLP.compile``: trace, lower and XLA compile of one
  ``lax.scan`` epoch). ``--compile-only`` runs just this;
* the BLAS libraries and kernels in use (threadpoolctl) and a warning when
  ``OPENBLAS_CORETYPE`` / ``OPENBLAS_L2_SIZE`` are set.

Markdown goes to stdout, progress to stderr, everything to ``--json PATH``.
"""

import argparse
import dataclasses
import gc
import json
import os
import platform
import re
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

from benchmarks import common  # noqa: E402
from benchmarks.common import WORKLOADS  # noqa: E402

LIBRARIES = ["fastbp", "sklearn", "torch", "jax"]
TORCH_THREADS = 2  # the machine has 2 cores; --torch-threads overrides
QUICK_ROWS = 5000
OPENBLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")

# Targets of the issue: fit speed-up over scikit-learn, fastbp / roofline.
SKLEARN_SPEEDUP_TARGETS = {
    "digits": 4, "clf-medium": 4, "reg-wide": 2, "small-batch": 12,
    "online": 200, "lbfgs": 10, "sparse": 3,
}
ROOFLINE_TARGETS = {"reg-wide": 1.5, "clf-medium": 2, "digits": 3}
PREDICT_TARGETS = {"clf-medium": 2, "digits": 2}
FIRST_FIT_OVERHEAD_TARGET = 0.5
# Peak-RSS differences below this are page / malloc-arena noise.
MEMORY_TOLERANCE_MIB = 1.0
# The first fit of a default MLPClassifier on float64 digits in an empty
# kernel cache, at most this many times JAX's jit compile of the same epoch.
COLD_COMPILE_JAX_RATIO_TARGET = 3.0
# A default fit's first fit minus its second in a new process with the cache
# filled, in seconds.
WARM_LOAD_TARGET = 0.5
COMPILE_ROUNDS = 3
# Idle seconds before every timed fit and every round of predictions: long
# enough for the other libraries' idle BLAS / OpenMP threads to stop spinning
# (OpenBLAS's spin for about 0.1 s after a call; see time_predictions).
PAUSE_SECONDS = 0.3
# Rounds of predictions per library and workload, the libraries taking turns;
# each round is a pause, then back-to-back predictions (see time_predictions).
PREDICT_ROUNDS = 5
MIN_PREDICTIONS_PER_ROUND = 5
PREDICT_SECONDS_PER_ROUND = 0.25


def log(*args):
    print(*args, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- workloads


def get_workload(name, quick):
    """The workload, or in ``--quick`` mode a cut-down one (<= 2 epochs, 20 L-BFGS iterations)."""
    workload = WORKLOADS[name]
    if not quick:
        return workload
    max_iter = 20 if workload.solver == "lbfgs" else min(workload.max_iter, 2)
    return dataclasses.replace(workload, max_iter=max_iter)


def get_data(name, quick):
    X, y = common.workload_data(name)
    if quick:
        X, y = X[:QUICK_ROWS], y[:QUICK_ROWS]
    return X, y


def training_flops(name, workload, n_samples, n_passes=None):
    passes = workload.max_iter if n_passes is None else n_passes
    return passes * n_samples * common.flops_per_sample(name)


# --------------------------------------------------------------------------- libraries


class EstimatorRunner:
    """fastbp or scikit-learn, through the estimator API."""

    def __init__(self, library, workload):
        if library == "fastbp":
            import fastbp as module
        else:
            from sklearn import neural_network as module
        self.module = module
        self.workload = workload
        self.compile_seconds = None

    def warm_up(self, X, y):
        common.warm_up(self.module, self.workload.name)

    def fit(self, X, y):
        self.model = common.fit(self.workload.make_estimator(self.module), X, y)
        self.n_iter_ = self.model.n_iter_

    def score(self, X, y):
        return float(self.model.score(X, y))

    def predict(self, X):
        return self.model.predict(X)


class PeerRunner:
    """PyTorch or JAX (``peers.py``)."""

    def __init__(self, library, workload):
        import peers

        if library == "torch":
            import torch

            torch.set_num_threads(torch_threads())
        self.cls = peers.TorchMLP if library == "torch" else peers.JaxMLP
        self.library = library
        self.workload = workload
        self.compile_seconds = None
        self.peer = self.cls(workload)

    def warm_up(self, X, y):
        if self.library == "jax":
            self.compile_seconds = self.peer.compile(X, y)
        else:
            small = dataclasses.replace(self.workload, max_iter=2 if self.workload.solver == "lbfgs" else 1)
            Xs, ys = X[:256], y[:256]
            self.cls(small).fit(Xs, ys)

    def fit(self, X, y):
        self.peer.fit(X, y)
        self.n_iter_ = self.peer.n_iter_

    def score(self, X, y):
        return self.peer.score(X, y)


def torch_threads():
    return int(os.environ.get("FASTBP_BENCH_TORCH_THREADS", TORCH_THREADS))


def importable(library):
    try:
        if library == "torch":
            import torch  # noqa: F401
        elif library == "jax":
            import jax  # noqa: F401
    except Exception as exc:  # any import failure only drops the optional peer
        return f"{type(exc).__name__}: {exc}"
    return None


def make_runner(library, workload):
    if library in ("fastbp", "sklearn"):
        return EstimatorRunner(library, workload)
    return PeerRunner(library, workload)


# --------------------------------------------------------------------------- environment


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def ram_gib():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        return float("nan")


def versions(libraries):
    import numba
    import scipy
    import sklearn
    import threadpoolctl

    import fastbp

    out = {
        "python": platform.python_version(), "fastbp": fastbp.__version__,
        "numpy": np.__version__, "scipy": scipy.__version__, "numba": numba.__version__,
        "scikit-learn": sklearn.__version__, "threadpoolctl": threadpoolctl.__version__,
    }
    if "torch" in libraries:
        import torch

        out["torch"] = torch.__version__
    if "jax" in libraries:
        import jax
        import jaxlib

        out["jax"] = jax.__version__
        out["jaxlib"] = jaxlib.__version__
    return out


def fastbp_source():
    """Where fastbp was imported from, with its git commit when that is a checkout."""
    import fastbp

    path = Path(fastbp.__file__).resolve().parent
    try:
        git = ["git", "-C", str(path.parent)]
        commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run([*git, "status", "--porcelain", "--", "fastbp", "kernels"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return str(path)
    return f"{path} (git {commit}{', with uncommitted changes' if dirty else ''})"


def _shipped_with(path):
    """The installed package a shared library came with (the folder under site-packages)."""
    parts = Path(path).parts
    for marker in ("site-packages", "dist-packages"):
        if marker in parts and parts.index(marker) + 1 < len(parts):
            return parts[parts.index(marker) + 1]
    return os.path.dirname(path)


def blas_info(libraries):
    """threadpoolctl's view of the loaded BLAS / OpenMP libraries, plus PyTorch's own BLAS."""
    import scipy.linalg  # noqa: F401  (loads SciPy's OpenBLAS, the one Numba calls)
    import threadpoolctl

    import fastbp  # noqa: F401

    info = threadpoolctl.threadpool_info()
    rows = [
        {
            "user_api": d.get("user_api"), "internal_api": d.get("internal_api"),
            "library": os.path.basename(d.get("filepath", "")),
            "shipped_with": _shipped_with(d.get("filepath", "")),
            "version": d.get("version"),
            "kernel": d.get("architecture"), "threads": d.get("num_threads"),
            "threading_layer": d.get("threading_layer"),
        }
        for d in info
    ]
    torch_blas = None
    if "torch" in libraries:
        import torch

        m = re.search(r"BLAS_INFO=(\w+)", torch.__config__.show())
        cap = re.search(r"CPU capability usage: (\w+)", torch.__config__.show())
        torch_blas = f"{m.group(1) if m else '?'} (statically linked), CPU capability {cap.group(1) if cap else '?'}"
    return rows, torch_blas


def gemm_rates(dtypes, quick):
    """Best GFLOP/s of NumPy matmul and SciPy's BLAS gemm on square matrices, per dtype."""
    from scipy.linalg import blas

    sizes = (2048,) if quick else (2048, 3072)
    repeats = 2 if quick else 3
    rng = np.random.RandomState(0)
    rates = {}
    for dtype in dtypes:
        best_np = best_sp = 0.0
        gemm = blas.sgemm if dtype == "float32" else blas.dgemm
        for n in sizes:
            A = rng.standard_normal((n, n)).astype(dtype)
            B = rng.standard_normal((n, n)).astype(dtype)
            C = np.empty((n, n), dtype=dtype)
            np.matmul(A, B, out=C)
            for _ in range(repeats):
                t = time.perf_counter()
                np.matmul(A, B, out=C)
                best_np = max(best_np, 2 * n**3 / (time.perf_counter() - t))
            # A @ B as (B.T @ A.T).T: Fortran-ordered views, no copy
            gemm(1.0, B.T, A.T)
            for _ in range(repeats):
                t = time.perf_counter()
                gemm(1.0, B.T, A.T)
                best_sp = max(best_sp, 2 * n**3 / (time.perf_counter() - t))
        rates[dtype] = {"numpy": best_np / 1e9, "scipy": best_sp / 1e9, "best": max(best_np, best_sp) / 1e9}
        log(f"GEMM {dtype}: numpy {best_np / 1e9:.1f} GFLOP/s, scipy {best_sp / 1e9:.1f} GFLOP/s")
    return rates


# --------------------------------------------------------------------------- in-process timing


def time_predictions(runner, X):
    """Median seconds of back-to-back predictions, as a user makes them, after a quiet pause.

    The pause lets the thread pools of whatever ran before go to sleep:
    OpenBLAS's idle threads spin for about 0.1 s after each call, and
    NumPy's and SciPy's OpenBLAS are separate libraries with separate
    threads, so a prediction started while the other library's threads
    spin shares the cores with them (measured: fastbp's clf-medium predict
    takes 70 ms instead of 40 right after a NumPy product). One untimed
    prediction then warms the caches, and predictions follow for at least
    :data:`PREDICT_SECONDS_PER_ROUND`: the first ones after a pause are
    slower for both libraries (digits, median of 5 rounds: fastbp 1.4 ms
    for the first, 0.6 ms from the seventh on; scikit-learn 2.2 and 1.0
    ms), and a user predicting often sees the later ones.
    """
    time.sleep(PAUSE_SECONDS)
    runner.predict(X)
    times = []
    while len(times) < MIN_PREDICTIONS_PER_ROUND or sum(times) < PREDICT_SECONDS_PER_ROUND:
        t = time.perf_counter()
        runner.predict(X)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def time_workload(name, workload, X, y, libraries, repeat):
    """Time every library on one workload, the libraries taking turns.

    Every library warms up, then each of ``repeat`` rounds fits every library
    once, in turn: a slow spell of the machine (a busy neighbour on a VM)
    then slows a whole round rather than one library, and the ratio of two
    libraries within a round stays fair (:func:`ratio` reports the median of
    those). Each fit starts after a pause of :data:`PAUSE_SECONDS`, so that
    it does not share the cores with the previous library's spinning
    threads. fastbp and scikit-learn then predict, taking turns in the same
    way.

    Returns
    -------
    results : dict
        Per library: timings, score and n_iter_, or ``{"error": ...}``.
    """
    runners, results = {}, {}

    def failed(lib, exc):  # report and go on with the other libraries
        traceback.print_exc()
        results[lib] = {"error": f"{type(exc).__name__}: {exc}"}
        runners.pop(lib, None)

    for lib in libraries:
        try:
            runner = make_runner(lib, workload)
            t = time.perf_counter()
            runner.warm_up(X, y)
            results[lib] = {"warm_up_seconds": time.perf_counter() - t, "fit_all": []}
            runners[lib] = runner
        except Exception as exc:
            failed(lib, exc)
    for _ in range(repeat):
        for lib, runner in list(runners.items()):
            try:
                gc.collect()
                time.sleep(PAUSE_SECONDS)
                t = time.perf_counter()
                runner.fit(X, y)
                results[lib]["fit_all"].append(time.perf_counter() - t)
                log(f"  {name:12s} {lib:8s} fit {results[lib]['fit_all'][-1]:9.3f} s")
            except Exception as exc:
                failed(lib, exc)
    for lib, runner in list(runners.items()):
        try:
            results[lib].update(
                fit_seconds=statistics.median(results[lib]["fit_all"]),
                compile_seconds=runner.compile_seconds,
                score=runner.score(X, y),
                n_iter=int(runner.n_iter_),
            )
        except Exception as exc:
            failed(lib, exc)
    predictors = [lib for lib in ("fastbp", "sklearn") if lib in runners]
    for lib in predictors:
        results[lib]["predict_all"] = []
    for round_number in range(max(PREDICT_ROUNDS, repeat)):
        # the libraries take turns, first one then the other
        for lib in predictors[:: 1 if round_number % 2 == 0 else -1]:
            results[lib]["predict_all"].append(time_predictions(runners[lib], X))
    for lib in predictors:
        results[lib]["predict_seconds"] = statistics.median(results[lib]["predict_all"])
        results[lib]["predict_rows_per_s"] = X.shape[0] / results[lib]["predict_seconds"]
    return results


# --------------------------------------------------------------------------- subprocess measurements


def _status_kib(field):
    with open("/proc/self/status") as f:
        m = re.search(field + r":\s+(\d+)\s+kB", f.read())
    return int(m.group(1)) if m else None


def _reset_peak_rss():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def child_memory(library, name, quick):
    workload = get_workload(name, quick)
    X, y = get_data(name, quick)
    runner = make_runner(library, workload)
    runner.warm_up(X, y)
    gc.collect()
    rss_before = _status_kib("VmRSS")
    if _reset_peak_rss() and _status_kib("VmHWM") is not None:
        method = "VmHWM reset before fit"
        runner.fit(X, y)
        peak = _status_kib("VmHWM")
    else:
        method = "ru_maxrss since process start"
        runner.fit(X, y)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"rss_before_mib": rss_before / 1024, "peak_mib": peak / 1024,
            "delta_mib": (peak - rss_before) / 1024, "method": method}


def kernel_sources_hash():
    """fastbp's hash of its kernel sources (its Numba cache key), if it exposes one."""
    import fastbp.kernels

    return getattr(fastbp.kernels, "SOURCES_HASH", None)


def child_startup(name, quick):
    workload = get_workload(name, quick)
    X, y = get_data(name, quick)
    t = time.perf_counter()
    import fastbp

    import_seconds = time.perf_counter() - t
    fits = []
    for _ in range(2):
        t = time.perf_counter()
        common.fit(workload.make_estimator(fastbp), X, y)
        fits.append(time.perf_counter() - t)
    return {"import_seconds": import_seconds, "first_fit_seconds": fits[0],
            "second_fit_seconds": fits[1], "overhead_seconds": fits[0] - fits[1],
            "kernel_sources_hash": kernel_sources_hash()}


class _CompileEvents:
    """Numba's ``numba:compile`` events of a process: the top-level compiles, timed, and a count of all.

    A top-level compile (a kernel called from Python) includes the
    compiles of the functions it calls; a compile that loads from the disk
    cache sends no event.
    """

    def __init__(self):
        from numba.core import event

        self.top, self.count, self._open = [], 0, []
        listener = self

        class Listener(event.Listener):
            def on_start(self, ev):
                listener._start(ev)

            def on_end(self, ev):
                listener._end(ev)

        event.register("numba:compile", Listener())

    def _start(self, ev):
        self.count += 1
        self._open.append((time.perf_counter(), time.process_time()))

    def _end(self, ev):
        wall, cpu = self._open.pop()
        if not self._open:
            func = getattr(ev.data["dispatcher"], "py_func", None)
            name = func.__qualname__ if func is not None else str(ev.data["dispatcher"])
            args = ", ".join(str(a) for a in ev.data["args"])
            self.top.append({"kernel": name, "signature": f"({args})",
                             "wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu})

    def take(self):
        """The top-level compiles and the count since the last call."""
        top, count = self.top, self.count
        self.top, self.count = [], 0
        return {"kernels": top, "n_functions": count}


def _timed(func):
    """``(result, wall seconds, CPU seconds of this process)`` of ``func()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = func()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def child_fastbp_compile(dtype):
    """A default fit's compile (or cache load) in this new process, in its ``FASTBP_CACHE_DIR``.

    Fits a default ``MLPClassifier()`` on digits in ``dtype`` twice: the
    first fit minus the second is the compile (empty cache) or the load
    (filled cache). Then, in the same way, a default ``MLPRegressor()`` fit
    and the classifier's ``predict``: what they compile beyond the first fit.
    """
    events = _CompileEvents()
    X, y = common.load_dataset("digits")
    X = np.ascontiguousarray(X, dtype=dtype)
    y_reg = (y / 9.0).astype(dtype)
    _, import_wall, import_cpu = _timed(lambda: __import__("fastbp"))
    import fastbp

    out = {"dtype": dtype, "cache_dir": os.environ.get("FASTBP_CACHE_DIR"),
           "import_wall": import_wall, "import_cpu": import_cpu,
           "kernel_sources_hash": kernel_sources_hash()}
    events.take()
    steps = [
        ("fit", lambda: fastbp.MLPClassifier(random_state=0).fit(X, y)),
        ("regressor_fit", lambda: fastbp.MLPRegressor(random_state=0).fit(X, y_reg)),
    ]
    for step, func in steps:
        times = []
        for attempt in range(2):
            model, wall, cpu = _timed(func)
            times.append((wall, cpu))
            if attempt == 0:
                out[f"{step}_compiles"] = events.take()
        out[f"{step}_first_wall"], out[f"{step}_first_cpu"] = times[0]
        out[f"{step}_second_wall"], out[f"{step}_second_cpu"] = times[1]
        out[f"{step}_extra_wall"] = times[0][0] - times[1][0]
        out[f"{step}_extra_cpu"] = times[0][1] - times[1][1]
    classifier = fastbp.MLPClassifier(random_state=0, max_iter=5).fit(X, y)
    events.take()
    times = [_timed(lambda: classifier.predict(X))[1:] for _ in range(2)]
    out["predict_compiles"] = events.take()
    out["predict_extra_wall"] = times[0][0] - times[1][0]
    out["predict_extra_cpu"] = times[0][1] - times[1][1]
    return out


def child_jax_compile():
    """JAX's jit compile of one digits epoch in this new process (``peers.JaxMLP.compile``)."""
    import jax

    import peers

    jax.config.update("jax_enable_x64", True)
    X, y = common.workload_data("digits")
    peer = peers.JaxMLP(WORKLOADS["digits"])
    peer._prepare(X, y)  # imports and starts the backend, outside the timed compile
    cpu = time.process_time()
    wall = peer.compile(X, y)
    return {"wall": wall, "cpu": time.process_time() - cpu, "phases": peer.compile_phases,
            "jax": jax.__version__}


def compile_measurements(rounds, with_jax):
    """Rounds, in turns, of JAX's compile and fastbp's cold compiles and warm loads, each in a new process.

    Each round: JAX's compile of a digits epoch (when ``with_jax``); for float64, then float32,
    a default fit in an empty kernel cache (cold), then in a new process on
    the cache that left (warm).
    """
    out = {"rounds": []}
    for number in range(rounds):
        entry = {}
        if with_jax:
            entry["jax"] = run_child(["jax-compile"])
            log(f"  compile round {number + 1}: jax {_brief(entry['jax'], 'wall', 'cpu')}")
        for dtype in ("float64", "float32"):
            with tempfile.TemporaryDirectory(prefix="fastbp-cold-cache-") as cache:
                for state in ("cold", "warm"):
                    result = run_child(["fastbp-compile", "--dtype", dtype], {"FASTBP_CACHE_DIR": cache})
                    entry[f"{state}_{dtype}"] = result
                    log(f"  compile round {number + 1}: fastbp {state} {dtype} "
                        f"{_brief(result, 'fit_extra_wall', 'fit_extra_cpu')}")
        out["rounds"].append(entry)
    return out


def _brief(result, wall_key, cpu_key):
    if "error" in result:
        return result["error"]
    return f"wall {result[wall_key]:.2f} s, CPU {result[cpu_key]:.2f} s"


def run_child(args, extra_env=None):
    """Run this script as a child measurement; return its JSON result (or an error)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", *args]
    env = dict(os.environ, **(extra_env or {}))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        return {"error": f"exit {proc.returncode}: " + " | ".join(tail)}
    return json.loads(lines[-1])


def child_main(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["memory", "startup", "fastbp-compile", "jax-compile"])
    parser.add_argument("--library")
    parser.add_argument("--dtype")
    parser.add_argument("--workload")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    if args.kind == "memory":
        result = child_memory(args.library, args.workload, args.quick)
    elif args.kind == "startup":
        result = child_startup(args.workload, args.quick)
    elif args.kind == "fastbp-compile":
        result = child_fastbp_compile(args.dtype)
    else:
        result = child_jax_compile()
    print(json.dumps(result))


# --------------------------------------------------------------------------- report


def fmt_s(x):
    if x is None:
        return "—"
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    if x >= 1:
        return f"{x:.2f}"
    if x >= 0.01:
        return f"{x:.3f}"
    return f"{x:.2g}"


def fmt_ratio(x):
    if x is None:
        return "—"
    return f"{x:.1f}x" if x >= 10 else f"{x:.2f}x"


def fmt_rate(x):
    if x is None:
        return "—"
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    if x >= 1e3:
        return f"{x / 1e3:.1f}k"
    return f"{x:.0f}"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def get(results, name, library, key):
    r = results.get(name, {}).get(library)
    if not r or "error" in r:
        return None
    return r.get(key)


def ratio(results, name, library, key="fit_seconds"):
    """Peer seconds / fastbp seconds: the median over rounds of the ratio within a round.

    ``key`` is ``"fit_seconds"`` or ``"predict_seconds"``; their rounds are
    in ``"fit_all"`` and ``"predict_all"``. Without rounds of equal length,
    the ratio of the medians.
    """
    a, b = get(results, name, library, key), get(results, name, "fastbp", key)
    if a is None or not b:
        return None
    rounds_key = key.replace("_seconds", "_all")
    rounds_a, rounds_b = get(results, name, library, rounds_key), get(results, name, "fastbp", rounds_key)
    if rounds_a and rounds_b and len(rounds_a) == len(rounds_b):
        return statistics.median(x / y for x, y in zip(rounds_a, rounds_b))
    return a / b


def workload_sections(run):
    """The markdown sections on the workloads: GEMM rates, fit times, scores, predict throughput."""
    results = run["results"]
    names = run["workloads"]
    libraries = run["libraries"]
    out = []
    out.append("\nBest GEMM rate measured in this run (square matrices, best of a few; "
               "NumPy's and SciPy's OpenBLAS are separate libraries, Numba calls SciPy's):\n")
    out.append(table(
        ["dtype", "NumPy matmul GFLOP/s", "SciPy ?gemm GFLOP/s", "roofline rate"],
        [[d, f"{r['numpy']:.1f}", f"{r['scipy']:.1f}", f"{r['best']:.1f}"] for d, r in run["gemm"].items()],
    ))

    # fit times
    out.append("\n## Fit time (seconds, median)\n")
    out.append("Speed-up = peer seconds / fastbp seconds in the same round, median over rounds "
               "(above 1: fastbp is faster). "
               "JAX's compile time is excluded from its fit and shown apart. "
               "Roofline = training FLOPs / best GEMM rate for the dtype.\n")
    header = ["workload", "dtype"] + [lib for lib in libraries]
    if "jax" in libraries:
        header.append("jax compile")
    header += [f"vs {lib}" for lib in libraries if lib != "fastbp"]
    header += ["GFLOP", "roofline s", "fastbp / roofline"]
    rows = []
    for name in names:
        wl = get_workload(name, run["quick"])
        row = [name, wl.dtype]
        for lib in libraries:
            r = results[name].get(lib, {})
            row.append("error" if "error" in r else fmt_s(r.get("fit_seconds")))
        if "jax" in libraries:
            row.append(fmt_s(get(results, name, "jax", "compile_seconds")))
        row += [fmt_ratio(ratio(results, name, lib)) for lib in libraries if lib != "fastbp"]
        roof = results[name].get("roofline", {})
        row += [f"{roof.get('gflop', 0):.3g}", fmt_s(roof.get("seconds")), fmt_ratio(roof.get("fastbp_ratio"))]
        rows.append(row)
    out.append(table(header, rows))

    # scores
    out.append("\n## Training score (accuracy for classifiers, R² for regressors)\n")
    rows = []
    for name in names:
        wl = get_workload(name, run["quick"])
        row = [name, "accuracy" if wl.is_classifier else "R²"]
        for lib in libraries:
            s = get(results, name, lib, "score")
            row.append("—" if s is None else f"{s:.4f}")
        row.append(str(get(results, name, "fastbp", "n_iter")))
        rows.append(row)
    out.append(table(["workload", "metric", *libraries, "fastbp n_iter_"], rows))

    # predict
    if "sklearn" in libraries:
        out.append("\n## Predict throughput (rows/s, predict on the training X, median)\n")
        out.append(f"{max(PREDICT_ROUNDS, run['repeat'])} rounds, the libraries taking turns; in each, a "
                   f"{PAUSE_SECONDS} s pause (other libraries' BLAS threads go to sleep), one "
                   f"untimed prediction, then the median of back-to-back predictions over at least "
                   f"{PREDICT_SECONDS_PER_ROUND} s (and at least {MIN_PREDICTIONS_PER_ROUND}). "
                   "fastbp / sklearn is the median of the same-round ratios.\n")
        rows = []
        for name in names:
            f = get(results, name, "fastbp", "predict_rows_per_s")
            s = get(results, name, "sklearn", "predict_rows_per_s")
            rows.append([name, fmt_rate(f), fmt_rate(s), fmt_ratio(ratio(results, name, "sklearn", "predict_seconds"))])
        out.append(table(["workload", "fastbp", "sklearn", "fastbp / sklearn"], rows))

    return out


def report(run):
    out = []
    results = run["results"]
    names = run["workloads"]
    libraries = run["libraries"]
    env = run["environment"]
    out.append("# fastbp comparison: fastbp vs scikit-learn, PyTorch and JAX\n")
    if run["quick"]:
        out.append("**--quick run: cut-down workloads (first 5000 rows, <= 2 epochs, 20 L-BFGS "
                   "iterations, 1 repeat); not comparable with the targets.**\n")
    out.append(f"- command: `{run['command']}`")
    out.append(f"- date: {run['date']}")
    out.append(f"- machine: {env['cpu']}, {env['cores']} cores, {env['ram_gib']:.0f} GiB RAM, {env['os']}")
    out.append(f"- load average (1 min) at start / end: {run['load_start']:.2f} / {run['load_end']:.2f}")
    out.append("- versions: " + ", ".join(f"{k} {v}" for k, v in run["versions"].items()))
    out.append(f"- fastbp imported from: {run['fastbp_source']} (kernel sources hash "
               f"{run['kernel_sources_hash']})")
    for lib, why in run["unavailable"].items():
        out.append(f"- {lib}: not importable ({why}), left out")
    if names:
        out.append(f"- fits per library and workload: {run['repeat']} (median reported), after a warm-up; "
                   f"the libraries take turns, one fit each per round, each fit after a {PAUSE_SECONDS} s pause")
    out.append(f"- torch threads: {run['torch_threads']}")
    ob = ", ".join(f"{k}={env['openblas_env'][k]!r}" for k in OPENBLAS_VARS if env["openblas_env"][k] is not None)
    out.append(f"- OpenBLAS environment: {ob or 'OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset'}")
    for w in run["warnings"]:
        out.append(f"- **WARNING: {w}**")
    out.append("")
    out.append("## BLAS in use (threadpoolctl)\n")
    out.append(table(
        ["user_api", "internal_api", "library", "shipped in", "version", "kernel", "threads", "threading"],
        [[b["user_api"], b["internal_api"], b["library"], b["shipped_with"], b["version"], b["kernel"],
          b["threads"], b["threading_layer"]] for b in run["blas"]],
    ))
    if run["torch_blas"]:
        out.append(f"\nPyTorch BLAS: {run['torch_blas']}.")
    if names:
        out += workload_sections(run)

    # memory
    if run.get("memory"):
        methods = {m.get("method") for per in run["memory"].values() for m in per.values() if "method" in m}
        out.append("\n## Peak memory of fit (MiB)\n")
        out.append("One fresh subprocess per (library, workload): data loaded, warm-up done, then "
                   f"one fit. Method: {', '.join(sorted(methods)) or '—'}. Each cell: peak RSS during "
                   "the fit minus RSS just before it (absolute peak RSS in parentheses; the absolute figures "
                   "include each library's import: Numba/LLVM, PyTorch, XLA).\n")
        rows = []
        for name in names:
            row = [name]
            for lib in libraries:
                m = run["memory"].get(name, {}).get(lib)
                if not m:
                    row.append("—")
                elif "error" in m:
                    row.append("error")
                else:
                    row.append(f"{m['delta_mib']:.1f} ({m['peak_mib']:.0f})")
            f = run["memory"].get(name, {}).get("fastbp", {})
            s = run["memory"].get(name, {}).get("sklearn", {})
            if "delta_mib" in f and "delta_mib" in s and s["delta_mib"] >= MEMORY_TOLERANCE_MIB:
                row.append(f"{f['delta_mib'] / s['delta_mib']:.2f}")
            else:
                row.append("—")
            rows.append(row)
        out.append(table(["workload", *libraries, "fastbp Δ / sklearn Δ"], rows))

    # start-up
    if run.get("startup"):
        out.append("\n## fastbp start-up (fresh process, Numba cache warm)\n")
        rows = []
        for name in names:
            s = run["startup"].get(name, {})
            if "error" in s:
                rows.append([name, "error", "", "", s["error"][:80]])
                continue
            rows.append([name, fmt_s(s.get("import_seconds")), fmt_s(s.get("first_fit_seconds")),
                         fmt_s(s.get("second_fit_seconds")),
                         fmt_s(s.get("overhead_seconds")) + (" (sources changed: cold)" if s.get("stale") else "")])
        out.append(table(["workload", "import fastbp s", "first fit s", "second fit s",
                          "first-fit overhead s"], rows))
    if run.get("compile"):
        out.append(compile_report(run["compile"]))

    out.append("\n## Targets of the issue\n")
    if run["quick"]:
        out.append("(--quick run: the check below is indicative only.)\n")
    out.append(table(["target", "goal", "measured", "met"], targets(run)))
    return "\n".join(out) + "\n"


def _median_and_range(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def compile_summary(measured):
    """Medians over the rounds of :func:`compile_measurements`, and the same-round ratios to JAX."""
    if not measured:
        return {}
    rounds = measured["rounds"]

    def ok(entry, key):
        return key in entry and "error" not in entry[key]

    summary = {}
    for dtype in ("float64", "float32"):
        for state in ("cold", "warm"):
            key = f"{state}_{dtype}"
            runs = [r[key] for r in rounds if ok(r, key)]
            if not runs:
                continue
            summary[key] = {
                "wall": statistics.median(r["fit_extra_wall"] for r in runs),
                "cpu": statistics.median(r["fit_extra_cpu"] for r in runs),
                "wall_range": _median_and_range([r["fit_extra_wall"] for r in runs]),
                "cpu_range": _median_and_range([r["fit_extra_cpu"] for r in runs]),
                "import_range_wall": _median_and_range([r["import_wall"] for r in runs]),
                "import_range_cpu": _median_and_range([r["import_cpu"] for r in runs]),
                "first_fit_wall": statistics.median(r["fit_first_wall"] for r in runs),
                "regressor_wall": statistics.median(r["regressor_fit_extra_wall"] for r in runs),
                "regressor_cpu": statistics.median(r["regressor_fit_extra_cpu"] for r in runs),
                "predict_wall": statistics.median(r["predict_extra_wall"] for r in runs),
                "predict_cpu": statistics.median(r["predict_extra_cpu"] for r in runs),
                "example": runs[0],
            }
    jax_runs = [r["jax"] for r in rounds if ok(r, "jax")]
    if jax_runs:
        summary["jax"] = {
            "wall": statistics.median(r["wall"] for r in jax_runs),
            "cpu": statistics.median(r["cpu"] for r in jax_runs),
            "wall_range": _median_and_range([r["wall"] for r in jax_runs]),
            "cpu_range": _median_and_range([r["cpu"] for r in jax_runs]),
            "trace_and_lower": statistics.median(r["phases"]["trace_and_lower"] for r in jax_runs),
            "xla_compile": statistics.median(r["phases"]["xla_compile"] for r in jax_runs),
            "version": jax_runs[0].get("jax"),
        }
        both = [r for r in rounds if ok(r, "jax") and ok(r, "cold_float64")]
        if both:
            summary["ratio_wall"] = statistics.median(
                r["cold_float64"]["fit_extra_wall"] / r["jax"]["wall"] for r in both)
            summary["ratio_cpu"] = statistics.median(
                r["cold_float64"]["fit_extra_cpu"] / r["jax"]["cpu"] for r in both)
    return summary


def compile_report(measured):
    """The markdown section on the first fit's compile, the warm load and JAX's compile."""
    summary = compile_summary(measured)
    n_rounds = len(measured["rounds"])
    out = ["\n## First fit: compile and warm load\n"]
    out.append(f"{n_rounds} rounds, in turns, every measurement in a new process; median (min-max). "
               "Cold: a default `MLPClassifier()` fit on digits in an empty kernel cache, first fit minus "
               "second fit in that process. Warm: the same in a new process on the cache the cold one filled "
               "(the import of fastbp, with NumPy, SciPy, scikit-learn and Numba, is shown apart). JAX: `peers.JaxMLP.compile` of the digits epoch "
               "(trace, lower, XLA compile; the backend already started). CPU is the process's CPU time "
               "(compiles run on one thread), which other load on the machine inflates less than wall time.\n")

    def cell(r):
        return f"{r['median']:.2f} ({r['min']:.2f}-{r['max']:.2f})"

    rows = []
    for key, label in (("cold_float64", "fastbp cold, float64"), ("cold_float32", "fastbp cold, float32"),
                       ("warm_float64", "fastbp warm, float64"), ("warm_float32", "fastbp warm, float32")):
        if key in summary:
            rows.append([label, cell(summary[key]["wall_range"]), cell(summary[key]["cpu_range"])])
    if "warm_float64" in summary:
        warm = summary["warm_float64"]
        rows.append(["import fastbp (warm float64 process)", cell(warm["import_range_wall"]),
                     cell(warm["import_range_cpu"])])
    if "jax" in summary:
        j = summary["jax"]
        rows.append([f"JAX {j['version']} jit compile of the digits epoch (trace+lower {j['trace_and_lower']:.2f} s, "
                     f"XLA {j['xla_compile']:.2f} s wall)", cell(j["wall_range"]), cell(j["cpu_range"])])
    if "ratio_wall" in summary:
        rows.append(["fastbp cold float64 / JAX (median of same-round ratios)",
                     f"{summary['ratio_wall']:.2f}x", f"{summary['ratio_cpu']:.2f}x"])
    out.append(table(["measurement", "wall s", "CPU s"], rows))
    cold = summary.get("cold_float64")
    if cold:
        out.append(f"\nIn the cold float64 process, after the classifier's fits: a default `MLPRegressor()` "
                   f"fit compiled {cold['regressor_wall']:.2f} s wall / {cold['regressor_cpu']:.2f} s CPU more "
                   f"than its second fit, the classifier's first `predict` {cold['predict_wall']:.2f} s / "
                   f"{cold['predict_cpu']:.2f} s more than its second.")
        example = cold["example"]
        out.append("\nWhat the cold float64 process compiled (round 1; top-level kernels from Numba's "
                   "`numba:compile` events, each including the functions it calls; `functions` counts every "
                   "function Numba compiled):\n")
        rows = []
        for step in ("fit", "regressor_fit", "predict"):
            compiles = example.get(f"{step}_compiles", {})
            for number, k in enumerate(compiles.get("kernels", [])):
                signature = k["signature"] if len(k["signature"]) <= 90 else k["signature"][:87] + "..."
                rows.append([step, k["kernel"], f"`{signature}`", f"{k['wall']:.2f}", f"{k['cpu']:.2f}",
                             compiles["n_functions"] if number == 0 else ""])
            if not compiles.get("kernels"):
                rows.append([step, "(nothing compiled)", "", "", "", compiles.get("n_functions", 0)])
        out.append(table(["step", "kernel", "signature", "wall s", "CPU s", "functions"], rows))
    return "\n".join(out)


def targets(run):
    results = run["results"]
    names = run["workloads"]
    rows = []

    def add(label, goal, value, ok, fmt=fmt_ratio):
        rows.append([label, goal, "—" if value is None else fmt(value),
                     "—" if value is None else ("yes" if ok else "**no**")])

    for name, goal in SKLEARN_SPEEDUP_TARGETS.items():
        if name in names:
            r = ratio(results, name, "sklearn")
            add(f"fit {name} vs sklearn", f">= {goal}x", r, r is not None and r >= goal)
    for lib in ("torch", "jax"):
        if lib in run["libraries"]:
            for name in names:
                r = ratio(results, name, lib)
                add(f"fit {name} vs {lib}", "> 1x", r, r is not None and r > 1)
    for name, goal in ROOFLINE_TARGETS.items():
        if name in names:
            r = results[name].get("roofline", {}).get("fastbp_ratio")
            add(f"fit {name} / roofline", f"<= {goal}x", r, r is not None and r <= goal)
    for name, goal in PREDICT_TARGETS.items():
        if name in names:
            r = ratio(results, name, "sklearn", "predict_seconds")
            add(f"predict {name} vs sklearn", f">= {goal}x", r, r is not None and r >= goal)
    for name in names:
        m = run.get("memory", {}).get(name, {})
        f, s = m.get("fastbp", {}), m.get("sklearn", {})
        if "delta_mib" in f and "delta_mib" in s:
            add(f"fit peak memory {name}", f"Δ <= sklearn's Δ (+{MEMORY_TOLERANCE_MIB:.0f} MiB noise)",
                f"{f['delta_mib']:.1f} vs {s['delta_mib']:.1f} MiB",
                f["delta_mib"] <= s["delta_mib"] + MEMORY_TOLERANCE_MIB, fmt=str)
    overheads = [s["overhead_seconds"] for s in run.get("startup", {}).values()
                 if "overhead_seconds" in s and not s.get("stale")]
    if overheads:
        worst = max(overheads)
        add("first fit - second fit (worst workload)", f"<= {FIRST_FIT_OVERHEAD_TARGET} s", worst,
            worst <= FIRST_FIT_OVERHEAD_TARGET, fmt=lambda v: f"{v:.2f} s")
    summary = compile_summary(run.get("compile"))
    ratios = [summary.get("ratio_wall"), summary.get("ratio_cpu")]
    if None not in ratios:
        worst = max(ratios)
        add("first fit's compile (float64, empty cache) / JAX's compile", f"<= {COLD_COMPILE_JAX_RATIO_TARGET:.0f}x "
            "(wall and CPU)", worst, worst <= COLD_COMPILE_JAX_RATIO_TARGET,
            fmt=lambda v: f"{ratios[0]:.2f}x wall, {ratios[1]:.2f}x CPU")
    for dtype in ("float64", "float32"):
        warm = summary.get(f"warm_{dtype}")
        if warm:
            worst = max(warm["wall"], warm["cpu"])
            add(f"warm load, {dtype} (first fit - second fit, new process)", f"<= {WARM_LOAD_TARGET} s "
                "(wall and CPU)", worst, worst <= WARM_LOAD_TARGET,
                fmt=lambda v, w=warm: f"{w['wall']:.2f} s wall, {w['cpu']:.2f} s CPU")
    return rows


# --------------------------------------------------------------------------- main


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", nargs="+", choices=list(WORKLOADS), default=list(WORKLOADS),
                        help="workloads to run (default: all)")
    parser.add_argument("--libraries", nargs="+", choices=LIBRARIES, default=LIBRARIES,
                        help="libraries to run (default: all importable)")
    parser.add_argument("--repeat", type=int, default=None, help="rounds of fits, one per library each (default 5, 1 with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="cut-down workloads (5000 rows, <= 2 epochs) to check that everything runs")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    parser.add_argument("--no-startup", action="store_true",
                        help="skip the first-fit overhead and compile subprocesses")
    parser.add_argument("--compile-only", action="store_true",
                        help="measure only the first fit's compile, warm load and JAX's compile")
    parser.add_argument("--compile-rounds", type=int, default=COMPILE_ROUNDS,
                        help=f"rounds of compile measurements (default {COMPILE_ROUNDS})")
    parser.add_argument("--torch-threads", type=int, default=TORCH_THREADS,
                        help=f"torch.set_num_threads (default {TORCH_THREADS})")
    parser.add_argument("--json", metavar="PATH", help="also write every measurement as JSON")
    args = parser.parse_args(argv)
    if args.repeat is None:
        args.repeat = 1 if args.quick else 5
    return args


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        return child_main(argv[1:])
    args = parse_args(argv)
    warnings.simplefilter("ignore")
    os.environ["FASTBP_BENCH_TORCH_THREADS"] = str(args.torch_threads)  # children inherit it

    run_warnings = []
    openblas_env = {k: os.environ.get(k) for k in OPENBLAS_VARS}
    if openblas_env["OPENBLAS_CORETYPE"] is not None:
        run_warnings.append(
            f"OPENBLAS_CORETYPE={openblas_env['OPENBLAS_CORETYPE']!r} is set: OpenBLAS is forced onto "
            "that kernel; run with `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE` for real numbers")
    if openblas_env["OPENBLAS_L2_SIZE"] is not None:
        run_warnings.append(f"OPENBLAS_L2_SIZE={openblas_env['OPENBLAS_L2_SIZE']!r} is set")
    load_start = os.getloadavg()[0]
    if load_start > 0.5:
        run_warnings.append(f"the machine was busy at the start (1-min load average {load_start:.2f} "
                            f"on {os.cpu_count()} cores): timings are inflated and noisy")
    for w in run_warnings:
        log("WARNING:", w)

    unavailable = {}
    libraries = []
    for lib in args.libraries:
        why = importable(lib)
        if why:
            unavailable[lib] = why
            log(f"{lib} not importable ({why}): left out")
        else:
            libraries.append(lib)
    if "torch" in libraries:
        import torch

        torch.set_num_threads(torch_threads())
    if "jax" in libraries:
        import jax

        jax.config.update("jax_enable_x64", True)

    blas, torch_blas = blas_info(libraries)
    for b in blas:
        log(f"BLAS/threads: {b}")
    if torch_blas:
        log(f"PyTorch BLAS: {torch_blas}")

    run = {
        "command": " ".join(shlex.quote(a) for a in ["python", os.path.relpath(__file__), *argv]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "quick": args.quick, "repeat": args.repeat, "workloads": args.workloads,
        "libraries": libraries, "unavailable": unavailable,
        "environment": {
            "cpu": cpu_model(), "cores": os.cpu_count(), "ram_gib": ram_gib(),
            "os": f"{platform.system()} {platform.release()}", "openblas_env": openblas_env,
        },
        "versions": versions(libraries), "blas": blas, "torch_blas": torch_blas,
        "warnings": run_warnings, "load_start": load_start,
        "kernel_sources_hash": kernel_sources_hash(), "torch_threads": torch_threads(),
        "fastbp_source": fastbp_source(),
    }

    if args.compile_only:
        run["workloads"] = []
    dtypes = sorted({WORKLOADS[n].dtype for n in run["workloads"]})
    run["gemm"] = gemm_rates(dtypes, args.quick)

    results = {}
    for name in run["workloads"]:
        workload = get_workload(name, args.quick)
        X, y = get_data(name, args.quick)
        log(f"{name}: X {X.shape} {X.dtype} {'CSR' if sp.issparse(X) else 'dense'}, "
            f"{workload.solver}, {workload.max_iter} {'iterations' if workload.solver == 'lbfgs' else 'epochs'}")
        results[name] = time_workload(name, workload, X, y, libraries, args.repeat)
        gc.collect()
        n_passes = get(results, name, "fastbp", "n_iter") if workload.solver == "lbfgs" else None
        flops = training_flops(name, workload, X.shape[0], n_passes)
        seconds = flops / (run["gemm"][workload.dtype]["best"] * 1e9)
        fb = get(results, name, "fastbp", "fit_seconds")
        results[name]["roofline"] = {"gflop": flops / 1e9, "seconds": seconds,
                                     "fastbp_ratio": fb / seconds if fb else None}
    run["results"] = results

    quick_flag = ["--quick"] if args.quick else []
    if not args.no_memory:
        run["memory"] = {}
        for name in run["workloads"]:
            run["memory"][name] = {}
            for lib in libraries:
                m = run_child(["memory", "--library", lib, "--workload", name, *quick_flag])
                run["memory"][name][lib] = m
                log(f"  {name:12s} {lib:8s} memory {m}")
    if not args.no_startup and "fastbp" in libraries:
        run["startup"] = {}
        for name in run["workloads"]:
            s = run_child(["startup", "--workload", name, *quick_flag])
            if "error" not in s and s.get("kernel_sources_hash") != run["kernel_sources_hash"]:
                s["stale"] = True
                run["warnings"].append(
                    f"fastbp's kernel sources changed during the run (start-up of {name}): "
                    "its first fit recompiled, so that row is not a warm-cache figure")
            run["startup"][name] = s
            log(f"  {name:12s} startup {s}")
    if (args.compile_only or not args.no_startup) and "fastbp" in libraries:
        run["compile"] = compile_measurements(args.compile_rounds, "jax" in libraries)

    run["load_end"] = os.getloadavg()[0]
    text = report(run)
    sys.stdout.write(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(run, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())

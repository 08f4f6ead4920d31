"""fastbp on a real Dask cluster: search, out-of-core training, thread limits.

One ``distributed.LocalCluster`` with two worker processes (one task thread
each) is started for the module. The workers are spawned with distributed's
default thread environment (``OMP_NUM_THREADS=1`` and friends) removed, so
that what limits their threads is ``fastbp.distributed.limit_worker_threads``,
called before any task runs. What is checked:

- ``GridSearchCV`` under ``joblib.parallel_backend("dask")`` runs its fits on
  the workers and gives exactly the serial run's ``best_params_``,
  ``cv_results_`` scores and best-estimator predictions;
- dask-ml's ``HyperbandSearchCV`` trains with ``partial_fit`` on the workers,
  and each model's score equals that of the same calls made serially (skipped
  where dask-ml's adaptive searches fail on the installed dask);
- ``incremental_fit`` over a dask array of several chunks (through dask-ml's
  ``Incremental`` and through the plain-dask chain) gives exactly the weights
  of ``partial_fit`` called serially on the same blocks in the same order;
- inside a worker, in a task thread (where fits run) and on the event loop
  (``client.run``), BLAS and Numba use one thread (the workers were restarted
  with the thread environment: Numba's own limit is per thread);
- the helpers' errors, and the ImportError naming the ``fastbp[dask]`` extra.

Data sets are tiny: these tests check that results equal serial ones, not
accuracy. Workers load the Numba kernels from the on-disk cache.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

pytest.importorskip("distributed")

import dask  # noqa: E402
import dask.array as da  # noqa: E402
import joblib  # noqa: E402
import threadpoolctl  # noqa: E402
from distributed import Client, LocalCluster, get_task_stream  # noqa: E402

import fastbp.distributed as fbd  # noqa: E402
from fastbp import MLPClassifier, MLPRegressor  # noqa: E402
from fastbp.distributed import (  # noqa: E402
    incremental_fit,
    limit_worker_threads,
    worker_thread_info,
)

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

THREAD_ENV = (*fbd._LIBRARY_THREAD_ENV, "NUMBA_NUM_THREADS")


@pytest.fixture(scope="module")
def dask_env():
    """A two-process LocalCluster with a default client and the thread-limit plugin."""
    # Nannies of a LocalCluster write the pre-spawn environment (PYTHONHASHSEED
    # here) into this very process; undone at the end.
    environ_before = dict(os.environ)
    # distributed's nanny sets OMP/MKL/OPENBLAS_NUM_THREADS=1 in new workers;
    # without them the workers start with one BLAS thread per core, and the
    # test sees the plugin do the limiting.
    with dask.config.set({"distributed.nanny.pre-spawn-environ": {}}):
        cluster = LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        )
    client = Client(cluster)
    try:
        # Before the limits: threadpool_info loads no Numba, only NumPy's BLAS.
        blas_before = client.run(threadpoolctl.threadpool_info)
        pids_before = set(client.run(os.getpid).values())
        limit_worker_threads(1, client)  # restarts the workers
        client.wait_for_workers(2, timeout=60)
        yield {"client": client, "blas_before": blas_before, "pids_before": pids_before}
    finally:
        client.close()
        cluster.close()
        for name in set(os.environ) - set(environ_before):
            del os.environ[name]
        os.environ.update(environ_before)


def _problem(kind, n_samples=90):
    """Tiny data and a small estimator; a local RandomState, never the global one."""
    rng = np.random.RandomState(0)
    X = rng.standard_normal((n_samples, 5))
    if kind == "classifier":
        y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int) + (X[:, 2] > 1)
        estimator = MLPClassifier(hidden_layer_sizes=(6,), max_iter=30, random_state=0)
    else:
        y = X[:, 0] - 2.0 * X[:, 1] + 0.1 * rng.standard_normal(n_samples)
        estimator = MLPRegressor(hidden_layer_sizes=(6,), max_iter=30, random_state=0)
    return X, y, estimator


def _cluster_workers(client):
    return set(client.scheduler_info()["workers"])


def _assert_same_weights(a, b):
    assert len(a.coefs_) == len(b.coefs_)
    for wa, wb in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        assert_array_equal(wa, wb)
    assert a.loss_curve_ == b.loss_curve_
    assert (a.t_, a.n_iter_) == (b.t_, b.n_iter_)


# --- hyper-parameter search over the cluster ---------------------------------


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_grid_search_on_dask_backend_equals_serial(dask_env, kind):
    client = dask_env["client"]
    X, y, estimator = _problem(kind)
    grid = {"alpha": [1e-4, 1e-1], "hidden_layer_sizes": [(4,), (8,)]}

    serial = GridSearchCV(estimator, grid, cv=3, n_jobs=1).fit(X, y)
    with get_task_stream(client) as stream, joblib.parallel_backend("dask"):
        spread = GridSearchCV(estimator, grid, cv=3).fit(X, y)

    ran_on = {task["worker"] for task in stream.data}
    assert ran_on and ran_on <= _cluster_workers(client)
    assert spread.best_params_ == serial.best_params_
    assert spread.cv_results_["params"] == serial.cv_results_["params"]
    scores = [k for k in serial.cv_results_ if k.endswith("test_score")]
    assert "mean_test_score" in scores and "split2_test_score" in scores
    for key in scores:
        assert_array_equal(spread.cv_results_[key], serial.cv_results_[key], err_msg=key)
    assert_array_equal(spread.best_estimator_.predict(X), serial.best_estimator_.predict(X))


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_hyperband_search_on_the_cluster_equals_serial_partial_fit(dask_env, kind):
    """dask-ml's HyperbandSearchCV trains and scores fastbp models with partial_fit on the
    workers; every model's score, and the best model's weights, are those of the same
    partial_fit calls made here on the same split (one training block, so every call
    trains on all of it)."""
    model_selection = pytest.importorskip("dask_ml.model_selection")
    client = dask_env["client"]
    X, y, estimator = _problem(kind, n_samples=160)
    X_dask, y_dask = da.from_array(X, chunks=(160, 5)), da.from_array(y, chunks=160)
    fit_params = {"classes": np.unique(y)} if kind == "classifier" else {}
    search = model_selection.HyperbandSearchCV(
        estimator,
        {"alpha": [1e-4, 1e-2, 1.0], "hidden_layer_sizes": [(4,), (8,)]},
        max_iter=3,
        test_size=0.25,
        random_state=0,
    )
    with get_task_stream(client) as stream:
        try:
            search.fit(X_dask, y_dask, **fit_params)
        except RuntimeError as exc:
            if "asynchronous Client in a synchronous context" not in str(exc):
                raise
            pytest.skip("dask-ml's adaptive searches fail on dask >= 2025.3 (dask/dask-ml#1016)")

    ran_on = {task["worker"] for task in stream.data}
    assert ran_on and ran_on <= _cluster_workers(client)
    splits = {}
    for bracket in search.metadata_["brackets"]:
        sha = bracket["SuccessiveHalvingSearchCV params"]
        split = model_selection.train_test_split(
            X_dask, y_dask, test_size=sha["test_size"], random_state=sha["random_state"],
            shuffle=True,
        )
        assert split[0].numblocks == (1, 1)
        splits[bracket["bracket"]] = dask.compute(*split)
    results = search.cv_results_
    assert len(results["params"]) == search.metadata_["n_models"] > 1
    assert set(results["partial_fit_calls"]) == {1, 3}
    for i, params in enumerate(results["params"]):
        X_train, X_test, y_train, y_test = splits[results["bracket"][i]]
        serial = clone(estimator).set_params(**params)
        for _ in range(results["partial_fit_calls"][i]):
            serial.partial_fit(X_train, y_train, **fit_params)
        assert results["test_score"][i] == serial.score(X_test, y_test)
        if i == search.best_index_:
            _assert_same_weights(search.best_estimator_, serial)
            assert search.best_score_ == serial.score(X_test, y_test)


# --- out-of-core training over a dask array ----------------------------------


@pytest.mark.parametrize("shuffle_blocks", [False, True])
@pytest.mark.parametrize("kind", ["classifier", "regressor"])
@pytest.mark.parametrize("engine", ["dask-ml", "plain dask"])
def test_incremental_fit_equals_serial_partial_fit(
    dask_env, monkeypatch, engine, kind, shuffle_blocks
):
    if engine == "dask-ml":
        pytest.importorskip("dask_ml")
        assert fbd._dask_ml_incremental() is not None
    else:
        monkeypatch.setattr(fbd, "_dask_ml_incremental", lambda: None)
    client = dask_env["client"]
    X, y, estimator = _problem(kind, n_samples=200)
    X_dask = da.from_array(X, chunks=(50, 5))
    y_dask = da.from_array(y, chunks=50)
    classes = np.unique(y) if kind == "classifier" else None
    fit_params = {} if classes is None else {"classes": classes}
    n_epochs, seed = 2, 7

    # The same blocks in the same order, in this process.
    serial = clone(estimator)
    rng = np.random.RandomState(seed)
    orders = []
    for _ in range(n_epochs):
        order = list(range(4))
        if shuffle_blocks:
            rng.shuffle(order)
        orders.append(order)
        for i in order:
            rows = slice(50 * i, 50 * (i + 1))
            serial.partial_fit(X[rows], y[rows], **fit_params)
    if shuffle_blocks:
        assert orders != [[0, 1, 2, 3]] * n_epochs

    with get_task_stream(client) as stream:
        fitted = incremental_fit(
            estimator,
            X_dask,
            y_dask,
            classes=classes,
            n_epochs=n_epochs,
            shuffle_blocks=shuffle_blocks,
            random_state=seed,
        )

    ran_on = {task["worker"] for task in stream.data}
    assert ran_on and ran_on <= _cluster_workers(client)
    assert not hasattr(estimator, "coefs_"), "the input estimator was modified"
    _assert_same_weights(fitted, serial)
    assert_array_equal(fitted.predict(X), serial.predict(X))


@pytest.mark.parametrize("engine", ["dask-ml", "plain dask"])
def test_incremental_fit_two_dimensional_y(dask_env, monkeypatch, engine):
    """Multi-output targets; dask-ml cannot pair 2-D y blocks, so the plain chain runs."""
    if engine == "plain dask":
        monkeypatch.setattr(fbd, "_dask_ml_incremental", lambda: None)
    X, y, estimator = _problem("regressor", n_samples=120)
    Y = np.c_[y, X[:, 2] - X[:, 3]]
    # Column-chunked X and Y, Y with other row chunks: both are rechunked.
    X_dask, Y_dask = da.from_array(X, chunks=(40, 2)), da.from_array(Y, chunks=(60, 1))
    fitted = incremental_fit(estimator, X_dask, Y_dask, n_epochs=2)
    serial = clone(estimator)
    for _ in range(2):
        for i in range(3):
            serial.partial_fit(X[40 * i : 40 * (i + 1)], Y[40 * i : 40 * (i + 1)])
    _assert_same_weights(fitted, serial)


def test_incremental_fit_continues_a_fitted_estimator_and_aligns_y(dask_env):
    X, y, estimator = _problem("regressor", n_samples=120)
    started = clone(estimator).partial_fit(X[:30], y[:30])
    # y chunked differently from X: rechunked to X's row blocks.
    fitted = incremental_fit(
        started, da.from_array(X, chunks=(40, 5)), da.from_array(y, chunks=60)
    )
    serial = clone(estimator).partial_fit(X[:30], y[:30])
    for i in range(3):
        serial.partial_fit(X[40 * i : 40 * (i + 1)], y[40 * i : 40 * (i + 1)])
    _assert_same_weights(fitted, serial)
    assert started.t_ == 30, "the input estimator was modified"


def test_incremental_fit_with_unknown_chunk_sizes(dask_env):
    X, y, estimator = _problem("classifier", n_samples=60)
    X_dask, y_dask = da.from_array(X, chunks=(20, 5)), da.from_array(y, chunks=20)
    keep = X_dask[:, 0] > -np.inf  # every row, but chunk sizes become unknown
    X_dask, y_dask = X_dask[keep], y_dask[keep]
    assert np.isnan(X_dask.shape[0])
    fitted = incremental_fit(estimator, X_dask, y_dask, classes=[0, 1, 2])
    serial = clone(estimator)
    for i in range(3):
        rows = slice(20 * i, 20 * (i + 1))
        serial.partial_fit(X[rows], y[rows], classes=[0, 1, 2])
    _assert_same_weights(fitted, serial)


def test_incremental_fit_errors():
    X, y, clf = _problem("classifier", n_samples=40)
    X_dask, y_dask = da.from_array(X, chunks=(20, 5)), da.from_array(y, chunks=20)
    with pytest.raises(ValueError, match="classes must be given"):
        incremental_fit(clf, X_dask, y_dask)
    with pytest.raises(ValueError, match="only for classifiers"):
        incremental_fit(MLPRegressor(), X_dask, y_dask, classes=[0, 1])
    with pytest.raises(ValueError, match="n_epochs"):
        incremental_fit(clf, X_dask, y_dask, classes=[0, 1, 2], n_epochs=0)
    with pytest.raises(ValueError, match="same number of rows"):
        incremental_fit(clf, X_dask, y_dask[:30], classes=[0, 1, 2])
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        unknown = y_dask[y_dask >= 0]
        incremental_fit(clf, X_dask, da.concatenate([unknown, unknown]), classes=[0, 1, 2])
    with pytest.raises(TypeError, match="dask array"):
        incremental_fit(clf, X_dask, dask.delayed(y), classes=[0, 1, 2])
    with pytest.raises(TypeError, match="partial_fit"):
        incremental_fit(object(), X_dask, y_dask)


# --- thread limits in the workers --------------------------------------------


def test_thread_limits_in_effect_inside_workers(dask_env):
    client = dask_env["client"]
    workers = sorted(_cluster_workers(client))
    assert len(workers) == 2
    in_tasks = [
        client.submit(worker_thread_info, workers=[w], pure=False).result()
        for w in workers
    ]
    on_event_loop = list(client.run(worker_thread_info).values())
    assert all(info["thread"] != "MainThread" for info in in_tasks)
    assert {info["pid"] for info in in_tasks}.isdisjoint(dask_env["pids_before"])

    import scipy.linalg.cython_blas  # noqa: F401  (both BLAS loaded here too)

    local_blas = {
        p["filepath"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"
    }
    for info in in_tasks + on_event_loop:
        assert info["numba_num_threads"] == 1
        pools = info["threadpools"]
        worker_blas = {p["filepath"] for p in pools if p["user_api"] == "blas"}
        # NumPy's BLAS and SciPy's (the one Numba's np.dot calls), both limited.
        assert worker_blas >= local_blas
        assert all(p["num_threads"] == 1 for p in pools)
        assert all(info["environ"][name] == "1" for name in THREAD_ENV)

    # The limit is the plugin's doing: before it, the BLAS used every core.
    if (os.cpu_count() or 1) > 1 and not any(name in os.environ for name in THREAD_ENV):
        before = [
            p["num_threads"]
            for pools in dask_env["blas_before"].values()
            for p in pools
            if p["user_api"] == "blas"
        ]
        assert max(before) > 1


def test_limit_process_threads_in_this_process(monkeypatch):
    """The plugin's setup, run here: Numba already imported, so a warning."""
    import numba

    for name in THREAD_ENV:
        monkeypatch.delenv(name, raising=False)  # restored (or removed) after
    numba_before = numba.get_num_threads()
    pool_size = numba.config.NUMBA_NUM_THREADS
    try:
        if pool_size > 1:
            with pytest.warns(UserWarning, match="Numba was imported"):
                limiter = fbd._limit_process_threads(1)
        else:
            limiter = fbd._limit_process_threads(1)
        try:
            info = worker_thread_info()
            assert info["numba_num_threads"] == 1
            assert info["threadpools"]
            assert all(p["num_threads"] == 1 for p in info["threadpools"])
            assert "NUMBA_NUM_THREADS" not in os.environ
        finally:
            limiter.restore_original_limits()
    finally:
        numba.set_num_threads(numba_before)


def test_limit_worker_threads_rejects_bad_counts(dask_env):
    for bad, error in [(0, ValueError), (1.5, TypeError), (True, TypeError)]:
        with pytest.raises(error, match="n_threads"):
            limit_worker_threads(bad, dask_env["client"])


def test_missing_dask_names_the_extra(monkeypatch):
    X, y, reg = _problem("regressor", n_samples=10)
    monkeypatch.setitem(sys.modules, "distributed", None)
    monkeypatch.setitem(sys.modules, "dask.array", None)
    with pytest.raises(ImportError, match=r"fastbp\[dask\]"):
        limit_worker_threads(1)
    with pytest.raises(ImportError, match=r"fastbp\[dask\]"):
        incremental_fit(reg, X, y)


def test_importing_the_module_does_not_import_dask():
    code = (
        "import sys, fastbp.distributed as m; "
        "assert 'dask' not in sys.modules and 'distributed' not in sys.modules; "
        "assert 'ThreadLimitPlugin' in dir(m)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


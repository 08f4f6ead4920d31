"""The parallel layer: thread counts follow the user's controls, results never depend on them."""

import json
import multiprocessing
import os
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import make_classification, make_regression
from threadpoolctl import threadpool_limits

from fastbp import MLPClassifier, MLPRegressor, Network, _parallel, kernels

UNITS = (40, 33, 17, 5)


def fitted_network(dtype):
    net = Network(UNITS, activation="tanh", out_activation="softmax", loss="log_loss", dtype=dtype)
    return net.init_weights(random_state=0)


def weights(model):
    return [w.copy() for w in model.coefs_ + model.intercepts_]


def assert_same_bits(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


@pytest.fixture
def thread_counts(monkeypatch):
    """Let the test choose how many threads every call may use, and record how many each epoch team got."""
    used = []
    team_init = _parallel.EpochTeam.__init__

    def recording_init(team, n_threads, sync):
        used.append(n_threads)
        team_init(team, n_threads, sync)

    monkeypatch.setattr(_parallel.EpochTeam, "__init__", recording_init)

    def allow(n_threads):
        monkeypatch.setattr(_parallel, "allowed_threads", lambda: n_threads)

    # four CPUs, so that work is cut into four parts and up to four threads share them
    monkeypatch.setattr(_parallel, "available_cores", lambda: 4)

    allow.used = used
    return allow


# --------------------------------------------------------------------------
# How work is cut: by its size only


def test_part_count_follows_the_work_and_the_cpus_never_the_thread_controls(monkeypatch):
    monkeypatch.setattr(_parallel, "available_cores", lambda: 64)
    assert _parallel.part_count(1, 10**9) == 1
    assert _parallel.part_count(200, 10) == 1  # too little work for a part
    assert _parallel.part_count(32, 100 * 64 + 64 * 10) == 2  # small-batch: two parts of 16 rows
    assert _parallel.part_count(200, 64 * 100 + 100 * 10) == 12  # digits: 16 rows a part at least
    assert _parallel.part_count(10**6, 10**6) == _parallel.MAX_PARTS
    for rows, per_row in [(17, 10**6), (100, 2000), (5000, 37)]:
        parts = _parallel.part_count(rows, per_row)
        assert rows // parts >= _parallel.PART_ROWS or parts == 1
        assert rows * per_row / parts >= _parallel.PART_MULTIPLY_ADDS or parts == 1
    monkeypatch.setattr(_parallel, "available_cores", lambda: 2)
    assert _parallel.part_count(200, 64 * 100 + 100 * 10) == 2
    with threadpool_limits(1):  # the controls choose threads, not parts
        assert _parallel.part_count(200, 64 * 100 + 100 * 10) == 2


def test_allowed_threads_obey_affinity_numba_and_blas(monkeypatch):
    monkeypatch.setattr(_parallel, "available_cores", lambda: 6)
    monkeypatch.setattr(_parallel, "numba_threads", lambda: 5)
    monkeypatch.setattr(_parallel, "user_blas_threads", lambda: 4)
    assert _parallel.allowed_threads() == 4
    monkeypatch.setattr(_parallel, "user_blas_threads", lambda: 8)
    assert _parallel.allowed_threads() == 5
    monkeypatch.setattr(_parallel, "numba_threads", lambda: 16)
    assert _parallel.allowed_threads() == 6
    monkeypatch.undo()
    with threadpool_limits(1, user_api="blas"):
        assert _parallel.allowed_threads() == 1


def test_calls_running_at_once_share_the_allowed_threads(monkeypatch):
    monkeypatch.setattr(_parallel, "allowed_threads", lambda: 4)
    with _parallel.reserve(3) as first:
        with _parallel.reserve(3) as second:
            with _parallel.reserve(3) as third:
                assert (first, second, third) == (3, 1, 1)  # a call always has its own thread
    with _parallel.reserve(8) as again:
        assert again == 4


# --------------------------------------------------------------------------
# Results do not depend on the threads


def _classification(dtype, sparse, n_samples=600):
    X, y = make_classification(n_samples=n_samples, n_features=40, n_informative=10, n_classes=3, random_state=0)
    X = X.astype(dtype)
    if sparse:
        X[np.abs(X) < 0.7] = 0
        X = sp.csr_matrix(X)
    return X, y


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("solver", ["adam", "sgd"])
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_fit_weights_are_the_same_bits_for_one_to_four_threads(thread_counts, dtype, sparse, solver):
    X, y = _classification(dtype, sparse)

    def fit():
        return MLPClassifier(hidden_layer_sizes=(64, 32), solver=solver, batch_size=128, max_iter=3,
                             alpha=0.01, random_state=0).fit(X, y)

    results = {}
    for n_threads in (1, 2, 3, 4):
        thread_counts.used.clear()
        thread_counts(n_threads)
        model = fit()
        parts = _parallel.part_count(128, 40 * 64 + 64 * 32 + 32 * 3) if not sparse else None
        if parts is not None:
            assert parts == 4 and thread_counts.used == [min(n_threads, parts)]
        results[n_threads] = (model.loss_curve_, weights(model))
    for n_threads in (2, 3, 4):
        assert results[n_threads][0] == results[1][0]
        assert_same_bits(results[n_threads][1], results[1][1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("solver", ["adam", "sgd"])
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_dropout_clipping_and_cosine_fits_are_the_same_bits_for_one_to_four_threads(
    thread_counts, dtype, sparse, solver
):
    X, y = _classification(dtype, sparse)
    options = {"dropout": (0.5, 0.2), "max_grad_norm": 0.5, "learning_rate": "cosine"}

    def fit():
        return MLPClassifier(hidden_layer_sizes=(64, 32), solver=solver, batch_size=128, max_iter=3,
                             alpha=0.01, random_state=0, **options).fit(X, y)

    results = {}
    for n_threads in (1, 2, 3, 4):
        thread_counts.used.clear()
        thread_counts(n_threads)
        model = fit()
        assert thread_counts.used == [min(n_threads, 4)] or sparse
        results[n_threads] = (model.loss_curve_, weights(model))
    for n_threads in (2, 3, 4):
        assert results[n_threads][0] == results[1][0]
        assert_same_bits(results[n_threads][1], results[1][1])
    plain = MLPClassifier(hidden_layer_sizes=(64, 32), solver=solver, batch_size=128, max_iter=3,
                          alpha=0.01, random_state=0).fit(X, y)
    assert plain.loss_curve_ != results[1][0]  # the options changed the fit


@pytest.mark.parametrize("solver", ["adam", "sgd"])
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_process_on_one_cpu_trains_with_a_kernel_without_thread_code(monkeypatch, solver):
    X, y = _classification(np.float64, False)
    syncs = []
    team_init = _parallel.EpochTeam.__init__

    def recording_init(team, n_threads, sync):
        syncs.append(sync)
        team_init(team, n_threads, sync)

    monkeypatch.setattr(_parallel.EpochTeam, "__init__", recording_init)
    results = []
    for cores in (2, 1):
        monkeypatch.setattr(_parallel, "available_cores", lambda cores=cores: cores)
        with threadpool_limits(1):  # one part on two CPUs too: the same cut, so the same bits
            model = MLPClassifier(hidden_layer_sizes=(8,), solver=solver, batch_size=20, max_iter=2,
                                  random_state=0).fit(X[:100], y[:100])
        results.append(weights(model))
    assert isinstance(syncs[0], np.ndarray) and syncs[1] is None
    assert_same_bits(results[0], results[1])
    signatures = [signature for entry in kernels.train_epoch.compiled().values() for signature in entry.signatures]
    assert any(str(signature[-1]) == "none" for signature in signatures)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_partial_fit_weights_are_the_same_bits_for_one_to_four_threads(thread_counts):
    X, y = _classification(np.float64, False)
    results = []
    for n_threads in (1, 2, 3, 4):
        thread_counts(n_threads)
        model = MLPClassifier(hidden_layer_sizes=(64, 32), random_state=0)
        for start in range(0, 600, 150):
            model.partial_fit(X[start : start + 150], y[start : start + 150], classes=[0, 1, 2])
        results.append(weights(model))
    for other in results[1:]:
        assert_same_bits(other, results[0])


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_lbfgs_weights_are_the_same_bits_for_one_to_four_threads(thread_counts, sparse):
    X, y = make_regression(n_samples=800, n_features=40, noise=1.0, random_state=0)
    if sparse:
        X[np.abs(X) < 0.7] = 0
        X = sp.csr_matrix(X)
    results = []
    for n_threads in (1, 2, 3, 4):
        thread_counts(n_threads)
        model = MLPRegressor(hidden_layer_sizes=(48,), solver="lbfgs", max_iter=15, random_state=0).fit(X, y)
        results.append((model.loss_, weights(model)))
    for loss, other in results[1:]:
        assert loss == results[0][0]
        assert_same_bits(other, results[0][1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("n_rows", [1, 7, 64, 65, 1000, 5000])
def test_predictions_are_the_same_bits_for_one_to_four_threads(monkeypatch, dtype, sparse, n_rows):
    net = fitted_network(dtype)
    X = np.random.RandomState(3).uniform(-1, 1, size=(n_rows, UNITS[0])).astype(dtype)
    if sparse:
        X[np.abs(X) < 0.5] = 0
        X = sp.csr_matrix(X)
    monkeypatch.setattr(_parallel, "allowed_threads", lambda: 1)
    want = net.predict(X)
    monkeypatch.setattr("fastbp._engine.PREDICTION_THREAD_MULTIPLY_ADDS", 1)
    for n_threads in (2, 3, 4):
        monkeypatch.setattr(_parallel, "allowed_threads", lambda n=n_threads: n)
        np.testing.assert_array_equal(net.predict(X), want)


def test_predictions_from_many_threads_at_once_equal_serial_ones(monkeypatch):
    monkeypatch.setattr("fastbp._engine.PREDICTION_THREAD_MULTIPLY_ADDS", 1)
    nets = [fitted_network(dtype) for dtype in (np.float64, np.float32)]
    X = np.random.RandomState(8).uniform(-1, 1, size=(2000, UNITS[0]))
    with threadpool_limits(1):
        want = [net.predict(X) for net in nets]
    failures = []

    def predict_often(net, expected):
        for _ in range(30):
            if not np.array_equal(net.predict(X), expected):
                failures.append(net.dtype)

    threads = [threading.Thread(target=predict_often, args=(nets[k % 2], want[k % 2])) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads) and failures == []


# --------------------------------------------------------------------------
# The user's controls decide how many cores a fit uses


FIT_AND_MEASURE = textwrap.dedent(
    """
    import json, sys, time, warnings
    import numpy as np
    from sklearn.datasets import make_classification
    from threadpoolctl import threadpool_limits
    from fastbp import MLPClassifier
    warnings.simplefilter("ignore")
    X, y = make_classification(n_samples=4000, n_features=100, n_informative=20, random_state=0)
    model = MLPClassifier(hidden_layer_sizes=(256, 128), max_iter=1, random_state=0)
    model.fit(X[:400], y[:400])  # compiled or loaded before the measurement
    model.set_params(max_iter=4)

    def measure():
        wall, cpu = time.perf_counter(), time.process_time()
        model.fit(X, y)
        return (time.process_time() - cpu) / (time.perf_counter() - wall)

    if sys.argv[1] == "threadpool_limits":
        with threadpool_limits(1):
            ratio = measure()
    else:
        ratio = measure()
    print(json.dumps({"ratio": ratio}))
    """
)


@pytest.mark.parametrize("control", ["threadpool_limits", "NUMBA_NUM_THREADS", "OMP_NUM_THREADS"])
def test_one_core_when_the_user_says_so(control):
    env = dict(os.environ)
    if control != "threadpool_limits":
        env[control] = "1"
    result = subprocess.run([sys.executable, "-c", FIT_AND_MEASURE, control], env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    ratio = json.loads(result.stdout.strip().splitlines()[-1])["ratio"]
    assert ratio <= 1.15, f"CPU time / wall time {ratio:.2f} under {control}=1"


def test_no_thread_affinity_is_ever_changed(monkeypatch):
    def refuse(*args):
        raise AssertionError("os.sched_setaffinity was called")

    monkeypatch.setattr(os, "sched_setaffinity", refuse, raising=False)
    before = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    X, y = _classification(np.float32, False)
    model = MLPClassifier(hidden_layer_sizes=(64, 32), batch_size=32, max_iter=2, random_state=0)
    with pytest.warns(Warning):
        model.fit(X, y)
    model.predict(np.tile(X, (20, 1)))
    MLPRegressor(hidden_layer_sizes=(8,), solver="lbfgs", max_iter=5).fit(X, y)
    if before is not None:
        assert os.sched_getaffinity(0) == before


def _blas_counts():
    return [lib.num_threads for lib in _parallel._blas_controller().lib_controllers]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_blas_thread_counts_are_as_before_after_overlapping_fits_in_threads():
    before = _blas_counts()
    X, y = _classification(np.float64, False)
    errors = []

    def fit(seed):
        try:
            for _ in range(3):
                MLPClassifier(hidden_layer_sizes=(64, 32), batch_size=128, max_iter=3, random_state=seed).fit(X, y)
                MLPClassifier(hidden_layer_sizes=(32,), max_iter=2, random_state=seed).fit(X, y).predict(X)
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=fit, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert errors == []
    assert _blas_counts() == before
    with threadpool_limits(1, user_api="blas"):
        MLPClassifier(hidden_layer_sizes=(64, 32), batch_size=128, max_iter=2, random_state=0).fit(X, y)
        assert _blas_counts() == [1] * len(before)
    assert _blas_counts() == before


def _fit_and_predict_in_child(queue):
    X, y = _classification(np.float64, False, n_samples=300)
    model = MLPClassifier(hidden_layer_sizes=(64, 32), batch_size=128, max_iter=3, random_state=0).fit(X, y)
    queue.put((model.predict_proba(X).tolist(), weights(model)[0].tolist()))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork with threads running
def test_forked_child_fits_and_predicts():
    X, y = _classification(np.float64, False, n_samples=300)
    parent = MLPClassifier(hidden_layer_sizes=(64, 32), batch_size=128, max_iter=3, random_state=0).fit(X, y)
    parent.predict(np.tile(X, (10, 1)))  # the parent's workers exist
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_fit_and_predict_in_child, args=(queue,))
    child.start()
    child.join(240)
    assert child.exitcode == 0
    proba, first_weights = queue.get(timeout=5)
    np.testing.assert_array_equal(np.array(proba), parent.predict_proba(X))
    np.testing.assert_array_equal(np.array(first_weights), parent.coefs_[0])


def _process_cpu_seconds():
    times = os.times()
    return times.user + times.system


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_the_process_is_idle_after_a_fit_and_a_prediction(monkeypatch):
    monkeypatch.setattr("fastbp._engine.PREDICTION_THREAD_MULTIPLY_ADDS", 1)
    X, y = _classification(np.float64, False)
    model = MLPClassifier(hidden_layer_sizes=(64, 32), batch_size=128, max_iter=3, random_state=0).fit(X, y)
    model.predict(np.tile(X, (10, 1)))
    time.sleep(0.01)
    start = _process_cpu_seconds()
    time.sleep(2)
    assert _process_cpu_seconds() - start < 0.1


# --------------------------------------------------------------------------
# Failures


@pytest.mark.parametrize("failing_thread", [0, 1])
def test_a_failing_thread_of_an_epoch_raises_and_the_others_stop(thread_counts, monkeypatch, failing_thread):
    thread_counts(2)
    X, y = _classification(np.float64, False, n_samples=300)
    train_epoch = kernels.train_epoch
    calls = []

    class Failing:
        def __getitem__(self, codes):
            def failing(*args):
                thread = args[-3]
                calls.append(thread)
                if thread == failing_thread:
                    raise RuntimeError(f"thread {failing_thread} failed")
                return train_epoch[codes](*args)

            return failing

    monkeypatch.setattr(kernels, "train_epoch", Failing())
    model = MLPClassifier(hidden_layer_sizes=(64, 32), batch_size=128, max_iter=3, random_state=0)
    outcome = []

    def fit():
        try:
            model.fit(X, y)
        except RuntimeError as exc:
            outcome.append(str(exc))

    runner = threading.Thread(target=fit, daemon=True)
    runner.start()
    runner.join(120)
    assert not runner.is_alive(), "the other thread kept waiting"
    assert outcome == [f"thread {failing_thread} failed"]
    assert sorted(calls) == [0, 1]
    assert not hasattr(model, "coefs_")


# --------------------------------------------------------------------------
# An estimator used from several threads


def _predicting_threads(model, X, n_threads=3):
    """Threads that predict with ``model`` until told to stop; they record every prediction."""
    stop = threading.Event()
    seen = []

    def predict_often():
        while not stop.is_set():
            seen.append(model.predict_proba(X))

    threads = [threading.Thread(target=predict_often) for _ in range(n_threads)]
    for thread in threads:
        thread.start()

    def finish():
        stop.set()
        for thread in threads:
            thread.join(60)
        return seen

    return finish


@pytest.mark.parametrize("call", ["partial_fit", "warm_fit"])
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_predictions_during_failing_calls_see_the_unchanged_model(call):
    X, y = _classification(np.float64, False, n_samples=400)
    model = MLPClassifier(hidden_layer_sizes=(64,), solver="sgd", max_iter=5, random_state=0).fit(X, y)
    want = model.predict_proba(X)
    X_bad = X * 1e200  # finite, but every epoch on it diverges
    if call == "warm_fit":
        model.set_params(warm_start=True)
    finish = _predicting_threads(model, X)
    for _ in range(100 if call == "warm_fit" else 300):
        with pytest.raises(ValueError, match="diverged"):
            if call == "partial_fit":
                model.partial_fit(X_bad, y)
            else:
                model.fit(X_bad, y)
    seen = finish()
    assert seen and sum(not np.array_equal(p, want) for p in seen) == 0
    np.testing.assert_array_equal(model.predict_proba(X), want)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_predictions_during_successful_calls_see_the_model_before_or_after():
    X, y = _classification(np.float64, False, n_samples=400)
    model = MLPClassifier(hidden_layer_sizes=(64,), max_iter=5, random_state=0).fit(X, y)
    models = [model.predict_proba(X)]
    finish = _predicting_threads(model, X)
    for _ in range(50):
        model.partial_fit(X, y)
        models.append(model.predict_proba(X))
    seen = finish()
    assert seen
    mixed = [p for p in seen if not any(np.array_equal(p, m) for m in models)]
    assert mixed == []

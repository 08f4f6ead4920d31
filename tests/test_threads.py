"""Thread use: BLAS thread rules, predictions split among worker threads, split epochs."""

import contextlib
import multiprocessing
import os
import threading
import time

import numba
import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import make_classification

from fastbp import MLPClassifier, Network
from fastbp import _threads, kernels
from fastbp._network import KernelInput, Workspace, prediction_chunk_rows

UNITS = (40, 33, 17, 5)


def fitted_network(dtype):
    net = Network(UNITS, activation="tanh", out_activation="softmax", loss="log_loss", dtype=dtype)
    net.init_weights(random_state=0)
    return net


@pytest.fixture
def split_everything(monkeypatch):
    """Make every prediction eligible for a split into three blocks."""
    monkeypatch.setenv("FASTBP_BLAS_THREADS", "auto")
    monkeypatch.setattr(_threads, "PARALLEL_WORK", 0)
    monkeypatch.setattr(_threads, "MIN_BLOCK_ROWS", 1)
    monkeypatch.setattr(_threads, "available_cores", lambda: 3)
    monkeypatch.setattr(numba.config, "NUMBA_NUM_THREADS", 3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("n_rows", [1, 7, 64, 65, 130, 1000, 5000])
def test_split_prediction_equals_one_block_bitwise(split_everything, monkeypatch, dtype, sparse, n_rows):
    """Dense chunks shared with a team of workers, CSR blocks run on pool threads: the serial bits."""
    X = np.random.RandomState(1).uniform(-1, 1, size=(n_rows, UNITS[0]))
    if sparse:
        X[X < 0.3] = 0
        X = sp.csr_matrix(X)
    net = fitted_network(dtype)
    blocks, boards = [], []
    run_in_pool, predict = _threads._run_in_pool, kernels.predict

    def recording(process, bounds):
        blocks.extend(zip(bounds[:-1], bounds[1:]))
        run_in_pool(process, bounds)

    def recording_predict(*args):
        if args[-1] == 0:  # a call (not a worker)
            boards.append(args[-2].size)
        return predict(*args)

    monkeypatch.setattr(_threads, "_run_in_pool", recording)
    monkeypatch.setattr(kernels, "predict", recording_predict)
    split = net.predict(X)
    labels = np.empty(n_rows, dtype=np.int64)
    split_logits = net._output(KernelInput(X, dtype), labels=labels)
    chunk = prediction_chunk_rows(n_rows, UNITS)
    n_chunks = -(-n_rows // chunk)
    if n_chunks == 1:
        assert blocks == [] and boards == [0, 0]  # one block, run in this thread
    elif sparse:
        assert len(blocks) == 2 * min(3, n_chunks) and boards == [0] * len(blocks)
        assert blocks[0][0] == 0 and blocks[-1][1] == n_rows
        assert all(start % chunk == 0 for start, _ in blocks)
        first = blocks[: len(blocks) // 2]
        assert all(stop == next_start for (_, stop), (next_start, _) in zip(first, first[1:]))
    else:
        assert blocks == [] and boards == [kernels.BOARD_SIZE] * 2
    monkeypatch.setattr(_threads, "available_cores", lambda: 1)
    np.testing.assert_array_equal(split, net.predict(X))
    serial_labels = np.empty(n_rows, dtype=np.int64)
    np.testing.assert_array_equal(split_logits, net._output(KernelInput(X, dtype), labels=serial_labels))
    np.testing.assert_array_equal(labels, serial_labels)
    np.testing.assert_array_equal(labels, split.argmax(axis=1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
def test_objective_in_blocks_does_not_depend_on_workers(split_everything, monkeypatch, dtype, sparse):
    rng = np.random.RandomState(2)
    X = rng.uniform(-1, 1, size=(301, UNITS[0]))
    if sparse:
        X[X < 0.3] = 0
        X = sp.csr_matrix(X)
    Y = np.eye(UNITS[-1])[rng.randint(UNITS[-1], size=301)]
    weights = rng.uniform(0.5, 2, size=301)
    net = fitted_network(dtype)
    assert len(net._objective_workspace(301).blocks) == 2
    loss, grad = net.loss_and_gradient(X, Y, weights, alpha=0.1)
    monkeypatch.setattr(_threads, "available_cores", lambda: 1)  # blocks in turn
    loss_in_turn, grad_in_turn = net.loss_and_gradient(X, Y, weights, alpha=0.1)
    assert loss == loss_in_turn
    np.testing.assert_array_equal(grad, grad_in_turn)
    monkeypatch.setattr("fastbp._network._OBJECTIVE_BLOCKS", 1)  # one block: the same up to rounding
    loss_whole, grad_whole = net.loss_and_gradient(X, Y, weights, alpha=0.1)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(loss_whole, loss, rtol=tol)
    np.testing.assert_allclose(grad_whole, grad, rtol=tol, atol=tol * np.abs(grad).max())


def test_row_workers_rules(monkeypatch):
    monkeypatch.setenv("FASTBP_BLAS_THREADS", "auto")
    monkeypatch.setattr(_threads, "available_cores", lambda: 4)
    monkeypatch.setattr(numba.config, "NUMBA_NUM_THREADS", 3)
    assert _threads.row_workers(_threads.PARALLEL_WORK, (1, 1, 1), concurrent=False) == 3  # Numba's limit
    monkeypatch.setattr(numba.config, "NUMBA_NUM_THREADS", 64)
    big = _threads.PARALLEL_WORK  # rows of a 1-1-1 network do 2 multiply-adds each
    assert _threads.row_workers(big // 2, (1, 1, 1), concurrent=False) == 4
    assert _threads.row_workers(big // 2 - 1, (1, 1, 1), concurrent=False) == 1  # too little work
    assert _threads.row_workers(big // 2, (1, 1, 1), concurrent=True) == 1  # another fastbp call runs
    rows = 2 * _threads.MIN_BLOCK_ROWS
    assert _threads.row_workers(rows, (10_000, 10_000), concurrent=False) == 2  # rows per worker
    monkeypatch.setenv("FASTBP_BLAS_THREADS", "2")
    assert _threads.row_workers(big, (1, 1, 1), concurrent=False) == 1  # forced BLAS threads


@pytest.mark.parametrize("split", [True, False], ids=["split", "one-block"])
def test_blas_threads_are_limited_during_a_prediction_and_restored_after_it(monkeypatch, split):
    from threadpoolctl import threadpool_limits

    monkeypatch.setenv("FASTBP_BLAS_THREADS", "auto" if split else "1")
    monkeypatch.setattr(_threads, "PARALLEL_WORK", 0)
    monkeypatch.setattr(_threads, "available_cores", lambda: 2)
    libraries = _threads._scipy_blas().lib_controllers
    seen = []
    predict = kernels.predict

    def recording(*args):
        if args[-1] == 0:  # a call (not a worker)
            seen.append(([library.num_threads for library in libraries], args[-2].size))
        return predict(*args)

    monkeypatch.setattr(kernels, "predict", recording)
    net = fitted_network(np.float64)
    with threadpool_limits(3, user_api="blas"):
        net.predict(np.zeros((1000, UNITS[0])))
        assert [library.num_threads for library in libraries] == [3] * len(libraries)
    # one call: with a board, its chunks are shared with the team's workers
    assert seen == [([1] * len(libraries), kernels.BOARD_SIZE if split else 0)]


def test_failing_block_raises_after_every_block_finished():
    finished = []
    release = threading.Event()

    def process(start, stop):
        if start == 0:
            raise ValueError("block 0 failed")
        release.wait(5)  # still running when block 0 has failed
        finished.append(start)

    threading.Timer(0.2, release.set).start()
    with pytest.raises(ValueError, match="block 0 failed"):
        _threads._run_in_pool(process, [0, 3, 6, 9])
    assert sorted(finished) == [3, 6]


def test_chunk_blocks():
    assert _threads.chunk_blocks(10, 3, 2) == [0, 6, 10]  # chunks 0-3-6-9-10, two per block
    assert _threads.chunk_blocks(10, 3, 9) == [0, 3, 6, 9, 10]  # no more blocks than chunks
    assert _threads.chunk_blocks(5, 10, 4) == [0, 5]


def _predict_in_child(queue):
    X, y = make_classification(n_samples=300, n_features=20, random_state=0)
    est = MLPClassifier(hidden_layer_sizes=(30,), max_iter=3, random_state=0).fit(X, y)
    queue.put(est.predict_proba(X).tolist())


def test_forked_child_predicts_with_its_own_worker_pool(split_everything):
    # the parent's pool threads do not exist in a forked child: a child that
    # reused the pool object would wait for them forever
    fitted_network(np.float64).predict(np.zeros((6, UNITS[0])))  # the parent's pool exists
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_predict_in_child, args=(queue,))
    child.start()
    child.join(120)
    assert child.exitcode == 0
    proba = np.array(queue.get(timeout=5))
    assert proba.shape == (300, 2) and np.allclose(proba.sum(axis=1), 1)


@pytest.fixture
def split_epochs(monkeypatch):
    """Make every mini-batch of more than one row eligible for a split between two threads."""
    monkeypatch.setenv("FASTBP_BLAS_THREADS", "auto")
    monkeypatch.setattr(_threads, "SPLIT_WORK", 0)
    monkeypatch.setattr(_threads, "MIN_SPLIT_INTENSITY", 0)  # whether the cores share a cache or not
    monkeypatch.setattr(_threads, "available_cores", lambda: 2)
    monkeypatch.setattr(numba.config, "NUMBA_NUM_THREADS", 2)


def recording_team_threads(monkeypatch):
    """Record the ``threads`` of the team behind every epoch."""
    threads_used = []
    run = _threads.EpochTeam.run

    def recording(team, epoch, sync, key):
        threads_used.append(team.threads)
        return run(team, epoch, sync, key)

    monkeypatch.setattr(_threads.EpochTeam, "run", recording)
    return threads_used


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("solver", ["adam", "sgd"])
@pytest.mark.parametrize("batch_size", [2, 25, 64])
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_split_epochs_on_two_threads_equal_one_thread_bitwise(
    split_epochs, monkeypatch, dtype, sparse, solver, batch_size
):
    X, y = make_classification(n_samples=203, n_features=12, n_classes=3, n_informative=5, random_state=0)
    X = X.astype(dtype)
    if sparse:
        X[np.abs(X) < 0.5] = 0
        X = sp.csr_matrix(X)
    threads_used = recording_team_threads(monkeypatch)

    def fit():
        return MLPClassifier(
            hidden_layer_sizes=(17, 9), solver=solver, batch_size=batch_size, max_iter=4,
            alpha=0.01, momentum=0.9, random_state=0,
        ).fit(X, y)

    threaded = fit()
    assert set(threads_used) == {2}
    threads_used.clear()
    monkeypatch.setattr(_threads, "available_cores", lambda: 1)  # the same two parts, in turn
    in_turn = fit()
    assert set(threads_used) == {1}
    assert threaded.loss_curve_ == in_turn.loss_curve_
    for a, b in zip(threaded.coefs_ + threaded.intercepts_, in_turn.coefs_ + in_turn.intercepts_):
        np.testing.assert_array_equal(a, b)
    monkeypatch.setattr(_threads, "SPLIT_WORK", np.inf)  # one part: the same up to rounding
    whole = fit()
    np.testing.assert_allclose(whole.loss_curve_, threaded.loss_curve_, rtol=1e-4 if dtype == np.float32 else 1e-10)


def test_a_token_passed_between_two_threads():
    flag = np.zeros(8, dtype=np.int64)
    other = threading.Thread(target=kernels.pass_token, args=(flag, 0, 100))
    other.start()
    assert kernels.pass_token(flag, 1, 100) == 100
    other.join()
    assert flag[0] == 200
    flag[1] = 1  # aborted: no pass, no wait
    assert kernels.pass_token(flag, 0, 5) == 0 and flag[0] == 200
    seconds = _threads.handoff_seconds()
    assert 0 < seconds < 1e-4


@pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs Linux's affinity calls and two CPUs for this process",
)
def test_the_hand_off_is_timed_between_two_cpus_which_both_threads_get_back(monkeypatch):
    allowed = os.sched_getaffinity(0)
    calls = []
    pass_token = kernels.pass_token

    def recording(flag, side, n_passes):
        calls.append((side, n_passes, os.sched_getaffinity(0), threading.get_native_id()))
        return pass_token(flag, side, n_passes)

    monkeypatch.setattr(kernels, "pass_token", recording)
    assert _threads.handoff_seconds() is not None
    [main_cpus] = {frozenset(cpus) for side, _, cpus, _ in calls if side == 1}  # one set throughout
    [(worker_cpus, worker_id)] = [(cpus, tid) for side, n, cpus, tid in calls if side == 0 and n > 0]
    assert len(main_cpus) == 1 and worker_cpus == allowed - main_cpus
    assert os.sched_getaffinity(0) == allowed
    assert os.sched_getaffinity(worker_id) == allowed  # the pool thread, free again


def test_no_worker_to_pass_the_token_means_no_measurement(monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    busy = threading.Event()
    pool = ThreadPoolExecutor(1)
    pool.submit(busy.wait)
    monkeypatch.setattr(_threads, "_worker_pool", lambda: pool)
    monkeypatch.setattr(_threads, "_handoff", None)
    start = time.perf_counter()
    assert _threads.handoff_seconds() is None
    assert _threads.cores_share_cache()  # not measured: the fit splits as it did before
    assert time.perf_counter() - start < 1
    busy.set()
    pool.shutdown()


@pytest.mark.parametrize("share", [True, False], ids=["shared-cache", "no-shared-cache"])
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_fits_with_few_multiply_adds_per_parameter_split_only_where_cores_share_a_cache(
    monkeypatch, share
):
    # a wide sparse input moves more data between the threads than it computes
    monkeypatch.setenv("FASTBP_BLAS_THREADS", "auto")
    monkeypatch.setattr(_threads, "available_cores", lambda: 2)
    monkeypatch.setattr(numba.config, "NUMBA_NUM_THREADS", 2)
    measured = []
    monkeypatch.setattr(_threads, "cores_share_cache", lambda: measured.append(share) or share)
    threads_used = recording_team_threads(monkeypatch)
    rng = np.random.RandomState(0)
    X = sp.random(400, 3000, density=0.004, format="csr", random_state=rng, dtype=np.float64)
    y = rng.randint(0, 3, size=400)

    def fit(X, batch_size=200):
        return MLPClassifier(hidden_layer_sizes=(64,), batch_size=batch_size, max_iter=2, random_state=0).fit(X, y)

    assert _threads.split_intensity(100, (3000, 64, 3), X.nnz / X.shape[0]) < _threads.MIN_SPLIT_INTENSITY
    sparse = fit(X)
    assert measured == [share] and set(threads_used) == {2 if share else 1}
    measured.clear()
    threads_used.clear()
    dense = fit(X.toarray())  # 100 multiply-adds per parameter: split without a measurement
    assert measured == [] and set(threads_used) == {2}
    threads_used.clear()
    narrow = X[:, :20].toarray()  # parts of 50 rows of 20-64-3: 48 multiply-adds per parameter
    assert _threads.split_intensity(50, (20, 64, 3)) < _threads.MIN_SPLIT_INTENSITY
    fit(narrow, batch_size=100)
    assert measured == [share] and set(threads_used) == {2 if share else 1}
    # the same parts either way: the same bits
    monkeypatch.setattr(_threads, "cores_share_cache", lambda: not share)
    for a, b in zip(sparse.coefs_, fit(X).coefs_):
        np.testing.assert_array_equal(a, b)
    assert dense.n_iter_ == 2


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_epochs_in_turn_while_another_call_runs_then_threaded_again(split_epochs, monkeypatch):
    # the workers wait through epochs that run in this thread, then go on
    X, y = make_classification(n_samples=150, n_features=12, n_classes=3, n_informative=5, random_state=1)
    run = _threads.EpochTeam.run
    in_turn = []

    def sometimes_busy(team, epoch, sync, key):
        busy = len(in_turn) % 3 == 1  # epochs 2, 5, 8, ...: another fastbp call "runs"
        in_turn.append(busy)
        with contextlib.ExitStack() as stack:
            if busy:
                stack.enter_context(_threads._tracked_call())
            return run(team, epoch, sync, key)

    def fit():
        return MLPClassifier(hidden_layer_sizes=(11,), batch_size=16, max_iter=7, random_state=0).fit(X, y)

    monkeypatch.setattr(_threads.EpochTeam, "run", sometimes_busy)
    mixed = fit()
    assert in_turn == [False, True, False, False, True, False, False]
    monkeypatch.setattr(_threads.EpochTeam, "run", run)
    monkeypatch.setattr(_threads, "available_cores", lambda: 1)
    alone = fit()
    assert mixed.loss_curve_ == alone.loss_curve_
    for a, b in zip(mixed.coefs_ + mixed.intercepts_, alone.coefs_ + alone.intercepts_):
        np.testing.assert_array_equal(a, b)


def test_epoch_parts_and_training_threads_rules(monkeypatch):
    monkeypatch.setenv("FASTBP_BLAS_THREADS", "auto")
    monkeypatch.setattr(numba.config, "NUMBA_NUM_THREADS", 64)
    units = (10, 10)  # 100 multiply-adds per row
    rows = _threads.SPLIT_WORK // 100
    assert _threads.epoch_parts(rows, units) == 2
    assert _threads.epoch_parts(rows - 1, units) == 1  # too little work
    assert _threads.epoch_parts(1, (10_000, 10_000)) == 1  # one row cannot be cut

    def threads(batch_size, layer_units):
        with _threads.training_threads(batch_size, layer_units) as team:
            return team.threads

    monkeypatch.setattr(_threads, "available_cores", lambda: 2)
    assert threads(rows, units) == 2
    assert threads(rows - 1, units) == 1
    big = (4_000, 4_000)  # a part's product is large: threads still, with no more cores than parts
    assert threads(rows, big) == 2
    monkeypatch.setattr(_threads, "available_cores", lambda: 8)
    assert threads(rows, big) == 1  # BLAS threads would use more cores
    assert threads(rows, units) == 2
    monkeypatch.setattr(_threads, "available_cores", lambda: 1)
    assert threads(rows, units) == 1
    monkeypatch.setattr(_threads, "available_cores", lambda: 2)
    monkeypatch.setattr(numba.config, "NUMBA_NUM_THREADS", 1)  # as in a joblib worker process
    assert threads(rows, units) == 1
    monkeypatch.setattr(numba.config, "NUMBA_NUM_THREADS", 64)
    monkeypatch.setattr(_threads, "available_cores", lambda: 2)
    with _threads.training_threads(rows, units):
        assert threads(rows, units) == 1  # another fastbp call runs
    monkeypatch.setenv("FASTBP_BLAS_THREADS", "1")
    assert threads(rows, units) == 1


@pytest.mark.parametrize("failing_part", [0, 1])
def test_failing_part_of_a_split_epoch_raises_and_the_other_stops(split_epochs, monkeypatch, failing_part):
    X, y = make_classification(n_samples=200, n_features=12, random_state=0)
    train_epoch = kernels.train_epoch
    calls = []

    def failing(*args):
        parts = args[-2]
        calls.append(parts.tolist())
        if parts.tolist() == [failing_part]:
            raise RuntimeError(f"part {failing_part} failed")
        return train_epoch(*args)

    monkeypatch.setattr(kernels, "train_epoch", failing)
    est = MLPClassifier(hidden_layer_sizes=(9,), batch_size=20, max_iter=3, random_state=0)
    outcome = []

    def fit():
        try:
            est.fit(X, y)
        except RuntimeError as exc:
            outcome.append(str(exc))

    worker = threading.Thread(target=fit, daemon=True)
    worker.start()
    worker.join(60)
    assert not worker.is_alive(), "the other part kept waiting"
    assert outcome == [f"part {failing_part} failed"]
    assert sorted(calls) == [[0], [1]]
    assert not hasattr(est, "coefs_")


# --------------------------------------------------------------------------
# The prediction team: workers that share a dense prediction's chunks
# --------------------------------------------------------------------------


def served_chunks(team):
    return int(team.board[kernels.BOARD_SERVED : kernels.BOARD_SERVED + team.n_workers + 1].sum())


@pytest.fixture
def new_teams(split_everything, monkeypatch):
    """Teams made for the test alone."""
    monkeypatch.setattr(_threads, "_teams", {})


def test_team_workers_share_chunks_of_both_dtypes_and_return_the_serial_bits(new_teams, monkeypatch):
    X = np.random.RandomState(3).uniform(-1, 1, size=(3000, UNITS[0]))
    nets = {dtype: fitted_network(dtype) for dtype in (np.float64, np.float32)}
    serial = {}
    with monkeypatch.context() as serial_only:
        serial_only.setattr(_threads, "available_cores", lambda: 1)
        for dtype, net in nets.items():
            serial[dtype] = net.predict(X)
    team = _threads.prediction_team(2)
    for _ in range(20):  # the dtypes alternate: workers switch kernels
        for dtype, net in nets.items():
            np.testing.assert_array_equal(net.predict(X), serial[dtype])
    assert served_chunks(team) > 0  # the workers took part


def test_call_that_no_worker_joins_is_computed_by_the_caller(split_everything):
    net = fitted_network(np.float64)
    X = np.random.RandomState(4).uniform(-1, 1, size=(700, UNITS[0]))
    chunk = prediction_chunk_rows(len(X), UNITS)
    work = Workspace(net, chunk, slots=3)
    out = np.full((len(X), UNITS[-1]), np.nan)
    board = np.zeros(kernels.BOARD_SIZE, dtype=np.int64)  # no worker serves it
    status = kernels.predict(X, None, net.params, net.layers, work.acts, work.rows, chunk, out,
                             np.empty(0, dtype=np.int64), board, 0)
    assert status == kernels.PREDICT_DONE
    np.testing.assert_array_equal(out, net.predict(X))


def test_idle_workers_sleep_and_are_woken_by_the_next_call(new_teams, monkeypatch):
    monkeypatch.setattr(_threads, "PREDICTION_IDLE_SPINS", 1)
    net = fitted_network(np.float64)
    X = np.random.RandomState(5).uniform(-1, 1, size=(3000, UNITS[0]))
    want = net.predict(X)
    team = _threads.prediction_team(2)
    deadline = time.monotonic() + 10  # on busy cores a woken worker may come late to many calls
    while True:
        time.sleep(0.002)  # the workers leave the kernel and sleep
        np.testing.assert_array_equal(net.predict(X), want)
        if served_chunks(team) > 0 or time.monotonic() > deadline:
            break
    assert served_chunks(team) > 0


def test_failed_worker_makes_the_prediction_raise(new_teams, monkeypatch):
    """A worker that fails in a chunk counts it as done: the caller stops waiting and raises its error.

    The stand-in worker fails as soon as the call is posted, long before the
    caller, which computes every chunk itself, is done.
    """
    predict = kernels.predict

    def failing_worker(*args):
        board, slot = args[-2:]
        if slot == 0 or board[kernels.BOARD_STOP]:  # a call, or prepare()'s compile
            return predict(*args)
        deadline = time.monotonic() + 5
        while board[kernels.BOARD_CLAIM] == 0 and time.monotonic() < deadline:
            pass  # until a call is posted
        board[kernels.BOARD_BUSY + slot] = 1  # as if in a chunk
        raise ZeroDivisionError("worker failed")

    net = Network((50, 400, 400, 3))
    net.init_weights(random_state=0)
    X = np.random.RandomState(6).uniform(-1, 1, size=(20_000, 50))
    net.predict(X[:100])  # the kernels compiled beforehand, by a team of real workers
    kernels.abandon_chunk(np.zeros(kernels.BOARD_SIZE, dtype=np.int64), 1)
    monkeypatch.setattr(_threads, "_teams", {})
    monkeypatch.setattr(kernels, "predict", failing_worker)
    with pytest.raises(RuntimeError, match="prediction worker thread failed") as raised:
        net.predict(X)
    assert isinstance(raised.value.__cause__, ZeroDivisionError)


@pytest.mark.parametrize("fit", ["training_threads", "objective"])
def test_a_fit_sends_spinning_prediction_workers_to_sleep(new_teams, monkeypatch, fit):
    monkeypatch.setattr(_threads, "PREDICTION_IDLE_SPINS", 1 << 62)  # they would spin for ever
    net = fitted_network(np.float64)
    X = np.random.RandomState(7).uniform(-1, 1, size=(3000, UNITS[0]))
    net.predict(X)
    team = _threads.prediction_team(2)
    time.sleep(0.05)
    assert all(team._awake)  # still in the kernel
    if fit == "training_threads":
        context = _threads.training_threads(32, UNITS)
    else:
        context = net._objective_threads(net._objective_workspace(len(X)))
    with context:
        deadline = time.monotonic() + 5
        while any(team._awake) and time.monotonic() < deadline:
            time.sleep(0.001)
        assert not any(team._awake)
    np.testing.assert_array_equal(net.predict(X), net.predict(X))  # woken again
    time.sleep(0.05)
    assert all(team._awake)


def test_predictions_from_many_threads_at_once_equal_serial_ones(new_teams):
    nets = [fitted_network(dtype) for dtype in (np.float64, np.float32)]
    X = np.random.RandomState(8).uniform(-1, 1, size=(2000, UNITS[0]))
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
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads) and failures == []

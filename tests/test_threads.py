"""Thread use: BLAS thread rules and predictions split among worker threads."""

import multiprocessing
import threading

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import make_classification

from fastbp import MLPClassifier, Network
from fastbp import _threads
from fastbp._network import prediction_chunk_rows

UNITS = (40, 33, 17, 5)


def fitted_network(dtype):
    net = Network(UNITS, activation="tanh", out_activation="softmax", loss="log_loss", dtype=dtype)
    net.init_weights(random_state=0)
    return net


@pytest.fixture
def split_everything(monkeypatch):
    """Make every prediction eligible for a split into three blocks."""
    monkeypatch.setenv("FASTBP_BLAS_THREADS", "auto")
    monkeypatch.setattr(_threads, "PARALLEL_PREDICTION", 0)
    monkeypatch.setattr(_threads, "MIN_BLOCK_ROWS", 1)
    monkeypatch.setattr(_threads, "available_cores", lambda: 3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("n_rows", [1, 7, 64, 65, 130, 1000, 5000])
def test_split_prediction_equals_one_block_bitwise(split_everything, monkeypatch, dtype, sparse, n_rows):
    X = np.random.RandomState(1).uniform(-1, 1, size=(n_rows, UNITS[0]))
    if sparse:
        X[X < 0.3] = 0
        X = sp.csr_matrix(X)
    net = fitted_network(dtype)
    blocks = []
    run = _threads.run_row_blocks

    def recording(process, *args):
        run(lambda start, stop: (blocks.append((start, stop)), process(start, stop)), *args)

    monkeypatch.setattr("fastbp._network.run_row_blocks", recording)
    split = net.predict(X)
    chunk = prediction_chunk_rows(n_rows, UNITS)
    n_chunks = -(-n_rows // chunk)
    blocks.sort()
    assert len(blocks) == min(3, n_chunks)
    assert blocks[0][0] == 0 and blocks[-1][1] == n_rows
    assert all(stop == next_start for (_, stop), (next_start, _) in zip(blocks, blocks[1:]))
    assert all(start % chunk == 0 for start, _ in blocks)
    monkeypatch.setattr(_threads, "available_cores", lambda: 1)
    np.testing.assert_array_equal(split, net.predict(X))


def test_row_workers_rules(monkeypatch):
    monkeypatch.setenv("FASTBP_BLAS_THREADS", "auto")
    monkeypatch.setattr(_threads, "available_cores", lambda: 4)
    big = _threads.PARALLEL_PREDICTION  # multiply-adds of one 1-1-1 row... per row: 2
    assert _threads.row_workers(big // 2, (1, 1, 1), concurrent=False) == 4
    assert _threads.row_workers(big // 2 - 1, (1, 1, 1), concurrent=False) == 1  # too little work
    assert _threads.row_workers(big // 2, (1, 1, 1), concurrent=True) == 1  # another fastbp call runs
    rows = 2 * _threads.MIN_BLOCK_ROWS
    assert _threads.row_workers(rows, (10_000, 10_000), concurrent=False) == 2  # rows per worker
    monkeypatch.setenv("FASTBP_BLAS_THREADS", "2")
    assert _threads.row_workers(big, (1, 1, 1), concurrent=False) == 1  # forced BLAS threads


def test_failing_block_raises_after_every_block_finished(split_everything):
    finished = []
    release = threading.Event()

    def process(start, stop):
        if start == 0:
            raise ValueError("block 0 failed")
        release.wait(5)  # still running when block 0 has failed
        finished.append(start)

    threading.Timer(0.2, release.set).start()
    with pytest.raises(ValueError, match="block 0 failed"):
        _threads.run_row_blocks(process, 9, (1, 1), 3)
    assert sorted(finished) == [3, 6]


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

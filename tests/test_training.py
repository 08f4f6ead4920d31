"""The training kernels' options against the NumPy reference: gradient clipping, the cosine schedule, dropout.

Two epochs of ``train_epoch`` (and ``train_epoch_one_row``, which has no
dropout) with each option against ``naive.train_epoch``; the same bits for
any number of threads sharing the parts; and a default fit compiles none of
the options' code.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from numpy.testing import assert_array_equal

import naive
from test_kernels import N_SAMPLES, SOLVERS, Problem, assert_close, kernel_train_epoch

BATCH = 4  # three batches of 11 rows per epoch
OPTIONS = {
    "clip": {"max_grad_norm": 0.05},  # below every batch's gradient norm here
    "cosine": {"schedule": (5, 0)},  # ends within the 6 steps of two epochs
    "warmup": {"schedule": (5, 2)},
    "dropout": {"dropout": (0.3, 0.5)},
    "all": {"max_grad_norm": 0.05, "schedule": (5, 2), "dropout": (0.3, 0.5)},
}
SEED = 2**33 + 5


def run_two_epochs(rng, p, batch_size, solver, options, sparse=False, one_row=False, n_parts=1, threads=1,
                   check=True):
    """Two epochs of the kernel with ``options``; against the reference when ``check``. Returns the kernel's state."""
    kind, hyper = SOLVERS[solver]
    params = p.params.copy()
    state_a, state_b = np.zeros_like(params), np.zeros_like(params)
    want_a, want_b = np.zeros_like(params), np.zeros_like(params)
    t = np.zeros(1, dtype=np.int64)
    want_t = 0
    losses = []
    for epoch in range(2):
        order = rng.permutation(N_SAMPLES).astype(np.int64)
        rates = options.get("dropout")
        dropout = None if rates is None else (SEED, epoch * N_SAMPLES, rates)
        got_loss = kernel_train_epoch(
            p, order, batch_size, 0.1, True, sparse, kind, hyper, state_a, state_b, t,
            one_row=one_row, n_parts=n_parts, threads=threads, schedule=options.get("schedule"),
            max_grad_norm=options.get("max_grad_norm"), dropout=dropout,
        )
        losses.append(got_loss)
        if check:
            want_loss, want_t = naive.train_epoch(
                p.X, p.Y, p.sample_weight, order, batch_size, params, p.sizes, p.activations,
                0.1, p.loss, p.loss_scale, p.eps, True, kind, hyper, want_a, want_b, want_t,
                max_grad_norm=options.get("max_grad_norm"), schedule=options.get("schedule"),
                dropout=dropout,
            )
            assert np.isfinite(want_loss)
            assert_close(got_loss, want_loss, p.dtype)
            assert_close(p.params, params, p.dtype)
            assert_close(state_a, want_a, p.dtype)
            assert_close(state_b, want_b, p.dtype)
            assert t[0] == want_t
    return losses, p.params, state_a, state_b, t


def problem(rng, dtype):
    return Problem(rng, dtype, ["tanh", "relu"], "log_loss", "softmax", weighted=True)


def test_the_clipped_problem_is_clipped(rng):
    p = problem(rng, np.float64)
    for start in range(0, N_SAMPLES, BATCH):
        rows = np.arange(start, min(start + BATCH, N_SAMPLES))
        _, grads = p.naive_loss_and_gradient(0.1, True, X=p.X[rows], Y=p.Y[rows], sample_weight=p.sample_weight[rows])
        assert np.linalg.norm(grads) > 2 * OPTIONS["clip"]["max_grad_norm"]


@pytest.mark.parametrize("solver", ["nesterov", "adam"])
@pytest.mark.parametrize("option", list(OPTIONS))
def test_train_epoch_options(rng, option, solver):
    run_two_epochs(rng, problem(rng, np.float64), BATCH, solver, OPTIONS[option])


@pytest.mark.parametrize("solver", ["momentum", "adam"])
def test_train_epoch_options_float32_and_parts(rng, solver):
    run_two_epochs(rng, problem(rng, np.float32), BATCH, solver, OPTIONS["all"], n_parts=3, threads=2)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_train_epoch_options_csr(rng, solver):
    run_two_epochs(rng, problem(rng, np.float64), BATCH, solver, OPTIONS["all"], sparse=True, n_parts=2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("solver", ["nesterov", "adam"])
@pytest.mark.parametrize("option", ["clip", "cosine", "warmup"])
def test_train_epoch_one_row_options(rng, dtype, solver, option):
    # wide and narrow layers: the one-row kernel orders their loops differently
    p = Problem(rng, dtype, ["tanh", "logistic"], "log_loss", "softmax", weighted=True, hidden_sizes=(9, 3))
    options = dict(OPTIONS[option])
    if option in ("cosine", "warmup"):
        options["schedule"] = (17, 0 if option == "cosine" else 4)  # 22 one-row steps
    if option == "clip":
        options["max_grad_norm"] = 0.2
    run_two_epochs(rng, p, 1, solver, options, one_row=True)


def test_one_row_and_batched_kernels_agree_with_clipping(rng):
    p = problem(rng, np.float64)
    q = problem(np.random.RandomState(0), np.float64)
    q.params[:] = p.params
    options = {"max_grad_norm": 0.05, "schedule": (15, 3)}
    one_row = run_two_epochs(np.random.RandomState(1), p, 1, "adam", options, one_row=True, check=False)
    batched = run_two_epochs(np.random.RandomState(1), q, 1, "adam", options, check=False)
    for a, b in zip(one_row, batched):
        assert_close(a, b, np.float64)


@pytest.mark.parametrize("solver", ["nesterov", "adam"])
def test_options_give_the_same_bits_on_any_number_of_threads(rng, solver):
    p = problem(rng, np.float64)
    start = p.params.copy()
    results = []
    for threads in (1, 2, 3):
        p.params[:] = start
        results.append(run_two_epochs(
            np.random.RandomState(1), p, BATCH, solver, OPTIONS["all"], n_parts=3, threads=threads, check=False,
        ))
        results[-1] = [np.copy(x) for x in results[-1]]
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert_array_equal(a, b)


def test_a_huge_max_grad_norm_gives_the_bits_of_no_clipping(rng):
    p = problem(rng, np.float64)
    start = p.params.copy()
    plain = [np.copy(x) for x in run_two_epochs(np.random.RandomState(1), p, BATCH, "adam", {}, n_parts=2, check=False)]
    p.params[:] = start
    huge = run_two_epochs(np.random.RandomState(1), p, BATCH, "adam", {"max_grad_norm": 1e300}, n_parts=2, check=False)
    for a, b in zip(plain, huge):
        assert_array_equal(a, b)


OPTION_HELPERS = textwrap.dedent(
    """
    import json, sys, warnings
    import numpy as np
    import fastbp
    from fastbp.kernels import dropout, network, optimizers, training
    warnings.simplefilter("ignore")
    rng = np.random.RandomState(0)
    X = rng.rand(60, 5)
    y = (X[:, 0] > 0.5).astype(int)
    options = json.loads(sys.argv[1])
    fastbp.MLPClassifier((4,), batch_size=16, max_iter=2, random_state=0, **options).fit(X, y)
    options.pop("dropout", None)  # mini-batches of one row with dropout take the batched kernel
    fastbp.MLPClassifier((4,), batch_size=1, max_iter=2, random_state=0, **options).fit(X, y)
    helpers = {
        "draw_masks": dropout.draw_masks, "apply_mask": network.apply_mask,
        "cosine_rate": optimizers.cosine_rate, "clip_scale": optimizers.clip_scale,
        "finished_squared_norm": optimizers.finished_squared_norm,
        "one_row_squared_norm": training.one_row_squared_norm,
    }
    print(json.dumps({name: len(helper.overloads) for name, helper in helpers.items()}))
    """
)


def compiled_helpers(tmp_path, options):
    env = dict(os.environ, FASTBP_CACHE_DIR=str(tmp_path / json.dumps(options).replace('"', "")))
    result = subprocess.run([sys.executable, "-c", OPTION_HELPERS, json.dumps(options)], env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_default_fit_compiles_none_of_the_options_code(tmp_path):
    assert set(compiled_helpers(tmp_path, {}).values()) == {0}
    with_options = compiled_helpers(
        tmp_path, {"dropout": 0.2, "max_grad_norm": 1.0, "learning_rate": "cosine"}
    )
    assert all(count > 0 for count in with_options.values()), with_options

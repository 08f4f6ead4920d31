"""Dropout: the counter-based masks (kernels/dropout.py) and the masked forward and backward passes.

The masks are checked against a Python-integer implementation of the same
hash (``naive.dropout_masks``) and for their rates; the gradient of a network
with masks held fixed against central finite differences of the kernel's
own objective and against the NumPy reference.
"""

import numpy as np
import pytest
from numpy.testing import assert_array_equal

import naive
from fastbp import kernels as K
from fastbp._engine import dropout_threshold
from test_kernels import DTYPES, Problem, assert_close, kernel_input, nan_buffer

dtypes = pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])


def draw(dtype, seed, epoch, rows, hidden_sizes, rates, capacity=None):
    """The kernel's masks of ``rows`` as one array per hidden layer (output layer of 2 units)."""
    sizes = [3, *hidden_sizes, 2]
    layers = naive.layer_table(sizes, [K.ACTIVATION_CODES["relu"]] * (len(sizes) - 2) + [0])
    capacity = len(rows) if capacity is None else capacity
    masks = np.full(capacity * sum(sizes[1:]), np.nan, dtype=dtype)
    K.dropout.draw_masks(
        np.array([seed, epoch], dtype=np.uint64),
        np.array([dropout_threshold(rate) for rate in rates], dtype=np.uint64),
        np.array([1.0 / (1.0 - rate) for rate in rates], dtype=dtype),
        layers, np.asarray(rows, dtype=np.int64), masks, capacity,
    )
    blocks, start = [], 0
    for units in hidden_sizes:
        blocks.append(masks[start : start + len(rows) * units].reshape(len(rows), units))
        start += capacity * units
    assert np.isnan(masks[start:]).all()  # the output layer's block is not written
    return blocks


@dtypes
def test_masks_are_the_counter_hash_of_seed_epoch_row_and_unit(dtype):
    rows = [0, 7, 3, 123456789012, 7]
    hidden, rates = (5, 3), (0.25, 0.6)
    got = draw(dtype, 2**40 + 17, 12345, rows, hidden, rates, capacity=8)
    want = naive.dropout_masks(2**40 + 17, 12345, rows, hidden, rates, dtype)
    for g, w in zip(got, want):
        assert g.dtype == dtype
        assert_array_equal(g, w)
    assert_array_equal(got[0][1], got[0][4])  # the same row gets the same mask


def test_masks_depend_on_the_row_not_its_position_and_change_with_epoch_and_seed():
    hidden, rates = (64,), (0.5,)
    forward = draw(np.float64, 1, 0, [10, 20, 30], hidden, rates)[0]
    backward = draw(np.float64, 1, 0, [30, 20, 10], hidden, rates)[0]
    assert_array_equal(forward, backward[::-1])
    other_epoch = draw(np.float64, 1, 1, [10, 20, 30], hidden, rates)[0]
    other_seed = draw(np.float64, 2, 0, [10, 20, 30], hidden, rates)[0]
    assert (forward != other_epoch).mean() > 0.3
    assert (forward != other_seed).mean() > 0.3


@pytest.mark.parametrize("rate", [0.05, 0.5, 0.9])
def test_masks_drop_at_the_rate_and_scale_the_rest(rate):
    n_rows, units = 400, 250
    mask = draw(np.float64, 3, 5, np.arange(n_rows), (units,), (rate,))[0]
    scale = 1.0 / (1.0 - rate)
    assert set(np.unique(mask)) <= {0.0, scale}
    n = mask.size
    dropped = (mask == 0).sum()
    assert abs(dropped - rate * n) < 5 * np.sqrt(n * rate * (1 - rate))
    # neighbouring units and rows are not correlated
    kept = (mask != 0).astype(float)
    for a, b in [(kept[:, :-1], kept[:, 1:]), (kept[:-1], kept[1:])]:
        assert abs(np.corrcoef(a.ravel(), b.ravel())[0, 1]) < 5 / np.sqrt(a.size)


def test_a_rate_of_zero_keeps_every_unit_at_scale_one():
    masks = draw(np.float32, 9, 9, np.arange(50), (4, 6), (0.0, 0.5))
    assert_array_equal(masks[0], np.ones((50, 4), dtype=np.float32))
    assert (masks[1] == 0).any()


def masked_problem(rng, dtype, hidden):
    p = Problem(rng, dtype, hidden, "log_loss", "softmax", weighted=True)
    rows = np.arange(p.X.shape[0])
    masks = naive.dropout_masks(11, 4, rows, p.sizes[1:-1], (0.3, 0.5), dtype)
    return p, masks


def kernel_masked_gradient(p, masks, alpha, params=None):
    """``K.batch_loss_and_gradient_recording`` of every row with the hidden-layer ``masks`` held fixed."""
    n_rows = p.X.shape[0]
    Xk, csr = kernel_input(p.X, False)
    units = p.units()
    mask_buffer = nan_buffer(n_rows * units, p.dtype)
    start = 0
    for mask in masks:
        mask_buffer[start : start + mask.size] = mask.ravel()
        start += mask.size
    grads = nan_buffer(p.n_params, p.dtype)
    loss = K.batch_loss_and_gradient_recording[p.codes](
        Xk, csr, np.arange(n_rows, dtype=np.int64), p.Y, p.sample_weight,
        p.params if params is None else params, p.layers,
        nan_buffer(n_rows * units, p.dtype), nan_buffer(n_rows * units, p.dtype), p.slopes(n_rows), n_rows, grads,
        float(alpha), p.loss_code, 1.0, p.eps, p.huber_delta, True, None, None,
        (mask_buffer, nan_buffer(n_rows * units, p.dtype)),
    )
    return loss, grads


@dtypes
@pytest.mark.parametrize("hidden", [["tanh", "relu"], ["logistic", "identity"]], ids=["tanh-relu", "logistic-identity"])
def test_masked_gradient_matches_the_reference(rng, dtype, hidden):
    p, masks = masked_problem(rng, dtype, hidden)
    loss, grads = kernel_masked_gradient(p, masks, alpha=0.2)
    want_loss, want_grads = naive.loss_and_gradient(
        p.X, p.Y, p.sample_weight, p.params, p.sizes, p.activations, 0.2, p.loss, 1.0, p.eps, True, masks=masks,
    )
    assert_close(loss, want_loss, dtype)
    assert_close(grads, want_grads, dtype)
    # the masks matter: without them the gradient is another one
    _, unmasked = naive.loss_and_gradient(
        p.X, p.Y, p.sample_weight, p.params, p.sizes, p.activations, 0.2, p.loss, 1.0, p.eps, True,
    )
    assert np.abs(unmasked - want_grads).max() > 1e-3


@pytest.mark.parametrize("hidden", [["tanh", "logistic"], ["identity", "tanh"]], ids=["tanh-logistic", "identity-tanh"])
def test_masked_gradient_matches_finite_differences(rng, hidden):
    p, masks = masked_problem(rng, np.float64, hidden)
    _, grads = kernel_masked_gradient(p, masks, alpha=0.1)
    h = 1e-4
    worst = 0.0
    for k in range(p.n_params):
        values = []
        for step in (h, -h, 2 * h, -2 * h):
            shifted = p.params.copy()
            shifted[k] += step
            values.append(kernel_masked_gradient(p, masks, 0.1, shifted)[0])
        numeric = (8 * (values[0] - values[1]) - (values[2] - values[3])) / (12 * h)
        worst = max(worst, abs(grads[k] - numeric) / max(abs(grads[k]) + abs(numeric), 1e-12))
    assert worst < 1e-6

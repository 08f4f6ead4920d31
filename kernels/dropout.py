"""Dropout masks from a counter-based generator: each mask value is a hash of where it is used.

Inverted dropout multiplies each hidden unit's activation in training by
``m = 1 / (1 - p)`` with probability ``1 - p`` and by 0 otherwise. Here the
mask value of unit ``j`` (numbered across the hidden layers) for input row
``r`` in an epoch is decided by the 64-bit number

    u = mix(key + (r * n_hidden + j + 1) * GAMMA)

(SplitMix64's output function on its state at that counter), kept when
``u >= threshold``, where ``threshold = floor(p * 2^64)`` and ``key`` is a
hash of the fit's seed and an epoch number. A value depends on nothing but
(seed, epoch, row, unit): not on which thread computes it, nor on how the
epoch is cut into mini-batches and parts.
"""

import numpy as np

from ._jit import jit
from .network import FAN_OUT

# SplitMix64's increment (2^64 over the golden ratio) and its mixing constants.
GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)
_SHIFT_1 = np.uint64(30)
_SHIFT_2 = np.uint64(27)
_SHIFT_3 = np.uint64(31)
_ONE = np.uint64(1)


@jit(internal=True)
def mix(z):
    """SplitMix64's output function: a bijection of uint64 whose output bits all depend on every input bit."""
    z = (z ^ (z >> _SHIFT_1)) * _MIX_1
    z = (z ^ (z >> _SHIFT_2)) * _MIX_2
    return z ^ (z >> _SHIFT_3)


@jit(internal=True)
def draw_masks(seed_epoch, thresholds, scales, layers, rows, masks, capacity):
    """Mask values of the rows ``rows`` for every hidden layer, in the layout of the activations.

    Parameters
    ----------
    seed_epoch : ndarray of shape (2,) of uint64
        The fit's seed and the epoch's number (any number that differs
        between the epochs of a fit).
    thresholds : ndarray of shape (n_layers - 1,) of uint64
        ``floor(p * 2^64)`` of each hidden layer's dropout rate p.
    scales : ndarray of shape (n_layers - 1,)
        ``1 / (1 - p)`` of each hidden layer, in the masks' dtype.
    layers : ndarray of shape (n_layers, 5)
        Layer table.
    rows : ndarray of shape (n_rows,) of int64
        Input row numbers of the part.
    masks : ndarray
        Flat buffer of ``capacity * sum(fan_out)`` entries laid out like the
        activations; the hidden layers' blocks receive 0 or the scale.
    capacity : int
        Rows per layer block.
    """
    n_rows = rows.shape[0]
    n_hidden = 0
    for l in range(layers.shape[0] - 1):
        n_hidden += layers[l, FAN_OUT]
    base = mix(mix(seed_epoch[0] + GAMMA) + seed_epoch[1] * GAMMA)
    zero = masks.dtype.type(0)
    block_start = 0
    unit_start = 0
    for l in range(layers.shape[0] - 1):
        n_units = layers[l, FAN_OUT]
        threshold = thresholds[l]
        scale = scales[l]
        for k in range(n_rows):
            counter = np.uint64(rows[k]) * np.uint64(n_hidden) + np.uint64(unit_start) + _ONE
            state = base + counter * GAMMA
            mask_row = masks[block_start + k * n_units : block_start + (k + 1) * n_units]
            for j in range(n_units):
                u = mix(state + np.uint64(j) * GAMMA)
                mask_row[j] = scale if u >= threshold else zero
        block_start += capacity * n_units
        unit_start += n_units

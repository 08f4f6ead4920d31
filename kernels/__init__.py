"""fastbp's compiled core: pure Numba kernels on flat arrays (installed as ``fastbp.kernels``).

Nothing here validates user input or imports from ``fastbp``; the layers
above check everything once and pass arrays of one dtype down.
"""

from ._jit import CACHE_DIR, SOURCES_HASH
from ._sync import signal, wait_while_equal
from .activations import ACTIVATION_CODES, add_bias_and_activate, multiply_by_derivative
from .losses import CANONICAL_OUTPUT, LOSS_CODES, output_delta, weighted_loss_sum
from .network import (
    backward,
    backward_recording,
    finalize_gradient,
    forward,
    forward_recording,
    squared_coef_norm,
)
from .optimizers import adam_step, sgd_step
from .prediction import predict
from .training import (
    N_HYPER,
    batch_loss_and_gradient_recording,
    finish_loss_and_gradient,
    loss_and_gradient,
    raw_loss_and_gradient,
    train_epoch,
    train_epoch_one_row,
)

__all__ = [
    "ACTIVATION_CODES",
    "CACHE_DIR",
    "CANONICAL_OUTPUT",
    "LOSS_CODES",
    "N_HYPER",
    "SOURCES_HASH",
    "adam_step",
    "add_bias_and_activate",
    "backward",
    "backward_recording",
    "batch_loss_and_gradient_recording",
    "finalize_gradient",
    "finish_loss_and_gradient",
    "forward",
    "forward_recording",
    "loss_and_gradient",
    "multiply_by_derivative",
    "output_delta",
    "predict",
    "raw_loss_and_gradient",
    "signal",
    "sgd_step",
    "squared_coef_norm",
    "train_epoch",
    "train_epoch_one_row",
    "wait_while_equal",
    "weighted_loss_sum",
]

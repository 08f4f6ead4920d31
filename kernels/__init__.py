"""fastbp's compiled core: pure Numba kernels on flat arrays (installed as ``fastbp.kernels``).

Nothing here validates user input or imports from ``fastbp``; the layers
above check everything once and pass arrays of one dtype down. The kernels
that run a network are compiled per combination of its activation and loss
codes: ``kernels.train_epoch[network_codes(layers, loss_code)]`` (see
:mod:`.training`).
"""

from ._jit import CACHE_DIR, SOURCES_HASH
from ._sync import signal, wait_while_equal
from .activations import (
    ACTIVATION_CODES,
    LEAKY_RELU_SLOPE,
    SLOPE_CODES,
    add_bias_and_activate,
    multiply_by_derivative,
)
from .losses import CANONICAL_OUTPUT, LOSS_CODES, REGRESSION_LOSSES, output_delta, weighted_loss_sum
from .network import (
    backward,
    backward_recording,
    finalize_gradient,
    forward,
    forward_recording,
    network_codes,
    slope_units,
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
    "LEAKY_RELU_SLOPE",
    "LOSS_CODES",
    "N_HYPER",
    "REGRESSION_LOSSES",
    "SLOPE_CODES",
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
    "network_codes",
    "output_delta",
    "predict",
    "raw_loss_and_gradient",
    "signal",
    "sgd_step",
    "slope_units",
    "squared_coef_norm",
    "train_epoch",
    "train_epoch_one_row",
    "wait_while_equal",
    "weighted_loss_sum",
]

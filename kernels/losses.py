"""Output losses and the error signal they send back through the output layer.

For a batch with sample weights ``s_i``, ``n_outputs`` outputs and residuals
``r_ij = a_ij - y_ij``, the objective's data term is

    J = (1 / sum_i s_i) * sum_i s_i * loss_i

with the per-row losses

    squared         sum_j 1/2 r^2
    poisson         sum_j y log(y / a) - y + a          (half Poisson deviance)
    log             sum_j -y log(a)                     (softmax output)
    binary_log      sum_j -y log(a) - (1 - y) log(1 - a)   (logistic output)
    absolute_error  (1 / n_outputs) sum_j |r|
    huber           (1 / n_outputs) sum_j (1/2 r^2 if |r| < delta else delta (|r| - delta / 2))

where log-loss probabilities are clipped to [eps, 1 - eps] as scikit-learn
does. The first four sum over the outputs, as scikit-learn's gradients do;
absolute error and huber average over them, so that with unit weights J is
PyTorch's ``L1Loss()`` / ``HuberLoss(delta)`` (mean over every element).

The output error is ``delta = s_i * d loss_i / dZ``. For the canonical pairs
(identity + squared, exp + poisson, softmax + log, logistic + binary_log)
it is ``s_i r``; for absolute error and huber after an identity output it is
``s_i sign(r) / n_outputs`` (``sign(0) = 0``: the subgradient PyTorch's
``L1Loss`` takes at 0) and ``s_i clip(r, -delta, delta) / n_outputs``. The
regression losses (squared, absolute error, huber) may also follow any
elementwise output activation (the textbook network uses a logistic
output); the error is then multiplied by ``g'(Z)``.

As for activations, :func:`weighted_loss`, :func:`output_error` and
:func:`output_derivative` compile only the loss (and output activation)
given as compile-time constants, while :func:`weighted_loss_sum` and
:func:`output_delta` branch at run time.
"""

import numpy as np
from numba.core import types

from ._jit import compile_time_dispatch, jit
from .activations import (
    DERIVATIVE,
    EXP,
    IDENTITY,
    LOGISTIC,
    SOFTMAX,
    identity_derivative,
    multiply_by_derivative,
)

SQUARED = 0
POISSON = 1
LOG = 2
BINARY_LOG = 3
ABSOLUTE = 4
HUBER = 5

LOSS_CODES = {
    "squared_error": SQUARED,
    "poisson": POISSON,
    "log_loss": LOG,
    "binary_log_loss": BINARY_LOG,
    "absolute_error": ABSOLUTE,
    "huber": HUBER,
}

CANONICAL_OUTPUT = {
    SQUARED: IDENTITY,
    POISSON: EXP,
    LOG: SOFTMAX,
    BINARY_LOG: LOGISTIC,
    ABSOLUTE: IDENTITY,
    HUBER: IDENTITY,
}

# Losses that may follow any elementwise output activation.
REGRESSION_LOSSES = frozenset({SQUARED, ABSOLUTE, HUBER})


# ---------------------------------------------------------------------------
# Each loss: <loss>_sum(A, Y, sample_weight, eps, huber_delta) returns
# sum_i s_i loss_i in float64; <loss>_error(A, Y, sample_weight, huber_delta,
# delta) writes s_i d loss_i / dA into delta. A, Y and delta are (n_rows,
# n_outputs) arrays, sample_weight has n_rows entries.


@jit(internal=True)
def squared_sum(A, Y, sample_weight, eps, huber_delta):
    total = 0.0
    for i in range(A.shape[0]):
        row = 0.0
        for j in range(A.shape[1]):
            row += (np.float64(Y[i, j]) - np.float64(A[i, j])) ** 2
        row *= 0.5
        total += sample_weight[i] * row
    return total


@jit(internal=True)
def poisson_sum(A, Y, sample_weight, eps, huber_delta):
    total = 0.0
    for i in range(A.shape[0]):
        row = 0.0
        for j in range(A.shape[1]):
            a = np.float64(A[i, j])
            y = np.float64(Y[i, j])
            row += a - y
            if y != 0:
                row += y * np.log(y / a)
        total += sample_weight[i] * row
    return total


@jit(internal=True)
def log_sum(A, Y, sample_weight, eps, huber_delta):
    total = 0.0
    for i in range(A.shape[0]):
        row = 0.0
        for j in range(A.shape[1]):
            y = np.float64(Y[i, j])
            p = min(max(np.float64(A[i, j]), eps), 1 - eps)
            if y != 0:
                row -= y * np.log(p)
        total += sample_weight[i] * row
    return total


@jit(internal=True)
def binary_log_sum(A, Y, sample_weight, eps, huber_delta):
    total = 0.0
    for i in range(A.shape[0]):
        row = 0.0
        for j in range(A.shape[1]):
            y = np.float64(Y[i, j])
            p = min(max(np.float64(A[i, j]), eps), 1 - eps)
            if y != 0:
                row -= y * np.log(p)
            if y != 1:
                row -= (1 - y) * np.log(1 - p)
        total += sample_weight[i] * row
    return total


@jit(internal=True)
def canonical_error(A, Y, sample_weight, huber_delta, delta):
    """``s_i (a - y)``: the output error of the canonical pairs."""
    for i in range(A.shape[0]):
        s = sample_weight[i]
        for j in range(A.shape[1]):
            delta[i, j] = (A[i, j] - Y[i, j]) * s


@jit(internal=True)
def absolute_sum(A, Y, sample_weight, eps, huber_delta):
    total = 0.0
    for i in range(A.shape[0]):
        row = 0.0
        for j in range(A.shape[1]):
            row += abs(np.float64(A[i, j]) - np.float64(Y[i, j]))
        total += sample_weight[i] * (row / A.shape[1])
    return total


@jit(internal=True)
def absolute_error(A, Y, sample_weight, huber_delta, delta):
    one = A.dtype.type(1)
    for i in range(A.shape[0]):
        scale = sample_weight[i] / A.dtype.type(A.shape[1])
        for j in range(A.shape[1]):
            r = A[i, j] - Y[i, j]
            sign = one if r > 0 else (-one if r < 0 else r)  # 0 at 0; NaN stays NaN
            delta[i, j] = sign * scale


@jit(internal=True)
def huber_sum(A, Y, sample_weight, eps, huber_delta):
    total = 0.0
    for i in range(A.shape[0]):
        row = 0.0
        for j in range(A.shape[1]):
            r = abs(np.float64(A[i, j]) - np.float64(Y[i, j]))
            row += 0.5 * r * r if r < huber_delta else huber_delta * (r - 0.5 * huber_delta)
        total += sample_weight[i] * (row / A.shape[1])
    return total


@jit(internal=True)
def huber_error(A, Y, sample_weight, huber_delta, delta):
    bound = A.dtype.type(huber_delta)
    for i in range(A.shape[0]):
        scale = sample_weight[i] / A.dtype.type(A.shape[1])
        for j in range(A.shape[1]):
            r = A[i, j] - Y[i, j]
            clipped = -bound if r < -bound else (bound if r > bound else r)  # NaN stays NaN
            delta[i, j] = clipped * scale


LOSS_SUM = {
    SQUARED: squared_sum,
    POISSON: poisson_sum,
    LOG: log_sum,
    BINARY_LOG: binary_log_sum,
    ABSOLUTE: absolute_sum,
    HUBER: huber_sum,
}
LOSS_ERROR = {
    SQUARED: canonical_error,
    POISSON: canonical_error,
    LOG: canonical_error,
    BINARY_LOG: canonical_error,
    ABSOLUTE: absolute_error,
    HUBER: huber_error,
}


# ---------------------------------------------------------------------------
# Loss chosen at run time


@jit(internal=True)
def weighted_loss_sum(A, Y, sample_weight, loss_code, eps, huber_delta):
    """Return ``sum_i s_i * loss_i`` in float64, for the loss ``loss_code`` known at run time.

    Parameters
    ----------
    A : ndarray of shape (n_rows, n_outputs)
        Network outputs.
    Y : ndarray of shape (n_rows, n_outputs)
        Targets (indicator rows for classification).
    sample_weight : ndarray of shape (n_rows,)
        Weight of each row.
    loss_code : int
        Loss code (see ``LOSS_CODES``).
    eps : float
        Clipping bound of log-loss probabilities (machine epsilon of A's dtype).
    huber_delta : float
        Huber's threshold ``delta`` (used by huber only).

    Returns
    -------
    total : float
        The weighted sum of per-row losses.
    """
    if loss_code == SQUARED:
        return squared_sum(A, Y, sample_weight, eps, huber_delta)
    if loss_code == POISSON:
        return poisson_sum(A, Y, sample_weight, eps, huber_delta)
    if loss_code == LOG:
        return log_sum(A, Y, sample_weight, eps, huber_delta)
    if loss_code == BINARY_LOG:
        return binary_log_sum(A, Y, sample_weight, eps, huber_delta)
    if loss_code == ABSOLUTE:
        return absolute_sum(A, Y, sample_weight, eps, huber_delta)
    return huber_sum(A, Y, sample_weight, eps, huber_delta)


@jit(internal=True)
def loss_gradient(A, Y, sample_weight, loss_code, huber_delta, delta):
    """Write ``s_i * d loss_i / dA`` into ``delta``, for the loss ``loss_code`` known at run time."""
    if loss_code == ABSOLUTE:
        absolute_error(A, Y, sample_weight, huber_delta, delta)
    elif loss_code == HUBER:
        huber_error(A, Y, sample_weight, huber_delta, delta)
    else:
        canonical_error(A, Y, sample_weight, huber_delta, delta)


@jit(internal=True)
def output_derivative_at_run_time(A, S, delta, out_code, loss_code):
    """Multiply ``delta`` by ``g'(Z)`` of the output unless ``out_code`` is ``loss_code``'s canonical output."""
    canonical = (
        (loss_code == SQUARED and out_code == IDENTITY)
        or (loss_code == POISSON and out_code == EXP)
        or (loss_code == LOG and out_code == SOFTMAX)
        or (loss_code == BINARY_LOG and out_code == LOGISTIC)
        or (loss_code == ABSOLUTE and out_code == IDENTITY)
        or (loss_code == HUBER and out_code == IDENTITY)
    )
    if not canonical:
        multiply_by_derivative(A, delta, out_code, S)


@jit(internal=True)
def output_delta(A, Y, sample_weight, out_code, loss_code, huber_delta, delta):
    """Write the output error ``s_i * d loss_i / dZ`` into ``delta``, for codes known at run time.

    Parameters
    ----------
    A : ndarray of shape (n_rows, n_outputs)
        Network outputs.
    Y : ndarray of shape (n_rows, n_outputs)
        Targets.
    sample_weight : ndarray of shape (n_rows,)
        Weight of each row.
    out_code : int
        Output activation code.
    loss_code : int
        Loss code; with a non-canonical output activation only the
        regression losses are defined.
    huber_delta : float
        Huber's threshold ``delta`` (used by huber only).
    delta : ndarray of shape (n_rows, n_outputs)
        Output buffer.
    """
    loss_gradient(A, Y, sample_weight, loss_code, huber_delta, delta)
    output_derivative_at_run_time(A, None, delta, out_code, loss_code)


# ---------------------------------------------------------------------------
# Loss chosen when the kernel is compiled: with codes that are compile-time
# constants (literal arguments) these compile that loss only; otherwise the
# run-time branches. The output error is ``output_error`` then
# ``output_derivative``.


@compile_time_dispatch
def weighted_loss(A, Y, sample_weight, loss_code, eps, huber_delta):
    """:func:`weighted_loss_sum` in kernels, compiling only the loss ``loss_code``."""
    if isinstance(loss_code, types.IntegerLiteral):
        return LOSS_SUM[loss_code.literal_value], (0, 1, 2, 4, 5)
    return weighted_loss_sum, (0, 1, 2, 3, 4, 5)


@compile_time_dispatch
def output_error(A, Y, sample_weight, loss_code, huber_delta, delta):
    """:func:`loss_gradient` in kernels, compiling only the loss ``loss_code``."""
    if isinstance(loss_code, types.IntegerLiteral):
        return LOSS_ERROR[loss_code.literal_value], (0, 1, 2, 4, 5)
    return loss_gradient, (0, 1, 2, 3, 4, 5)


@compile_time_dispatch
def output_derivative(A, S, delta, out_code, loss_code):
    """Multiply ``delta`` by the output's ``g'(Z)`` unless the pair is canonical, compiling only that."""
    if isinstance(out_code, types.IntegerLiteral) and isinstance(loss_code, types.IntegerLiteral):
        if CANONICAL_OUTPUT[loss_code.literal_value] == out_code.literal_value:
            return identity_derivative, (0, 1, 2)
        return DERIVATIVE[out_code.literal_value], (0, 1, 2)
    return output_derivative_at_run_time, (0, 1, 2, 3, 4)

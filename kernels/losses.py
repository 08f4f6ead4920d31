"""Output losses and the error signal they send back through the output layer.

For a batch with sample weights ``s_i`` the objective's data term is

    J = (1 / sum_i s_i) * sum_i s_i * sum_j loss(y_ij, a_ij)

with the per-element losses

    squared      1/2 (a - y)^2
    poisson      y log(y / a) - y + a          (half Poisson deviance)
    log          -y log(a)                     (softmax output)
    binary_log   -y log(a) - (1 - y) log(1 - a)   (logistic output)

where log-loss probabilities are clipped to [eps, 1 - eps] as scikit-learn
does. The output error is ``delta = s_i * dJ/dZ``; for the canonical pairs
(identity + squared, exp + poisson, softmax + log, logistic + binary_log) it
is simply ``s_i (a - y)``. Squared error may also follow any elementwise
output activation (the textbook network uses a logistic output), then
``delta = s_i (a - y) g'(Z)``.
"""

import numpy as np

from ._jit import jit
from .activations import EXP, IDENTITY, LOGISTIC, SOFTMAX, multiply_by_derivative

SQUARED = 0
POISSON = 1
LOG = 2
BINARY_LOG = 3

LOSS_CODES = {
    "squared_error": SQUARED,
    "poisson": POISSON,
    "log_loss": LOG,
    "binary_log_loss": BINARY_LOG,
}

CANONICAL_OUTPUT = {
    SQUARED: IDENTITY,
    POISSON: EXP,
    LOG: SOFTMAX,
    BINARY_LOG: LOGISTIC,
}


@jit(internal=True)
def weighted_loss_sum(A, Y, sample_weight, loss_code, eps):
    """Return ``sum_i s_i * sum_j loss(y_ij, a_ij)`` in float64.

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

    Returns
    -------
    total : float
        The weighted sum of per-row losses.
    """
    n_rows, n_outputs = A.shape
    total = 0.0
    for i in range(n_rows):
        row = 0.0
        for j in range(n_outputs):
            a = np.float64(A[i, j])
            y = np.float64(Y[i, j])
            if loss_code == SQUARED:
                row += (y - a) ** 2
            elif loss_code == POISSON:
                row += a - y
                if y != 0:
                    row += y * np.log(y / a)
            else:
                p = min(max(a, eps), 1 - eps)
                if y != 0:
                    row -= y * np.log(p)
                if loss_code == BINARY_LOG and y != 1:
                    row -= (1 - y) * np.log(1 - p)
        if loss_code == SQUARED:
            row *= 0.5
        total += sample_weight[i] * row
    return total


@jit(internal=True)
def output_delta(A, Y, sample_weight, out_code, loss_code, delta):
    """Write the output error ``s_i * dJ/dZ`` into ``delta``.

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
        Loss code; with a non-canonical output activation only squared error
        is defined.
    delta : ndarray of shape (n_rows, n_outputs)
        Output buffer.
    """
    n_rows, n_outputs = A.shape
    for i in range(n_rows):
        s = sample_weight[i]
        for j in range(n_outputs):
            delta[i, j] = (A[i, j] - Y[i, j]) * s
    canonical = (
        (loss_code == SQUARED and out_code == IDENTITY)
        or (loss_code == POISSON and out_code == EXP)
        or (loss_code == LOG and out_code == SOFTMAX)
        or (loss_code == BINARY_LOG and out_code == LOGISTIC)
    )
    if not canonical:
        multiply_by_derivative(A, delta, out_code)

"""Activation functions and their derivatives, side by side, as in-place kernels.

Each activation is named by an integer code so that one compiled kernel serves
every network: the code is branched on outside the inner loops, and every
branch stays a simple loop the compiler can vectorise. Derivatives are written
in terms of the activation's OUTPUT ``A = g(Z)``, as scikit-learn does:

    identity  g'(Z) = 1
    logistic  g'(Z) = A (1 - A)
    tanh      g'(Z) = 1 - A^2
    relu      g'(Z) = 1 if A > 0 else 0
    exp       g'(Z) = A
"""

import numpy as np

from ._jit import jit

IDENTITY = 0
LOGISTIC = 1
TANH = 2
RELU = 3
EXP = 4
SOFTMAX = 5

ACTIVATION_CODES = {
    "identity": IDENTITY,
    "logistic": LOGISTIC,
    "tanh": TANH,
    "relu": RELU,
    "exp": EXP,
    "softmax": SOFTMAX,
}


@jit(internal=True)
def add_bias_and_activate(Z, bias, code):
    """Replace ``Z`` by ``g(Z + bias)`` in place, row by row.

    Parameters
    ----------
    Z : ndarray of shape (n_rows, n_units)
        Pre-activations without bias (the product ``A_prev @ W``).
    bias : ndarray of shape (n_units,)
        The layer's intercepts.
    code : int
        Activation code (see ``ACTIVATION_CODES``).
    """
    n_rows, n_units = Z.shape
    # constants in Z's dtype: an integer or float64 literal would turn float32
    # arithmetic into float64 (Numba does not follow NEP 50)
    zero = Z.dtype.type(0)
    one = Z.dtype.type(1)
    if code == IDENTITY:
        for i in range(n_rows):
            for j in range(n_units):
                Z[i, j] = Z[i, j] + bias[j]
    elif code == RELU:
        for i in range(n_rows):
            for j in range(n_units):
                z = Z[i, j] + bias[j]
                Z[i, j] = zero if z <= 0 else z  # keeps NaN, as np.maximum(z, 0) does
    elif code == LOGISTIC:
        for i in range(n_rows):
            for j in range(n_units):
                Z[i, j] = one / (one + np.exp(-(Z[i, j] + bias[j])))
    elif code == TANH:
        for i in range(n_rows):
            for j in range(n_units):
                Z[i, j] = np.tanh(Z[i, j] + bias[j])
    elif code == EXP:
        for i in range(n_rows):
            for j in range(n_units):
                Z[i, j] = np.exp(Z[i, j] + bias[j])
    else:  # SOFTMAX
        for i in range(n_rows):
            for j in range(n_units):
                Z[i, j] = Z[i, j] + bias[j]
            softmax_row(Z[i])


@jit(internal=True)
def softmax_row(z):
    """Replace the 1-D ``z`` by its softmax, shifted by its maximum as scikit-learn does."""
    n_units = z.shape[0]
    row_max = z[0]
    for j in range(1, n_units):
        if z[j] > row_max:
            row_max = z[j]
    total = z.dtype.type(0)
    for j in range(n_units):
        z[j] = np.exp(z[j] - row_max)
        total += z[j]
    for j in range(n_units):
        z[j] = z[j] / total


@jit(internal=True)
def multiply_by_derivative(A, delta, code):
    """Multiply ``delta`` in place by ``g'(Z)``, written in terms of ``A = g(Z)``.

    Parameters
    ----------
    A : ndarray of shape (n_rows, n_units)
        The activation's output saved by the forward pass.
    delta : ndarray of shape (n_rows, n_units)
        The back-propagated error ``dJ/dA``; becomes ``dJ/dZ``.
    code : int
        Activation code of an elementwise activation (not softmax).
    """
    n_rows, n_units = A.shape
    zero = A.dtype.type(0)
    one = A.dtype.type(1)
    if code == RELU:
        for i in range(n_rows):
            for j in range(n_units):
                delta[i, j] = zero if A[i, j] == 0 else delta[i, j]
    elif code == LOGISTIC:
        for i in range(n_rows):
            for j in range(n_units):
                a = A[i, j]
                delta[i, j] = delta[i, j] * a * (one - a)
    elif code == TANH:
        for i in range(n_rows):
            for j in range(n_units):
                a = A[i, j]
                delta[i, j] = delta[i, j] * (one - a * a)
    elif code == EXP:
        for i in range(n_rows):
            for j in range(n_units):
                delta[i, j] = delta[i, j] * A[i, j]
    # IDENTITY: nothing to do


_FLOAT32_EPS = float(np.finfo(np.float32).eps)
_FLOAT64_EPS = float(np.finfo(np.float64).eps)


@jit(internal=True)
def first_largest_softmax(logits):
    """Index of the first largest output of the softmax of one row of ``logits``.

    The index ``np.argmax`` gives of :func:`softmax_row` of ``logits``.
    When the largest logit is finite and every other one is below it by
    more than ``4096 eps``, each other output ``exp(z - max) / total`` is
    below the largest one, ``1 / total``, by that much relatively, far
    beyond a rounding error: the index is then that of the first largest
    logit, found without any ``exp``. Otherwise (near or exact ties, values
    that are not finite) ``logits`` is replaced by its softmax, and its
    first largest output, or first NaN, is taken. Allocates nothing.

    Parameters
    ----------
    logits : ndarray of shape (n_units,)
        The output layer's inputs of one row, bias included (a work row:
        it may be overwritten).

    Returns
    -------
    index : int
    """
    n_units = logits.shape[0]
    best = 0
    largest = logits[0]
    for j in range(1, n_units):
        if logits[j] > largest:
            best = j
            largest = logits[j]
    # 4096 eps of the dtype (np.finfo in a kernel adds ~0.1 s to its compile)
    margin = logits.dtype.type(-4096 * (_FLOAT32_EPS if logits.itemsize == 4 else _FLOAT64_EPS))
    n_close = 0  # the largest itself, and any other within the margin or NaN
    for j in range(n_units):
        n_close += not (logits[j] - largest < margin)
    if n_close == 1 and np.isfinite(largest):
        return best
    softmax_row(logits)
    best = 0
    for j in range(n_units):
        if np.isnan(logits[j]):
            return j
        if logits[j] > logits[best]:
            best = j
    return best

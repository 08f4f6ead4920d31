"""Activation functions and their derivatives, side by side, as in-place kernels.

Each activation is named by an integer code. A kernel that knows its codes
when it is compiled calls :func:`activate` and :func:`derive` with the code
as a compile-time constant (a literal argument): only that activation's
functions are compiled into it. :func:`add_bias_and_activate` and
:func:`multiply_by_derivative` branch on a code known at run time instead
(networks whose hidden layers differ, calls from Python); the code is
branched on outside the inner loops, and every branch stays a simple loop.

Derivatives are written in terms of the activation's OUTPUT ``A = g(Z)``
where it determines them, as scikit-learn does, so that the training
kernels keep no pre-activations:

    identity    g(Z) = Z                         g'(Z) = 1
    logistic    g(Z) = 1 / (1 + e^-Z)            g'(Z) = A (1 - A)
    tanh        g(Z) = tanh(Z)                   g'(Z) = 1 - A^2
    relu        g(Z) = max(Z, 0)                 g'(Z) = 1 if A > 0 else 0
    exp         g(Z) = e^Z                       g'(Z) = A
    leaky_relu  g(Z) = Z if Z > 0 else 0.01 Z    g'(Z) = 1 if A > 0 else 0.01
    softplus    g(Z) = log(1 + e^Z)              g'(Z) = 1 / (1 + e^-Z) = 1 - e^-A

gelu and silu are not monotonic: their output does not determine ``Z``. The
forward pass of a training kernel writes their derivative into a SLOPES
buffer beside the activations (one block per gelu or silu layer only, see
:func:`keeps_slope`), computed from the same intermediate values, and the
backward pass multiplies by it:

    gelu        g(Z) = Z Phi(Z)                  g'(Z) = Phi(Z) + Z phi(Z)
    silu        g(Z) = Z / (1 + e^-Z)            g'(Z) = s (1 + Z (1 - s)),  s = 1 / (1 + e^-Z)

with ``Phi(Z) = (1 + erf(Z / sqrt(2))) / 2`` and ``phi(Z) = e^(-Z^2 / 2) / sqrt(2 pi)``
(the exact form of gelu, not its tanh approximation). softplus is
computed as ``max(Z, 0) + log1p(e^-|Z|)``, exact for every ``Z``. At 0 the
derivative of relu is 0 and that of leaky_relu 0.01, as in scikit-learn
and PyTorch. tanh is computed in line (:func:`tanh_float64`, rounded once
for float32), so that its loop vectorises; gelu, silu and softplus are
computed in float64 and rounded once for float32; other transcendental
functions call the C library.
"""

import math

import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

from ._jit import compile_time_dispatch, jit

IDENTITY = 0
LOGISTIC = 1
TANH = 2
RELU = 3
EXP = 4
SOFTMAX = 5
LEAKY_RELU = 6
GELU = 7
SILU = 8
SOFTPLUS = 9

ACTIVATION_CODES = {
    "identity": IDENTITY,
    "logistic": LOGISTIC,
    "tanh": TANH,
    "relu": RELU,
    "exp": EXP,
    "softmax": SOFTMAX,
    "leaky_relu": LEAKY_RELU,
    "gelu": GELU,
    "silu": SILU,
    "softplus": SOFTPLUS,
}

# Slope of leaky_relu for Z < 0 (PyTorch's default).
LEAKY_RELU_SLOPE = 0.01
_SQRT_HALF = 0.7071067811865476  # 1 / sqrt(2)
_INV_SQRT_2PI = 0.3989422804014327  # 1 / sqrt(2 pi)


# Activations whose derivative the forward pass of a training kernel keeps.
SLOPE_CODES = frozenset({GELU, SILU})


@jit(internal=True)
def keeps_slope(code):
    """Whether the forward pass of a training kernel keeps the derivative of activation ``code``."""
    return code == GELU or code == SILU


# ---------------------------------------------------------------------------
# Each activation: forward(Z, bias, S) replaces Z by g(Z + bias) (and, for gelu
# and silu, writes g'(Z + bias) into S unless S is None); derivative(A, S, delta)
# multiplies delta by g'(Z). A, S, Z and delta are (n_rows, n_units) arrays.
# Constants are made in the arrays' dtype: an integer or float64 literal would
# turn float32 arithmetic into float64 (Numba does not follow NEP 50).


@jit(internal=True)
def identity_forward(Z, bias, S):
    for i in range(Z.shape[0]):
        for j in range(Z.shape[1]):
            Z[i, j] = Z[i, j] + bias[j]


@jit(internal=True)
def identity_derivative(A, S, delta):
    pass


@jit(internal=True)
def logistic_forward(Z, bias, S):
    one = Z.dtype.type(1)
    for i in range(Z.shape[0]):
        for j in range(Z.shape[1]):
            Z[i, j] = one / (one + np.exp(-(Z[i, j] + bias[j])))


@jit(internal=True)
def logistic_derivative(A, S, delta):
    one = A.dtype.type(1)
    for i in range(A.shape[0]):
        for j in range(A.shape[1]):
            a = A[i, j]
            delta[i, j] = delta[i, j] * a * (one - a)


@jit(internal=True)
def tanh_forward(Z, bias, S):
    for i in range(Z.shape[0]):
        for j in range(Z.shape[1]):  # a float32 Z gets the float64 tanh rounded once
            Z[i, j] = tanh_float64(np.float64(Z[i, j] + bias[j]))


@jit(internal=True)
def tanh_derivative(A, S, delta):
    one = A.dtype.type(1)
    for i in range(A.shape[0]):
        for j in range(A.shape[1]):
            a = A[i, j]
            delta[i, j] = delta[i, j] * (one - a * a)


@jit(internal=True)
def relu_forward(Z, bias, S):
    zero = Z.dtype.type(0)
    for i in range(Z.shape[0]):
        for j in range(Z.shape[1]):
            z = Z[i, j] + bias[j]
            Z[i, j] = zero if z <= 0 else z  # keeps NaN, as np.maximum(z, 0) does


@jit(internal=True)
def relu_derivative(A, S, delta):
    zero = A.dtype.type(0)
    for i in range(A.shape[0]):
        for j in range(A.shape[1]):
            delta[i, j] = zero if A[i, j] == 0 else delta[i, j]


@jit(internal=True)
def exp_forward(Z, bias, S):
    for i in range(Z.shape[0]):
        for j in range(Z.shape[1]):
            Z[i, j] = np.exp(Z[i, j] + bias[j])


@jit(internal=True)
def exp_derivative(A, S, delta):
    for i in range(A.shape[0]):
        for j in range(A.shape[1]):
            delta[i, j] = delta[i, j] * A[i, j]


@jit(internal=True)
def softmax_forward(Z, bias, S):
    for i in range(Z.shape[0]):
        for j in range(Z.shape[1]):
            Z[i, j] = Z[i, j] + bias[j]
        softmax_row(Z[i])


@jit(internal=True)
def leaky_relu_forward(Z, bias, S):
    slope = Z.dtype.type(LEAKY_RELU_SLOPE)
    for i in range(Z.shape[0]):
        for j in range(Z.shape[1]):
            z = Z[i, j] + bias[j]
            Z[i, j] = z if z > 0 else slope * z  # NaN stays NaN


@jit(internal=True)
def leaky_relu_derivative(A, S, delta):
    # A has the sign of Z, so A > 0 exactly where Z > 0
    slope = A.dtype.type(LEAKY_RELU_SLOPE)
    for i in range(A.shape[0]):
        for j in range(A.shape[1]):
            delta[i, j] = delta[i, j] if A[i, j] > 0 else slope * delta[i, j]


@jit(internal=True)
def gelu_forward(Z, bias, S):
    cast = Z.dtype.type
    for i in range(Z.shape[0]):
        for j in range(Z.shape[1]):
            z = np.float64(Z[i, j] + bias[j])
            cdf = 0.5 * (1.0 + math.erf(z * _SQRT_HALF))
            Z[i, j] = cast(z * cdf)
            if S is not None:
                S[i, j] = cast(cdf + z * (_INV_SQRT_2PI * np.exp(-0.5 * z * z)))


@jit(internal=True)
def silu_forward(Z, bias, S):
    cast = Z.dtype.type
    for i in range(Z.shape[0]):
        for j in range(Z.shape[1]):
            z = np.float64(Z[i, j] + bias[j])
            denominator = 1.0 + np.exp(-z)
            Z[i, j] = cast(z / denominator)
            if S is not None:
                s = 1.0 / denominator
                S[i, j] = cast(s * (1.0 + z * (1.0 - s)))


@jit(internal=True)
def slope_derivative(A, S, delta):
    """Multiply by the derivative the forward pass kept in ``S`` (gelu, silu)."""
    if S is None:
        raise ValueError("gelu and silu need the slopes kept by their forward pass")
    for i in range(S.shape[0]):
        for j in range(S.shape[1]):
            delta[i, j] = delta[i, j] * S[i, j]


@jit(internal=True)
def softplus_forward(Z, bias, S):
    cast = Z.dtype.type
    for i in range(Z.shape[0]):
        for j in range(Z.shape[1]):
            z = np.float64(Z[i, j] + bias[j])
            Z[i, j] = cast((z if z > 0 else 0.0) + np.log1p(np.exp(-abs(z))))  # NaN stays NaN


@jit(internal=True)
def softplus_derivative(A, S, delta):
    cast = A.dtype.type
    for i in range(A.shape[0]):
        for j in range(A.shape[1]):
            # 1 / (1 + e^-Z) = 1 - e^-A, well conditioned in A
            delta[i, j] = cast(np.float64(delta[i, j]) * -np.expm1(-np.float64(A[i, j])))


# The forward and derivative of each code (softmax's derivative is never taken
# alone: it is only used with log loss, whose output error includes it).
FORWARD = {
    IDENTITY: identity_forward,
    LOGISTIC: logistic_forward,
    TANH: tanh_forward,
    RELU: relu_forward,
    EXP: exp_forward,
    SOFTMAX: softmax_forward,
    LEAKY_RELU: leaky_relu_forward,
    GELU: gelu_forward,
    SILU: silu_forward,
    SOFTPLUS: softplus_forward,
}
DERIVATIVE = {
    IDENTITY: identity_derivative,
    LOGISTIC: logistic_derivative,
    TANH: tanh_derivative,
    RELU: relu_derivative,
    EXP: exp_derivative,
    LEAKY_RELU: leaky_relu_derivative,
    GELU: slope_derivative,
    SILU: slope_derivative,
    SOFTPLUS: softplus_derivative,
}


# ---------------------------------------------------------------------------
# Activation chosen at run time


@jit(internal=True)
def add_bias_and_activate(Z, bias, code, S=None):
    """Replace ``Z`` by ``g(Z + bias)`` in place, for the activation ``code`` known at run time.

    Parameters
    ----------
    Z : ndarray of shape (n_rows, n_units)
        Pre-activations without bias (the product ``A_prev @ W``).
    bias : ndarray of shape (n_units,)
        The layer's intercepts.
    code : int
        Activation code (see ``ACTIVATION_CODES``).
    S : ndarray of shape (n_rows, n_units) or None, default=None
        Receives ``g'(Z + bias)`` for gelu and silu (see :func:`keeps_slope`).
    """
    if code == IDENTITY:
        identity_forward(Z, bias, S)
    elif code == RELU:
        relu_forward(Z, bias, S)
    elif code == LOGISTIC:
        logistic_forward(Z, bias, S)
    elif code == TANH:
        tanh_forward(Z, bias, S)
    elif code == EXP:
        exp_forward(Z, bias, S)
    elif code == SOFTMAX:
        softmax_forward(Z, bias, S)
    elif code == LEAKY_RELU:
        leaky_relu_forward(Z, bias, S)
    elif code == GELU:
        gelu_forward(Z, bias, S)
    elif code == SILU:
        silu_forward(Z, bias, S)
    else:  # SOFTPLUS
        softplus_forward(Z, bias, S)


@jit(internal=True)
def multiply_by_derivative(A, delta, code, S=None):
    """Multiply ``delta`` in place by ``g'(Z)`` for the activation ``code`` known at run time.

    Parameters
    ----------
    A : ndarray of shape (n_rows, n_units)
        The activation's output saved by the forward pass.
    delta : ndarray of shape (n_rows, n_units)
        The back-propagated error ``dJ/dA``; becomes ``dJ/dZ``.
    code : int
        Activation code of an elementwise activation (not softmax).
    S : ndarray of shape (n_rows, n_units) or None, default=None
        The derivative kept by the forward pass; required for gelu and silu.
    """
    if code == RELU:
        relu_derivative(A, S, delta)
    elif code == LOGISTIC:
        logistic_derivative(A, S, delta)
    elif code == TANH:
        tanh_derivative(A, S, delta)
    elif code == EXP:
        exp_derivative(A, S, delta)
    elif code == LEAKY_RELU:
        leaky_relu_derivative(A, S, delta)
    elif code == GELU or code == SILU:
        slope_derivative(A, S, delta)
    elif code == SOFTPLUS:
        softplus_derivative(A, S, delta)
    # IDENTITY: nothing to do


# ---------------------------------------------------------------------------
# Activation chosen when the kernel is compiled


@compile_time_dispatch
def activate(Z, bias, S, code):
    """:func:`add_bias_and_activate` in kernels, compiling only the activation ``code``.

    With ``code`` a compile-time constant (a literal argument) this is the
    activation's own forward function; otherwise the run-time branches.
    """
    if isinstance(code, types.IntegerLiteral):
        return FORWARD[code.literal_value], (0, 1, 2)
    return add_bias_and_activate, (0, 1, 3, 2)


@compile_time_dispatch
def derive(A, S, delta, code):
    """:func:`multiply_by_derivative` in kernels, compiling only the derivative of ``code``.

    As :func:`activate`: with ``code`` a compile-time constant only that
    activation's derivative is compiled.
    """
    if isinstance(code, types.IntegerLiteral):
        return DERIVATIVE[code.literal_value], (0, 1, 2)
    return multiply_by_derivative, (0, 2, 3, 1)


# 2^(i/32), correctly rounded: e^y = 2^(k/32) 2^(r/32) with k an integer and |r| <= 1/2,
# where 2^(k/32) = 2^(k >> 5) _EXP2_FRACTIONS[k & 31].
_EXP2_FRACTIONS = np.array([
    1.0, 1.0218971486541166, 1.0442737824274138, 1.0671404006768237,
    1.0905077326652577, 1.1143867425958924, 1.1387886347566916, 1.1637248587775775,
    1.189207115002721, 1.215247359980469, 1.241857812073484, 1.2690509571917332,
    1.2968395546510096, 1.3252366431597413, 1.3542555469368927, 1.383909881963832,
    1.4142135623730951, 1.4451808069770467, 1.4768261459394993, 1.5091644275934228,
    1.5422108254079407, 1.5759808451078865, 1.6104903319492543, 1.645755478153965,
    1.681792830507429, 1.718619298122478, 1.7562521603732995, 1.7947090750031072,
    1.8340080864093424, 1.8741676341103, 1.9152065613971474, 1.9571441241754002,
])
# 2^(i/32) - _EXP2_FRACTIONS[i], correctly rounded: the fractions to twice float64's precision
_EXP2_FRACTIONS_LOW = np.array([
    0.0, 5.109225028973444e-17, 8.551889705537965e-17, -7.899853966841582e-17,
    -3.046782079812471e-17, 1.0410278456845571e-16, 8.912812676025408e-17, 3.8292048369240935e-17,
    3.982015231465646e-17, -7.712630692681488e-17, 4.658027591836937e-17, 2.667932131342186e-18,
    2.5382502794888315e-17, -2.8587312100388614e-17, 7.70094837980299e-17, -6.770511658794786e-17,
    -9.667293313452913e-17, -3.0237581349939873e-17, -3.483994556892796e-17, -1.016455327754295e-16,
    7.949834809697621e-17, -1.0136916471278304e-17, 2.4707192569797888e-17, -1.0125679913674773e-16,
    8.199010020581497e-17, -1.851380418263111e-17, 2.960140695448873e-17, 1.8227458427912087e-17,
    3.283107224245627e-17, -6.122763413004143e-17, -1.0619946056195963e-16, 8.960767791036668e-17,
])
_32_OVER_LN2 = 46.16624130844683
# ln(2) / 32 as a sum: the first with its 24 low bits clear, so that k times it is exact
_LN2_OVER_32_HIGH = 0.021660849335603416
_LN2_OVER_32_LOW = 5.689487495325457e-11
# tanh(x) rounds to +-1 beyond |x| = 19.1 in float64 (9.01 in float32); |x| is clamped here
_TANH_CLAMP = 20.0


@intrinsic
def _float64_from_bits(typingctx, bits):
    """The float64 whose IEEE 754 bits are the int64 ``bits``."""
    if not isinstance(bits, types.Integer) or bits.bitwidth != 64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(bits), codegen


@jit(internal=True)
def tanh_float64(x):
    """tanh of a float64 with no call, so that loops over it vectorise: within about 2 ulps.

    ``tanh|x| = m / (m + 2)`` with ``m = e^(2|x|) - 1``, which has no
    cancellation: ``2|x| = k ln(2) / 32 + r`` (``ln(2) / 32`` in two parts),
    ``m = (2^(k/32) - 1) + 2^(k/32) (e^r - 1)`` with 2^(k/32) from a table
    to twice float64's precision (its first part minus 1 is exact) and
    ``e^r - 1`` from a polynomial of degree 7. It is at least as accurate
    as the C library's ``tanh`` it replaces. Rounded once to float32, the
    result is tanh(x) correctly rounded but within about 2^-51 of a tie
    (the C library's ``tanhf`` can be up to 2 ulps off). NaN stays NaN,
    +-inf gives +-1, zeros keep their sign.
    """
    a = abs(x)
    if a > _TANH_CLAMP:
        a = _TANH_CLAMP
    y = 2.0 * a
    kd = np.rint(y * _32_OVER_LN2)
    k = np.int64(kd if kd == kd else 0.0)  # NaN (which the result keeps) has no integer
    r = (y - kd * _LN2_OVER_32_HIGH) - kd * _LN2_OVER_32_LOW
    e_r_minus_1 = r * (1.0 + r * (1.0 / 2.0 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (
        1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))))
    scale = _float64_from_bits((1023 + (k >> 5)) << 52)
    high = _EXP2_FRACTIONS[k & 31] * scale
    low = _EXP2_FRACTIONS_LOW[k & 31] * scale
    m = (high - 1.0) + (low + high * e_r_minus_1 + low * e_r_minus_1)
    return np.copysign(m / (m + 2.0), x)


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
    # 4096 eps of the dtype (from module constants: np.finfo in a kernel adds to its compile)
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

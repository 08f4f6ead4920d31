"""Forward and backward pass of a dense network over ONE flat parameter buffer.

The network has L layers; layer l maps ``fan_in`` units to ``fan_out`` units
with weights ``W[l]`` of shape (fan_in, fan_out) (scikit-learn's ``coefs_``
orientation: ``Z = A_prev @ W + b``) and intercepts ``b[l]``. Parameters live
in one flat vector laid out as scikit-learn packs them for L-BFGS: every
``W[l]`` row-major, then every ``b[l]``. Each row of the int64 table
``layers`` describes one layer:

    layers[l] = (fan_in, fan_out, coef_offset, intercept_offset, activation)

Work buffers are flat too: ``acts`` holds ``A[1..L]`` and ``deltas`` holds
``dJ/dZ[1..L]``, each layer taking ``capacity * fan_out`` entries, so one
allocation per fit serves every mini-batch. ``slopes`` holds ``g'(Z[l])`` of
the hidden layers whose derivative the output does not determine (gelu,
silu: see ``activations.keeps_slope``), ``capacity * fan_out`` entries for
each of them only; it is None for predictions and for networks without such
layers. The backward pass follows BACKGROUND.md, with rows as samples:

    dW[l] = A[l-1]^T dZ[l]      db[l] = sum_rows dZ[l]
    dZ[l-1] = (dZ[l] W[l]^T) * g'[l-1]

The passes take the activation codes of the hidden layers and of the output
layer as compile-time constants (literal arguments; see ``activations``):
a code compiles that activation only, and a hidden code of None takes each
hidden layer's code from the layer table at run time.
"""

import numpy as np

from ._arrays import matrix_view
from ._blas import matmul_into
from ._jit import REASSOCIATE, jit
from .activations import IDENTITY, SLOPE_CODES, activate, derive, identity_forward, keeps_slope

FAN_IN = 0
FAN_OUT = 1
COEF_OFFSET = 2
INTERCEPT_OFFSET = 3
ACTIVATION = 4


@jit(internal=True)
def coef_view(params, layers, l):
    """Weights ``W[l]`` as a (fan_in, fan_out) view of the flat buffer."""
    fan_in = layers[l, FAN_IN]
    fan_out = layers[l, FAN_OUT]
    start = layers[l, COEF_OFFSET]
    return matrix_view(params[start : start + fan_in * fan_out], fan_in, fan_out)


@jit(internal=True)
def intercept_view(params, layers, l):
    """Intercepts ``b[l]`` as a view of the flat buffer."""
    start = layers[l, INTERCEPT_OFFSET]
    return params[start : start + layers[l, FAN_OUT]]


@jit(internal=True)
def unit_view(buffer, layers, l, capacity, n_rows):
    """Rows ``0..n_rows`` of layer ``l``'s block of a work buffer (acts or deltas)."""
    start = 0
    for k in range(l):
        start += capacity * layers[k, FAN_OUT]
    n_units = layers[l, FAN_OUT]
    return matrix_view(buffer[start : start + n_rows * n_units], n_rows, n_units)


@jit(internal=True)
def copy_rows(source, rows, target):
    """``target[k] = source[rows[k]]`` for every k, as plain loops.

    Plain loops rather than slice assignment: Numba's array-to-array
    assignment compiles a formatted shape-mismatch error (string formatting,
    slow to compile) into every specialisation of every kernel that uses it.
    """
    n_cols = source.shape[1]
    for k in range(rows.shape[0]):
        r = rows[k]
        for j in range(n_cols):
            target[k, j] = source[r, j]


@jit(internal=True)
def copy_into(source, target):
    """``target[:, :] = source`` for 2-D arrays of one shape, as plain loops (see :func:`copy_rows`)."""
    for i in range(source.shape[0]):
        for j in range(source.shape[1]):
            target[i, j] = source[i, j]


@jit(internal=True)
def csr_rows_dot(csr, rows, W, out):
    """``out = X[rows] @ W`` for a CSR matrix X = ``csr``, touching only its non-zeros."""
    data, indices, indptr = csr
    n_cols = W.shape[1]
    for k in range(rows.shape[0]):
        for j in range(n_cols):
            out[k, j] = 0
        r = rows[k]
        for p in range(indptr[r], indptr[r + 1]):
            value = data[p]
            c = indices[p]
            for j in range(n_cols):
                out[k, j] += value * W[c, j]


@jit(internal=True)
def csr_rows_transpose_dot(csr, rows, delta, out):
    """``out = X[rows]^T @ delta`` for a CSR matrix X = ``csr``, touching only its non-zeros."""
    data, indices, indptr = csr
    out[:, :] = 0
    n_cols = delta.shape[1]
    for k in range(rows.shape[0]):
        r = rows[k]
        for p in range(indptr[r], indptr[r + 1]):
            value = data[p]
            c = indices[p]
            for j in range(n_cols):
                out[c, j] += value * delta[k, j]


@jit(internal=True)
def slope_view(slopes, layers, l, capacity, n_rows):
    """Rows ``0..n_rows`` of layer ``l``'s block of ``slopes`` (no rows for a layer that keeps no slope)."""
    start = 0
    for k in range(l):
        if keeps_slope(layers[k, ACTIVATION]):
            start += capacity * layers[k, FAN_OUT]
    n_units = layers[l, FAN_OUT]
    if not keeps_slope(layers[l, ACTIVATION]):
        n_rows = 0
    return matrix_view(slopes[start : start + n_rows * n_units], n_rows, n_units)


@jit(internal=True)
def activate_layer(Z, bias, slopes, layers, l, capacity, code):
    """``Z <- g(Z + bias)`` for layer ``l``; ``code`` its compile-time code, or None for the table's."""
    if code is None:
        if slopes is None:
            activate(Z, bias, None, layers[l, ACTIVATION])
        else:
            activate(Z, bias, slope_view(slopes, layers, l, capacity, Z.shape[0]), layers[l, ACTIVATION])
    elif slopes is None:
        activate(Z, bias, None, code)
    else:
        activate(Z, bias, slope_view(slopes, layers, l, capacity, Z.shape[0]), code)


@jit(internal=True)
def derive_layer(A, delta, slopes, layers, l, capacity, code):
    """``delta <- delta * g'(Z)`` for layer ``l``; ``code`` as in :func:`activate_layer`."""
    if code is None:
        if slopes is None:
            derive(A, None, delta, layers[l, ACTIVATION])
        else:
            derive(A, slope_view(slopes, layers, l, capacity, A.shape[0]), delta, layers[l, ACTIVATION])
    elif slopes is None:
        derive(A, None, delta, code)
    else:
        derive(A, slope_view(slopes, layers, l, capacity, A.shape[0]), delta, code)


@jit(internal=True)
def forward(Xb, csr, rows, params, layers, acts, capacity, slopes, hidden_code, out_code):
    """Forward pass of a batch; ``A[l]`` for l = 1..L is left in ``acts``.

    Parameters
    ----------
    Xb : ndarray of shape (n_rows, n_features)
        Dense input rows (ignored when ``csr`` is given).
    csr : tuple of ndarray or None
        ``(data, indices, indptr)`` of the whole input as a CSR matrix, or
        None for dense input. None is a compile-time choice: Numba prunes
        the CSR code from dense specialisations.
    rows : ndarray of shape (n_rows,)
        Row numbers of the batch in the CSR input (used with ``csr``).
    params : ndarray of shape (n_params,)
        Flat parameter buffer.
    layers : ndarray of shape (n_layers, 5)
        Layer table (see module docstring).
    acts : ndarray
        Flat activation buffer of ``capacity * sum(fan_out)`` entries.
    capacity : int
        Row capacity of each layer's block in ``acts``.
    slopes : ndarray or None
        Receives the slopes of gelu and silu layers (see module docstring).
    hidden_code : int or None
        Activation code of every hidden layer, or None to read each from
        ``layers`` (a compile-time constant).
    out_code : int
        Activation code of the output layer (a compile-time constant).

    Returns
    -------
    output : ndarray of shape (n_rows, n_outputs)
        View of the last layer's activations.
    """
    return forward_recording(
        Xb, csr, rows, params, layers, acts, capacity, None, None, slopes, hidden_code, out_code, False
    )


@jit(internal=True)
def forward_recording(
    Xb, csr, rows, params, layers, acts, capacity, zs, dropout, slopes, hidden_code, out_code, logits,
):
    """:func:`forward` that also keeps each pre-activation ``Z[l]`` in ``zs`` unless it is None.

    ``zs`` has the layout of ``acts``. None is a compile-time choice: Numba
    prunes the recording code from that specialisation, so the training
    kernels do not compile it. Recording costs one more pass per
    layer and is meant for inspection, not training. With ``logits`` the
    output layer's activation is skipped (its inputs are left in ``acts``).

    ``dropout`` is None or ``(masks, kept)``, two buffers laid out like
    ``acts``: each hidden layer's output ``A`` is then kept in ``kept`` and
    replaced in ``acts`` by ``A * masks`` (0 or ``1 / (1 - p)``), which the
    next layer takes as input (see :func:`backward_recording`).
    """
    n_rows = Xb.shape[0] if csr is None else rows.shape[0]
    n_layers = layers.shape[0]
    A = Xb
    for l in range(n_layers):
        Z = unit_view(acts, layers, l, capacity, n_rows)
        W = coef_view(params, layers, l)
        if l > 0:
            matmul_into(A, W, Z)
        elif csr is not None:
            csr_rows_dot(csr, rows, W, Z)
        else:
            matmul_into(Xb, W, Z)
        bias = intercept_view(params, layers, l)
        if zs is not None:
            Z_saved = unit_view(zs, layers, l, capacity, n_rows)
            copy_into(Z, Z_saved)
            identity_forward(Z_saved, bias, None)
        if l < n_layers - 1:
            activate_layer(Z, bias, slopes, layers, l, capacity, hidden_code)
            if dropout is not None:
                apply_mask(Z, unit_view(dropout[0], layers, l, capacity, n_rows),
                           unit_view(dropout[1], layers, l, capacity, n_rows))
        elif logits:
            identity_forward(Z, bias, None)
        else:  # output activations keep no slopes
            activate_layer(Z, bias, None, layers, l, capacity, out_code)
        A = Z
    return A


@jit(internal=True)
def apply_mask(A, mask, kept):
    """Copy ``A`` into ``kept`` and multiply ``A`` by ``mask`` in place (2-D arrays of one shape)."""
    for i in range(A.shape[0]):
        for j in range(A.shape[1]):
            a = A[i, j]
            kept[i, j] = a
            A[i, j] = a * mask[i, j]


@jit(internal=True)
def backward(Xb, csr, rows, params, layers, acts, deltas, capacity, grads, slopes, hidden_code):
    """Back-propagate the output error already in ``deltas``; raw sums into ``grads``.

    ``grads`` receives ``A[l-1]^T dZ[l]`` for every weight and the column sums
    of ``dZ[l]`` for every intercept, in the flat layout of ``params``; the L2
    term and the division by the weight sum are applied by
    :func:`finalize_gradient`. Arguments are those of :func:`forward`.
    """
    backward_recording(
        Xb, csr, rows, params, layers, acts, deltas, capacity, grads, None, None, slopes, hidden_code
    )


@jit(internal=True)
def backward_recording(
    Xb, csr, rows, params, layers, acts, deltas, capacity, grads, dAs, dropout, slopes, hidden_code,
):
    """:func:`backward` that also keeps ``dA[l] = dZ[l+1] W[l+1]^T`` of hidden layers in ``dAs`` unless it is None.

    ``dAs`` has the layout of ``deltas``; the output layer's block is left
    alone (it is the loss's derivative, not a back-propagated one).
    ``dropout`` is that of the :func:`forward_recording` call: the error
    sent to a hidden layer is then ``(dA * g'(Z)) * mask``, with ``g'``
    taken at the kept output ``A``, and ``acts`` (the masked outputs) give
    the weights' gradients.
    """
    n_rows = Xb.shape[0] if csr is None else rows.shape[0]
    for l in range(layers.shape[0] - 1, -1, -1):
        delta = unit_view(deltas, layers, l, capacity, n_rows)
        grad_W = coef_view(grads, layers, l)
        if l > 0:
            matmul_into(unit_view(acts, layers, l - 1, capacity, n_rows).T, delta, grad_W)
        elif csr is not None:
            csr_rows_transpose_dot(csr, rows, delta, grad_W)
        else:
            matmul_into(Xb.T, delta, grad_W)
        grad_b = intercept_view(grads, layers, l)
        grad_b[:] = 0
        for i in range(n_rows):
            for j in range(delta.shape[1]):
                grad_b[j] += delta[i, j]
        if l > 0:
            delta_prev = unit_view(deltas, layers, l - 1, capacity, n_rows)
            matmul_into(delta, coef_view(params, layers, l).T, delta_prev)
            if dAs is not None:
                copy_into(delta_prev, unit_view(dAs, layers, l - 1, capacity, n_rows))
            if dropout is None:
                A_prev = unit_view(acts, layers, l - 1, capacity, n_rows)
                derive_layer(A_prev, delta_prev, slopes, layers, l - 1, capacity, hidden_code)
            else:
                kept = unit_view(dropout[1], layers, l - 1, capacity, n_rows)
                derive_layer(kept, delta_prev, slopes, layers, l - 1, capacity, hidden_code)
                multiply_in_place(delta_prev, unit_view(dropout[0], layers, l - 1, capacity, n_rows))


@jit(internal=True)
def multiply_in_place(A, B):
    """``A *= B`` for 2-D arrays of one shape, as plain loops (see :func:`copy_rows`)."""
    for i in range(A.shape[0]):
        for j in range(A.shape[1]):
            A[i, j] = A[i, j] * B[i, j]


@jit(internal=True)
def finalize_gradient(grads, params, layers, alpha, weight_sum, fit_intercepts):
    """Turn raw sums into the gradient: ``(dW + alpha W) / S`` and ``db / S``.

    Intercept gradients are zeroed when ``fit_intercepts`` is False, so the
    intercepts stay where they are under every optimizer.
    """
    for l in range(layers.shape[0]):
        start = layers[l, COEF_OFFSET]
        stop = start + layers[l, FAN_IN] * layers[l, FAN_OUT]
        for k in range(start, stop):
            grads[k] = (grads[k] + alpha * params[k]) / weight_sum
        start = layers[l, INTERCEPT_OFFSET]
        stop = start + layers[l, FAN_OUT]
        for k in range(start, stop):
            grads[k] = grads[k] / weight_sum if fit_intercepts else 0


@jit(internal=True)
def squared_coef_norm(params, layers):
    """Sum of squared weights (intercepts are not penalised), in float64."""
    return squared_sum(params, layers[0, INTERCEPT_OFFSET])


@jit(fastmath=REASSOCIATE, internal=True)  # a vectorised sum: the order of its terms may change
def squared_sum(values, n):
    """``sum(values[:n] ** 2)`` in float64 (the weights come first in the flat buffer)."""
    total = 0.0
    for k in range(n):
        total += np.float64(values[k]) * values[k]
    return total


def network_codes(layers, loss_code):
    """The compile-time codes ``(hidden, out, loss)`` of the kernels of a network (Python).

    Parameters
    ----------
    layers : ndarray of shape (n_layers, 5)
        Layer table.
    loss_code : int
        Loss code.

    Returns
    -------
    codes : tuple
        The hidden layers' activation code when they all share one (identity
        when there is no hidden layer), None when they differ; the output
        activation code; the loss code.
    """
    hidden = {int(code) for code in layers[:-1, ACTIVATION]}
    shared = hidden.pop() if len(hidden) == 1 else (IDENTITY if not hidden else None)
    return shared, int(layers[-1, ACTIVATION]), int(loss_code)


def slope_units(layers):
    """Units whose slopes a training pass keeps per row: those of gelu and silu layers (Python)."""
    return int(sum(fan_out for _, fan_out, _, _, code in layers if code in SLOPE_CODES))

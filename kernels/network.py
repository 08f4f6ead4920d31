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
allocation per fit serves every mini-batch. The backward pass follows
BACKGROUND.md, with rows as samples:

    dW[l] = A[l-1]^T dZ[l]      db[l] = sum_rows dZ[l]
    dZ[l-1] = (dZ[l] W[l]^T) * g'[l-1]
"""

import numpy as np

from ._arrays import matrix_view
from ._blas import matmul_into
from ._jit import REASSOCIATE, jit
from .activations import IDENTITY, add_bias_and_activate, multiply_by_derivative

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
    ~1.4 s per specialisation) into every kernel that uses it.
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
def forward(Xb, csr, rows, params, layers, acts, capacity):
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

    Returns
    -------
    output : ndarray of shape (n_rows, n_outputs)
        View of the last layer's activations.
    """
    return forward_recording(Xb, csr, rows, params, layers, acts, capacity, None, None)


@jit(internal=True)
def forward_recording(Xb, csr, rows, params, layers, acts, capacity, zs, dropout):
    """:func:`forward` that also keeps each pre-activation ``Z[l]`` in ``zs`` unless it is None.

    ``zs`` has the layout of ``acts``. None is a compile-time choice: Numba
    prunes the recording code from that specialisation, so the training
    kernels do not compile it. Recording costs one more pass per
    layer and is meant for inspection, not training.

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
            add_bias_and_activate(Z_saved, bias, IDENTITY)
        add_bias_and_activate(Z, bias, layers[l, ACTIVATION])
        if dropout is not None and l < n_layers - 1:
            apply_mask(Z, unit_view(dropout[0], layers, l, capacity, n_rows),
                       unit_view(dropout[1], layers, l, capacity, n_rows))
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
def backward(Xb, csr, rows, params, layers, acts, deltas, capacity, grads):
    """Back-propagate the output error already in ``deltas``; raw sums into ``grads``.

    ``grads`` receives ``A[l-1]^T dZ[l]`` for every weight and the column sums
    of ``dZ[l]`` for every intercept, in the flat layout of ``params``; the L2
    term and the division by the weight sum are applied by
    :func:`finalize_gradient`. Arguments are those of :func:`forward`.
    """
    backward_recording(Xb, csr, rows, params, layers, acts, deltas, capacity, grads, None, None)


@jit(internal=True)
def backward_recording(Xb, csr, rows, params, layers, acts, deltas, capacity, grads, dAs, dropout):
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
                multiply_by_derivative(A_prev, delta_prev, layers[l - 1, ACTIVATION])
            else:
                kept = unit_view(dropout[1], layers, l - 1, capacity, n_rows)
                multiply_by_derivative(kept, delta_prev, layers[l - 1, ACTIVATION])
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

"""Slow, obviously-right NumPy reference of every fastbp kernel: the tests' oracle.

Everything here works on whole arrays with plain NumPy, one formula per line,
in the dtype of its inputs (as scikit-learn does: Python-float
hyper-parameters never upcast float32 arrays). It imports nothing from
fastbp. Networks are described by their layer sizes ``[n_features, h_1, ...,
n_outputs]`` and a list of activation names, one per layer; parameters are
one flat vector packed like scikit-learn's L-BFGS ``_pack``: every weight
matrix row-major (fan_in, fan_out), then every intercept vector.
"""

import numpy as np
from scipy.special import erf, expit, xlogy

LEAKY_RELU_SLOPE = 0.01

# --------------------------------------------------------------------------
# Flat parameter layout
# --------------------------------------------------------------------------


def n_params(sizes):
    """Number of weights and intercepts of a network with these layer sizes."""
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))


def unpack(params, sizes):
    """Views ``(coefs, intercepts)`` of a flat parameter vector."""
    coefs, intercepts = [], []
    start = 0
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        coefs.append(params[start : start + fan_in * fan_out].reshape(fan_in, fan_out))
        start += fan_in * fan_out
    for fan_out in sizes[1:]:
        intercepts.append(params[start : start + fan_out])
        start += fan_out
    assert start == params.shape[0]
    return coefs, intercepts


def pack(coefs, intercepts):
    """Flat vector of coefs then intercepts (scikit-learn's ``_pack``)."""
    return np.concatenate([c.ravel() for c in coefs] + [b.ravel() for b in intercepts])


def coef_mask(sizes):
    """Boolean mask of the weight entries (not the intercepts) of a flat vector."""
    n_coefs = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    mask = np.zeros(n_params(sizes), dtype=bool)
    mask[:n_coefs] = True
    return mask


def layer_table(sizes, activation_codes):
    """The kernels' int64 layer table for this layout.

    Row l is ``(fan_in, fan_out, coef_offset, intercept_offset, activation)``.
    """
    n_coefs = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    rows = []
    coef_offset, intercept_offset = 0, n_coefs
    for (fan_in, fan_out), code in zip(zip(sizes[:-1], sizes[1:]), activation_codes):
        rows.append((fan_in, fan_out, coef_offset, intercept_offset, code))
        coef_offset += fan_in * fan_out
        intercept_offset += fan_out
    return np.array(rows, dtype=np.int64)


def block_offsets(sizes, capacity):
    """Start of each layer's block in a flat acts/deltas work buffer."""
    return list(np.cumsum([0] + [capacity * s for s in sizes[1:-1]]))


# --------------------------------------------------------------------------
# Activations, and their derivatives: scikit-learn's four and exp in terms of
# the output A = g(Z), the others in terms of Z (textbook formulas)
# --------------------------------------------------------------------------

# Activations whose derivative is written in terms of Z.
FROM_Z = ("leaky_relu", "gelu", "silu", "softplus")


def activate(name, Z):
    """Return ``g(Z)`` as a new array (NaN and inf propagate as in NumPy)."""
    with np.errstate(all="ignore"):
        if name == "identity":
            return Z.copy()
        if name == "logistic":
            return 1 / (1 + np.exp(-Z))
        if name == "tanh":
            return np.tanh(Z)
        if name == "relu":
            return np.maximum(Z, 0)
        if name == "exp":
            return np.exp(Z)
        if name == "softmax":
            shifted = Z - Z.max(axis=1, keepdims=True)
            e = np.exp(shifted)
            return e / e.sum(axis=1, keepdims=True)
        if name == "leaky_relu":
            return np.where(Z > 0, Z, Z * Z.dtype.type(LEAKY_RELU_SLOPE))
        if name == "gelu":
            return Z * 0.5 * (1 + erf(Z / np.sqrt(2)))
        if name == "silu":
            return Z * expit(Z)
        if name == "softplus":
            return np.logaddexp(0, Z)
    raise ValueError(name)


def derivative(name, A, Z=None):
    """Return ``g'(Z)`` of an elementwise activation from its output ``A = g(Z)`` (or from ``Z``)."""
    with np.errstate(all="ignore"):
        if name == "identity":
            return np.ones_like(A)
        if name == "logistic":
            return A * (1 - A)
        if name == "tanh":
            return 1 - A**2
        if name == "relu":
            return (A != 0).astype(A.dtype)  # scikit-learn: delta[A == 0] = 0
        if name == "exp":
            return A.copy()
        if name == "leaky_relu":
            return np.where(Z > 0, 1, LEAKY_RELU_SLOPE).astype(Z.dtype)  # PyTorch: the slope at 0
        if name == "gelu":
            return 0.5 * (1 + erf(Z / np.sqrt(2))) + Z * np.exp(-Z * Z / 2) / np.sqrt(2 * np.pi)
        if name == "silu":
            return expit(Z) * (1 + Z * (1 - expit(Z)))
        if name == "softplus":
            return expit(Z)
    raise ValueError(name)


def apply_derivative(name, A, delta, Z=None):
    """Return ``delta * g'(Z)``; relu zeroes the entries where ``A == 0``."""
    with np.errstate(all="ignore"):
        if name == "relu":
            return np.where(A == 0, np.zeros_like(delta), delta)
        return delta * derivative(name, A, Z).astype(delta.dtype)


# --------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------

CANONICAL = {
    ("squared_error", "identity"),
    ("poisson", "exp"),
    ("log_loss", "softmax"),
    ("binary_log_loss", "logistic"),
    ("absolute_error", "identity"),
    ("huber", "identity"),
}
# Losses averaged over the outputs rather than summed.
MEAN_OVER_OUTPUTS = ("absolute_error", "huber")


def loss_elements(loss, A, Y, eps, huber_delta=1.0):
    """Per-element loss ``loss(y_ij, a_ij)`` in float64 (before any average over outputs)."""
    A = np.asarray(A, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    with np.errstate(all="ignore"):
        if loss == "squared_error":
            return 0.5 * (A - Y) ** 2
        if loss == "poisson":
            return xlogy(Y, Y / A) - Y + A
        if loss == "absolute_error":
            return np.abs(A - Y)
        if loss == "huber":
            r = np.abs(A - Y)
            return np.where(r < huber_delta, 0.5 * r**2, huber_delta * (r - 0.5 * huber_delta))
        P = np.clip(A, eps, 1 - eps)
        if loss == "log_loss":
            return -xlogy(Y, P)
        if loss == "binary_log_loss":
            return -xlogy(Y, P) - xlogy(1 - Y, 1 - P)
    raise ValueError(loss)


def row_losses(loss, A, Y, eps, huber_delta=1.0):
    """``loss_i``: the sum over outputs, or the mean for absolute error and huber."""
    elements = loss_elements(loss, A, Y, eps, huber_delta)
    return elements.mean(axis=1) if loss in MEAN_OVER_OUTPUTS else elements.sum(axis=1)


def weighted_loss_sum(loss, A, Y, sample_weight, eps, huber_delta=1.0):
    """``sum_i s_i * loss_i`` as a Python float."""
    per_row = row_losses(loss, A, Y, eps, huber_delta)
    return float(np.sum(np.asarray(sample_weight, dtype=np.float64) * per_row))


def loss_gradient(loss, A, Y, huber_delta=1.0):
    """``d loss_i / d a_ij`` (without the sample weight), in A's dtype; ``sign(0) = 0``."""
    R = A - Y
    if loss == "absolute_error":
        return np.sign(R) / A.dtype.type(A.shape[1])
    if loss == "huber":
        return np.clip(R, -huber_delta, huber_delta).astype(A.dtype) / A.dtype.type(A.shape[1])
    return R


def output_delta(loss, out_activation, A, Y, sample_weight, huber_delta=1.0):
    """``s_i * dJ/dZ`` at the output: ``s_i d loss_i / dA``, times ``g'`` if not canonical."""
    delta = loss_gradient(loss, A, Y, huber_delta) * sample_weight[:, None]
    if (loss, out_activation) not in CANONICAL:
        delta = apply_derivative(out_activation, A, delta)
    return delta


# --------------------------------------------------------------------------
# Network
# --------------------------------------------------------------------------


def forward_z(X, coefs, intercepts, activations):
    """Return the lists ``[Z_1, ..., Z_L]`` and ``[A_1, ..., A_L]`` of every layer.

    ``X`` may be a SciPy sparse matrix (whose products skip stored zeros).
    """
    pre_activations, outputs = [], []
    A = X
    for W, b, name in zip(coefs, intercepts, activations):
        with np.errstate(all="ignore"):
            Z = A @ W + b
            A = activate(name, Z)
        pre_activations.append(Z)
        outputs.append(A)
    return pre_activations, outputs


def forward(X, coefs, intercepts, activations):
    """Return the list ``[A_1, ..., A_L]`` of every layer's output."""
    return forward_z(X, coefs, intercepts, activations)[1]


def forward_with_masks(X, coefs, intercepts, activations, masks):
    """:func:`forward_z` with inverted dropout: hidden layer l's output is multiplied by ``masks[l]``.

    Returns ``(pre_activations, outputs, kept)``: the ``Z_l``, the masked
    outputs (the output layer's unmasked) and the hidden layers' outputs
    before their masks.
    """
    pre_activations, outputs, kept = [], [], []
    A = X
    for l, (W, b, name) in enumerate(zip(coefs, intercepts, activations)):
        with np.errstate(all="ignore"):
            Z = A @ W + b
            A = activate(name, Z)
            if l < len(coefs) - 1:
                kept.append(A)
                A = A * masks[l]
        pre_activations.append(Z)
        outputs.append(A)
    return pre_activations, outputs, kept


def backward(X, coefs, outputs, activations, delta_out, pre_activations=None, masks=None, kept=None):
    """Raw sums ``(dW, db)``: ``A_{l-1}^T dZ_l`` and the column sums of ``dZ_l``.

    ``pre_activations`` (the ``Z_l``) are needed for the activations of
    :data:`FROM_Z`. With ``masks`` and ``kept`` from
    :func:`forward_with_masks`, the error sent to hidden layer l is
    ``(dA * g'(kept[l])) * masks[l]``.
    """
    n_layers = len(coefs)
    dW, db = [None] * n_layers, [None] * n_layers
    delta = delta_out
    with np.errstate(all="ignore"):
        for l in range(n_layers - 1, -1, -1):
            A_prev = X if l == 0 else outputs[l - 1]
            dW[l] = A_prev.T @ delta
            db[l] = delta.sum(axis=0)
            if l > 0:
                Z_prev = None if pre_activations is None else pre_activations[l - 1]
                if masks is None:
                    delta = apply_derivative(activations[l - 1], outputs[l - 1], delta @ coefs[l].T, Z_prev)
                else:
                    A_kept = kept[l - 1]
                    delta = apply_derivative(activations[l - 1], A_kept, delta @ coefs[l].T, Z_prev) * masks[l - 1]
    return dW, db


def finalize(dW, db, coefs, alpha, weight_sum, fit_intercepts):
    """Flat gradient ``(dW + alpha W) / S`` then ``db / S`` (zeros without intercepts)."""
    with np.errstate(all="ignore"):
        grad_W = [(g + alpha * W) / weight_sum for g, W in zip(dW, coefs)]
        grad_b = [g / weight_sum if fit_intercepts else np.zeros_like(g) for g in db]
    return pack(grad_W, grad_b)


def squared_coef_norm(coefs):
    """Sum of squared weights, in float64."""
    return float(sum(np.sum(np.asarray(W, dtype=np.float64) ** 2) for W in coefs))


def loss_and_gradient(
    X, Y, sample_weight, params, sizes, activations, alpha, loss, loss_scale, eps, fit_intercepts,
    huber_delta=1.0, masks=None,
):
    """Objective ``loss_scale sum_i s_i loss_i / S + alpha/2 ||W||^2 / S`` and its gradient.

    The gradient is that of the objective with ``loss_scale = 1`` (scikit-learn
    scales only the reported loss, e.g. by 1 / n_outputs for squared error).
    With ``masks`` (one per hidden layer), of the network with inverted
    dropout by these masks.
    """
    coefs, intercepts = unpack(params, sizes)
    kept = None
    if masks is None:
        pre_activations, outputs = forward_z(X, coefs, intercepts, activations)
    else:
        pre_activations, outputs, kept = forward_with_masks(X, coefs, intercepts, activations, masks)
    weight_sum = float(np.sum(np.asarray(sample_weight, dtype=np.float64)))
    with np.errstate(all="ignore"):
        data_loss = weighted_loss_sum(loss, outputs[-1], Y, sample_weight, eps, huber_delta)
        objective = (
            loss_scale * data_loss / weight_sum
            + 0.5 * alpha * squared_coef_norm(coefs) / weight_sum
        )
    delta = output_delta(loss, activations[-1], outputs[-1], Y, sample_weight, huber_delta)
    dW, db = backward(X, coefs, outputs, activations, delta, pre_activations, masks, kept)
    return objective, finalize(dW, db, coefs, alpha, weight_sum, fit_intercepts)


# --------------------------------------------------------------------------
# Optimizers: scikit-learn's _stochastic_optimizers.py on one flat vector
# --------------------------------------------------------------------------


def sgd_step(params, grads, velocity, learning_rate, momentum, nesterov):
    """SGDOptimizer._get_updates + update_params, in place."""
    learning_rate, momentum = float(learning_rate), float(momentum)
    update = momentum * velocity - learning_rate * grads
    velocity[:] = update
    if nesterov:
        update = momentum * velocity - learning_rate * grads
    params += update


def adam_step(params, grads, first_moment, second_moment, t, learning_rate, beta_1, beta_2, epsilon):
    """AdamOptimizer._get_updates + update_params for step number ``t``, in place."""
    learning_rate, beta_1, beta_2, epsilon = map(float, (learning_rate, beta_1, beta_2, epsilon))
    first_moment[:] = beta_1 * first_moment + (1 - beta_1) * grads
    second_moment[:] = beta_2 * second_moment + (1 - beta_2) * (grads**2)
    lr_t = learning_rate * np.sqrt(1 - beta_2**t) / (1 - beta_1**t)
    params += -lr_t * first_moment / (np.sqrt(second_moment) + epsilon)


def clipped(grads, max_norm):
    """``grads * min(1, max_norm / (||grads|| + 1e-6))`` (PyTorch's ``clip_grad_norm_``), in their dtype."""
    norm = np.sqrt(np.sum(np.asarray(grads, dtype=np.float64) ** 2))
    scale = min(1.0, max_norm / (norm + 1e-6))
    return grads * grads.dtype.type(scale)


def cosine_rate(learning_rate, t, n_steps, n_warmup=0):
    """Step size of step ``t`` (from 0) of the cosine schedule over ``n_steps`` steps; 0 from then on.

    The first ``n_warmup`` steps rise linearly to ``learning_rate``; the
    cosine runs over the others.
    """
    if t < n_warmup:
        return learning_rate * (t + 1) / n_warmup
    if t >= n_steps:
        return 0.0
    return learning_rate * (1 + np.cos(np.pi * (t - n_warmup) / (n_steps - n_warmup))) / 2


# --------------------------------------------------------------------------
# Dropout masks: SplitMix64's output function on a counter, in Python integers
# --------------------------------------------------------------------------

_GAMMA = 0x9E3779B97F4A7C15
_UINT64 = 2**64 - 1


def _mix(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _UINT64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _UINT64
    return z ^ (z >> 31)


def dropout_masks(seed, epoch, rows, hidden_sizes, rates, dtype):
    """One (len(rows), units) mask per hidden layer: 0 or ``1 / (1 - p)``.

    Unit j (numbered across the hidden layers) of input row r is dropped
    when ``mix(key + (r * n_hidden + j + 1) * GAMMA) < floor(p * 2^64)``, with
    ``key = mix(mix(seed + GAMMA) + epoch * GAMMA)`` (all modulo 2^64).
    """
    key = _mix((_mix((seed + _GAMMA) & _UINT64) + epoch * _GAMMA) & _UINT64)
    n_hidden = sum(hidden_sizes)
    masks, first_unit = [], 0
    for units, rate in zip(hidden_sizes, rates):
        threshold = min(int(rate * 2.0**64), _UINT64)
        scale = dtype(1.0 / (1.0 - rate))
        mask = np.empty((len(rows), units), dtype=dtype)
        for k, r in enumerate(rows):
            for j in range(units):
                u = _mix((key + (int(r) * n_hidden + first_unit + j + 1) * _GAMMA) & _UINT64)
                mask[k, j] = scale if u >= threshold else 0
        masks.append(mask)
        first_unit += units
    return masks


# --------------------------------------------------------------------------
# One mini-batch epoch
# --------------------------------------------------------------------------


def train_epoch(
    X, Y, sample_weight, order, batch_size, params, sizes, activations, alpha, loss,
    loss_scale, eps, fit_intercepts, solver, hyper, state_a, state_b, t, huber_delta=1.0,
    max_grad_norm=None, schedule=None, dropout=None,
):
    """One epoch over ``order`` in consecutive batches; updates in place.

    ``solver`` is "sgd" or "adam"; ``hyper`` is (learning_rate, momentum,
    nesterov, beta_1, beta_2, epsilon). Returns ``(loss_sum, t)`` where
    ``loss_sum`` adds each batch objective times the batch length (as
    scikit-learn's ``accumulated_loss``) and ``t`` is the step count (Adam's,
    or of the cosine schedule). Options: clip each batch's gradient to
    ``max_grad_norm``; the cosine schedule ``schedule = (n_steps, n_warmup)``;
    ``dropout = (seed, epoch, rates)`` with :func:`dropout_masks`.
    """
    learning_rate, momentum, nesterov, beta_1, beta_2, epsilon = hyper
    loss_sum = 0.0
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        masks = None
        if dropout is not None:
            seed, epoch, rates = dropout
            masks = dropout_masks(seed, epoch, batch, sizes[1:-1], rates, params.dtype.type)
        batch_loss, grads = loss_and_gradient(
            X[batch], Y[batch], sample_weight[batch], params, sizes, activations,
            alpha, loss, loss_scale, eps, fit_intercepts, huber_delta, masks,
        )
        loss_sum += batch_loss * len(batch)
        if max_grad_norm is not None:
            grads = clipped(grads, max_grad_norm)
        rate = learning_rate if schedule is None else cosine_rate(learning_rate, t, *schedule)
        if solver == "adam" or schedule is not None:
            t += 1
        if solver == "adam":
            adam_step(params, grads, state_a, state_b, t, rate, beta_1, beta_2, epsilon)
        else:
            sgd_step(params, grads, state_a, rate, momentum, bool(nesterov))
    return loss_sum, t

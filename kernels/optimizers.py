"""Optimizer steps as single fused loops over the flat parameter buffer.

The formulas, and the order of their floating-point operations, are those of
scikit-learn's ``SGDOptimizer`` and ``AdamOptimizer``:

    sgd:   v <- mu v - lr g ;  update = mu v - lr g (Nesterov) or v ;  w <- w + update
    adam:  m <- b1 m + (1 - b1) g ;  v <- b2 v + (1 - b2) g^2
           lr_t = lr sqrt(1 - b2^t) / (1 - b1^t) ;  w <- w - lr_t m / (sqrt(v) + eps)

``sgd_step`` / ``adam_step`` take a finished gradient. The training loop uses
``sgd_update`` / ``adam_update`` instead, which take the RAW back-propagated
sums and finish the gradient on the fly -- ``(dW + alpha W) / S`` for the
weights (the first ``n_coefs`` entries), ``db / S`` for the intercepts -- and
return ``||W||^2`` (a vectorised sum) for the loss: two passes over the
parameters per batch instead of four. They step one range of the buffer, so
that the threads of a split epoch can each step their own.

Two options of the stochastic solvers live here too, each a compile-time
choice of the training kernels (an argument that is None or not):

    clipping:  g <- g * min(1, max_norm / (||g|| + 1e-6))   (PyTorch's clip_grad_norm_)
    cosine:    lr(t) = lr_init (t + 1) / W for the steps t = 0, ..., W - 1 of a linear warm-up,
               then lr_init (1 + cos(pi (t - W) / (T - W))) / 2 up to the step T, then 0

where ``||g||`` is the L2 norm of the whole finished gradient of a
mini-batch, penalty included (:func:`finished_squared_norm` gives a range's
share of ``||g||^2``).
"""

import numpy as np

from ._jit import REASSOCIATE, jit
from .network import squared_sum

# The term PyTorch's clip_grad_norm_ adds to the norm, so that a zero gradient divides by no zero.
CLIP_EPSILON = 1e-6


@jit(internal=True)
def sgd_element(params, velocity, k, g, learning_rate, momentum, nesterov):
    """SGD step of parameter k with gradient g."""
    v = momentum * velocity[k] - learning_rate * g
    velocity[k] = v
    if nesterov:
        params[k] += momentum * v - learning_rate * g
    else:
        params[k] += v


@jit(internal=True)
def adam_element(params, first_moment, second_moment, k, g, lr_t, b1, b2, one_minus_b1, one_minus_b2, eps):
    """Adam step of parameter k with gradient g."""
    m = b1 * first_moment[k] + one_minus_b1 * g
    v = b2 * second_moment[k] + one_minus_b2 * (g * g)
    first_moment[k] = m
    second_moment[k] = v
    params[k] += -lr_t * m / (np.sqrt(v) + eps)


@jit(internal=True)
def adam_rates(dtype_array, step, learning_rate, beta_1, beta_2, epsilon):
    """Step size ``lr_t`` (float64) and the moments' constants in the parameters' dtype."""
    lr_t = learning_rate * np.sqrt(1 - beta_2 ** np.float64(step)) / (1 - beta_1 ** np.float64(step))
    cast = dtype_array.dtype.type
    return lr_t, cast(beta_1), cast(beta_2), cast(1 - beta_1), cast(1 - beta_2), cast(epsilon)


@jit
def sgd_step(params, grads, velocity, learning_rate, momentum, nesterov):
    """One SGD step with (Nesterov) momentum, in place.

    Parameters
    ----------
    params, grads, velocity : ndarray of shape (n_params,)
        Flat parameters, their gradient and the velocity buffer.
    learning_rate, momentum : float
        Step size and momentum, of the parameters' dtype.
    nesterov : bool
        Whether to take Nesterov's look-ahead step.
    """
    for k in range(params.shape[0]):
        sgd_element(params, velocity, k, grads[k], learning_rate, momentum, nesterov)


@jit
def adam_step(params, grads, first_moment, second_moment, step, learning_rate, beta_1, beta_2, epsilon):
    """One Adam step, in place; ``step`` is the 1-based step number t.

    Parameters
    ----------
    params, grads, first_moment, second_moment : ndarray of shape (n_params,)
        Flat parameters, their gradient and Adam's moment estimates.
    step : int
        Number of this step, counted from 1 over the optimizer's life.
    learning_rate, beta_1, beta_2, epsilon : float
        Adam's hyper-parameters (float64; the moments use them in the
        parameters' dtype).
    """
    lr_t, b1, b2, c1, c2, eps = adam_rates(params, step, learning_rate, beta_1, beta_2, epsilon)
    for k in range(params.shape[0]):
        adam_element(params, first_moment, second_moment, k, grads[k], lr_t, b1, b2, c1, c2, eps)


@jit(internal=True)
def cosine_rate(learning_rate, step, n_steps, n_warmup):
    """The cosine schedule's step size (float64) for the step numbered ``step`` from 0, of ``n_steps``.

    The first ``n_warmup`` steps rise linearly, ``learning_rate * (step +
    1) / n_warmup`` (PyTorch's ``LinearLR`` from ``1 / n_warmup``); the
    others follow ``learning_rate * (1 + cos(pi * s / S)) / 2`` with ``s =
    step - n_warmup`` and ``S = n_steps - n_warmup``, written as PyTorch's
    ``CosineAnnealingLR`` computes it with ``eta_min=0``; 0 from ``n_steps`` on.
    """
    if step < n_warmup:
        return learning_rate * (step + 1) / n_warmup
    if step >= n_steps:
        return 0.0
    return learning_rate * (1.0 + np.cos(np.pi * (step - n_warmup) / (n_steps - n_warmup))) / 2.0


@jit(internal=True)
def clip_scale(max_norm, squared_norm):
    """The factor on a gradient of squared L2 norm ``squared_norm`` clipped to ``max_norm`` (float64).

    ``min(1, max_norm / (norm + CLIP_EPSILON))``, as PyTorch's
    ``clip_grad_norm_``; NaN for a NaN norm, so that the step fails visibly.
    """
    scale = max_norm / (np.sqrt(squared_norm) + CLIP_EPSILON)
    return 1.0 if scale > 1.0 else scale


@jit(fastmath=REASSOCIATE, internal=True)  # a vectorised sum: the order of its terms may change
def finished_squared_norm(params, raw_grads, alpha, weight_sum, n_coefs, fit_intercepts, start, stop):
    """``||g||^2`` (float64) of the finished gradient of ``params[start:stop]``, without writing it.

    ``g`` is ``(dW + alpha W) / S`` for the weights and ``db / S`` for the
    intercepts (0 without ``fit_intercepts``), as :func:`sgd_update` finishes it.
    """
    coefs_stop = max(start, min(stop, n_coefs))  # loops over views from 0, as in sgd_update
    W, dW = params[start:coefs_stop], raw_grads[start:coefs_stop]
    db = raw_grads[coefs_stop:stop]
    total = 0.0
    for k in range(W.shape[0]):
        g = (dW[k] + alpha * W[k]) / weight_sum
        total += np.float64(g) * g
    if fit_intercepts:
        for k in range(db.shape[0]):
            g = db[k] / weight_sum
            total += np.float64(g) * g
    return total


@jit(internal=True)
def sgd_update(params, raw_grads, velocity, learning_rate, momentum, nesterov,
               alpha, weight_sum, n_coefs, fit_intercepts, start, stop, scale):
    """Finish the raw gradient and take an SGD step of ``params[start:stop]`` in one pass.

    Returns ``||W||^2`` of the range's weights before the step, so that
    threads that share the buffer in ranges can add up the penalty.
    Unless ``scale`` is None (a compile-time choice), the finished gradient
    is multiplied by it (gradient clipping).

    Parameters
    ----------
    params, raw_grads, velocity : ndarray of shape (n_params,)
        Flat parameters, raw back-propagated sums and the velocity buffer.
    learning_rate, momentum, alpha, weight_sum : float
        Step size, momentum, L2 strength and the batch's weight sum S, of the
        parameters' dtype.
    nesterov : bool
        Whether to take Nesterov's look-ahead step.
    n_coefs : int
        Number of weights (they come first in the buffer).
    fit_intercepts : bool
        Whether intercepts move.
    start, stop : int
        The range of the buffer to step.
    scale : float or None
        Factor on the finished gradient, of the parameters' dtype, or None.

    Returns
    -------
    penalty : float
        Sum of the range's squared weights before the step, in float64.
    """
    # loops over views from 0: an index that may be negative would need a
    # wraparound check, which keeps a loop from vectorising
    coefs_stop = max(start, min(stop, n_coefs))
    W, dW, W_v = params[start:coefs_stop], raw_grads[start:coefs_stop], velocity[start:coefs_stop]
    b, db, b_v = params[coefs_stop:stop], raw_grads[coefs_stop:stop], velocity[coefs_stop:stop]
    penalty = squared_sum(W, W.shape[0])
    for k in range(W.shape[0]):
        g = (dW[k] + alpha * W[k]) / weight_sum
        if scale is not None:
            g = g * scale
        sgd_element(W, W_v, k, g, learning_rate, momentum, nesterov)
    if fit_intercepts:
        for k in range(b.shape[0]):
            g = db[k] / weight_sum
            if scale is not None:
                g = g * scale
            sgd_element(b, b_v, k, g, learning_rate, momentum, nesterov)
    else:
        for k in range(b.shape[0]):
            sgd_element(b, b_v, k, weight_sum * 0, learning_rate, momentum, nesterov)
    return penalty


@jit(internal=True)
def adam_update(params, raw_grads, first_moment, second_moment, step, learning_rate, beta_1,
                beta_2, epsilon, alpha, weight_sum, n_coefs, fit_intercepts, start, stop, scale):
    """Finish the raw gradient and take an Adam step of ``params[start:stop]`` in one pass.

    Arguments are those of :func:`adam_step` and :func:`sgd_update`; returns
    ``||W||^2`` of the range's weights before the step.
    """
    lr_t, b1, b2, c1, c2, eps = adam_rates(params, step, learning_rate, beta_1, beta_2, epsilon)
    coefs_stop = max(start, min(stop, n_coefs))  # loops over views from 0, as in sgd_update
    W, dW = params[start:coefs_stop], raw_grads[start:coefs_stop]
    W_m, W_v = first_moment[start:coefs_stop], second_moment[start:coefs_stop]
    b, db = params[coefs_stop:stop], raw_grads[coefs_stop:stop]
    b_m, b_v = first_moment[coefs_stop:stop], second_moment[coefs_stop:stop]
    penalty = squared_sum(W, W.shape[0])
    for k in range(W.shape[0]):
        g = (dW[k] + alpha * W[k]) / weight_sum
        if scale is not None:
            g = g * scale
        adam_element(W, W_m, W_v, k, g, lr_t, b1, b2, c1, c2, eps)
    if fit_intercepts:
        for k in range(b.shape[0]):
            g = db[k] / weight_sum
            if scale is not None:
                g = g * scale
            adam_element(b, b_m, b_v, k, g, lr_t, b1, b2, c1, c2, eps)
    else:
        for k in range(b.shape[0]):
            adam_element(b, b_m, b_v, k, weight_sum * 0, lr_t, b1, b2, c1, c2, eps)
    return penalty

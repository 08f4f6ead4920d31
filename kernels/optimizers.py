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
"""

import numpy as np

from ._jit import jit
from .network import squared_sum


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
def sgd_update(params, raw_grads, velocity, learning_rate, momentum, nesterov,
               alpha, weight_sum, n_coefs, fit_intercepts, start, stop):
    """Finish the raw gradient and take an SGD step of ``params[start:stop]`` in one pass.

    Returns ``||W||^2`` of the range's weights before the step, so that
    threads that share the buffer in ranges can add up the penalty.

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

    Returns
    -------
    penalty : float
        Sum of the range's squared weights before the step, in float64.
    """
    # loops over views from 0: an index that may be negative would need a
    # wraparound check, which keeps a loop from vectorising (2x slower)
    coefs_stop = max(start, min(stop, n_coefs))
    W, dW, W_v = params[start:coefs_stop], raw_grads[start:coefs_stop], velocity[start:coefs_stop]
    b, db, b_v = params[coefs_stop:stop], raw_grads[coefs_stop:stop], velocity[coefs_stop:stop]
    penalty = squared_sum(W, W.shape[0])
    for k in range(W.shape[0]):
        g = (dW[k] + alpha * W[k]) / weight_sum
        sgd_element(W, W_v, k, g, learning_rate, momentum, nesterov)
    if fit_intercepts:
        for k in range(b.shape[0]):
            sgd_element(b, b_v, k, db[k] / weight_sum, learning_rate, momentum, nesterov)
    else:
        for k in range(b.shape[0]):
            sgd_element(b, b_v, k, weight_sum * 0, learning_rate, momentum, nesterov)
    return penalty


@jit(internal=True)
def adam_update(params, raw_grads, first_moment, second_moment, step, learning_rate, beta_1,
                beta_2, epsilon, alpha, weight_sum, n_coefs, fit_intercepts, start, stop):
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
        adam_element(W, W_m, W_v, k, g, lr_t, b1, b2, c1, c2, eps)
    if fit_intercepts:
        for k in range(b.shape[0]):
            adam_element(b, b_m, b_v, k, db[k] / weight_sum, lr_t, b1, b2, c1, c2, eps)
    else:
        for k in range(b.shape[0]):
            adam_element(b, b_m, b_v, k, weight_sum * 0, lr_t, b1, b2, c1, c2, eps)
    return penalty

"""Optimizer steps as single fused loops over the flat parameter buffer.

The formulas, and the order of their floating-point operations, are those of
scikit-learn's ``SGDOptimizer`` and ``AdamOptimizer``:

    sgd:   v <- mu v - lr g ;  update = mu v - lr g (Nesterov) or v ;  w <- w + update
    adam:  m <- b1 m + (1 - b1) g ;  v <- b2 v + (1 - b2) g^2
           lr_t = lr sqrt(1 - b2^t) / (1 - b1^t) ;  w <- w - lr_t m / (sqrt(v) + eps)
"""

import numpy as np

from ._jit import jit

SGD = 0
ADAM = 1


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
        v = momentum * velocity[k] - learning_rate * grads[k]
        velocity[k] = v
        if nesterov:
            params[k] += momentum * v - learning_rate * grads[k]
        else:
            params[k] += v


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
    lr_t = learning_rate * np.sqrt(1 - beta_2 ** np.float64(step)) / (1 - beta_1 ** np.float64(step))
    b1 = first_moment.dtype.type(beta_1)
    b2 = second_moment.dtype.type(beta_2)
    one_minus_b1 = first_moment.dtype.type(1 - beta_1)
    one_minus_b2 = second_moment.dtype.type(1 - beta_2)
    eps = second_moment.dtype.type(epsilon)
    for k in range(params.shape[0]):
        g = grads[k]
        m = b1 * first_moment[k] + one_minus_b1 * g
        v = b2 * second_moment[k] + one_minus_b2 * (g * g)
        first_moment[k] = m
        second_moment[k] = v
        params[k] += -lr_t * m / (np.sqrt(v) + eps)

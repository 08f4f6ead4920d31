"""Optimizer state and learning-rate schedules of the stochastic solvers.

The state of an optimizer (velocities, Adam's moments) is a flat buffer of
the parameters' shape, so every update is one fused loop in
``kernels.train_epoch``. The learning-rate schedules and the stopping rule
follow scikit-learn's ``SGDOptimizer`` and ``AdamOptimizer`` exactly; the
'cosine' schedule, which scikit-learn lacks, is computed per mini-batch step
in the kernels (``kernels.optimizers.cosine_rate``).
"""

import numpy as np

from . import kernels
from ._buffers import aligned_empty, aligned_zeros


class StochasticOptimizer:
    """State and schedule of the 'sgd' or 'adam' solver.

    Parameters
    ----------
    solver : {"sgd", "adam"}
        Which update rule.
    n_params : int
        Length of the flat parameter buffer.
    dtype : numpy dtype
        Dtype of the parameters.
    learning_rate_init : float
        Initial step size.
    lr_schedule : {"constant", "invscaling", "adaptive", "cosine"}, default="constant"
        Schedule of the step size: scikit-learn's three apply to sgd only,
        'cosine' to both solvers.
    momentum : float, default=0.9
        Momentum of sgd.
    nesterov : bool, default=True
        Whether sgd uses Nesterov's momentum.
    power_t : float, default=0.5
        Exponent of the invscaling schedule.
    beta_1, beta_2, epsilon : float
        Adam's hyper-parameters.
    """

    def __init__(
        self,
        solver,
        n_params,
        dtype,
        learning_rate_init,
        lr_schedule="constant",
        momentum=0.9,
        nesterov=True,
        power_t=0.5,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
    ):
        self.solver = solver
        self.learning_rate_init = learning_rate_init
        self.learning_rate = float(learning_rate_init)
        self.lr_schedule = lr_schedule
        self.momentum = momentum
        self.nesterov = nesterov
        self.power_t = power_t
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.state_a = aligned_zeros(n_params, dtype)
        size_b = n_params if solver == "adam" else 0
        self.state_b = aligned_zeros(size_b, dtype)
        self.step_counter = np.zeros(1, dtype=np.int64)

    def __setstate__(self, state):
        # copies (unpickling, deepcopy) get their state buffers aligned again
        self.__dict__.update(state)
        for name in ("state_a", "state_b"):
            value = state.get(name)
            if isinstance(value, np.ndarray) and value.ndim == 1:
                aligned = aligned_empty(value.shape, value.dtype)
                aligned[...] = value
                setattr(self, name, aligned)

    def kernel_state(self):
        """``(velocity, first_moment, second_moment)`` of the training kernels.

        The state of the other solver is None, which makes the solver a
        compile-time choice in the kernels.
        """
        if self.solver == "adam":
            return None, self.state_a, self.state_b
        return self.state_a, None, None

    def hyper(self):
        """The float64 hyper-parameter vector of ``kernels.train_epoch``."""
        return np.array(
            [
                self.learning_rate if self.solver == "sgd" else self.learning_rate_init,
                self.momentum,
                float(self.nesterov),
                self.beta_1,
                self.beta_2,
                self.epsilon,
            ],
            dtype=np.float64,
        )

    def cosine_schedule(self, n_epochs, batches_per_epoch, warmup_fraction=0.0):
        """``(T, W)``: the steps of the cosine schedule over ``n_epochs`` epochs and its warm-up steps.

        None unless the schedule is 'cosine'. ``T`` is ``n_epochs`` times
        ``batches_per_epoch`` and ``W`` is ``floor(warmup_fraction * T)``.
        The kernels number the steps of the optimizer's life from 0
        (``step_counter``): step t < W has the rate ``learning_rate_init *
        (t + 1) / W``, a later one ``learning_rate_init * (1 + cos(pi * (t -
        W) / (T - W))) / 2``, and 0 from T on.
        """
        if self.lr_schedule != "cosine":
            return None
        n_steps = int(n_epochs) * int(batches_per_epoch)
        return n_steps, int(warmup_fraction * n_steps)

    def iteration_ends(self, time_step):
        """Update the invscaling step size after an epoch (``time_step`` = samples seen)."""
        if self.solver == "sgd" and self.lr_schedule == "invscaling":
            self.learning_rate = float(self.learning_rate_init) / (time_step + 1) ** self.power_t

    def trigger_stopping(self, msg, verbose):
        """Decide whether to stop after no improvement; 'adaptive' divides the step by 5."""
        if self.solver != "sgd" or self.lr_schedule != "adaptive":
            if verbose:
                print(msg + " Stopping.")
            return True
        if self.learning_rate <= 1e-6:
            if verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        self.learning_rate /= 5.0
        if verbose:
            print(msg + " Setting learning rate to %f" % self.learning_rate)
        return False

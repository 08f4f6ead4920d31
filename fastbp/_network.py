"""The public network of backpropagation: layers, one flat parameter buffer, every step in the open.

``Network`` owns the parameters of a dense feed-forward network in a single
flat vector laid out as scikit-learn packs them for L-BFGS (every weight
matrix row-major, then every intercept vector); ``coefs`` and ``intercepts``
are views into it, so code that reads or writes them in place sees the same
numbers the kernels train. Its methods validate their arguments and run on
the engine (``fastbp._engine``), as the estimators do.
"""

import math
from numbers import Integral, Real

import numpy as np
from sklearn.utils import check_array, check_random_state
from sklearn.utils.validation import _check_sample_weight

from . import _engine, kernels
from ._buffers import aligned_empty, aligned_zeros
from ._solvers import StochasticOptimizer

HIDDEN_ACTIVATIONS = ("identity", "logistic", "tanh", "relu", "leaky_relu", "gelu", "silu", "softplus")
OUTPUT_ACTIVATIONS = ("identity", "logistic", "tanh", "relu", "exp", "softmax")
LOSSES = tuple(kernels.LOSS_CODES)


def layer_views(network, params):
    """Per-layer views of a flat parameter vector laid out as ``network.params``.

    Returns
    -------
    coefs : list of ndarray of shape (fan_in, fan_out)
    intercepts : list of ndarray of shape (fan_out,)
    """
    coefs, intercepts = [], []
    for fan_in, fan_out, coef_offset, intercept_offset, _ in network.layers:
        coefs.append(params[coef_offset : coef_offset + fan_in * fan_out].reshape(fan_in, fan_out))
        intercepts.append(params[intercept_offset : intercept_offset + fan_out])
    return coefs, intercepts


def validate_input(network, X):
    """Check user rows for ``network`` and lay them out for the kernels; return a KernelInput."""
    X = check_array(X, accept_sparse=["csr", "csc"], dtype=network.dtype)
    if X.shape[1] != network.layer_units[0]:
        raise ValueError(
            f"X has {X.shape[1]} features, but the network's input layer has "
            f"{network.layer_units[0]} units."
        )
    return _engine.KernelInput(X, network.dtype)


def validate_targets(network, X_input, Y, sample_weight):
    """Check user targets and sample weights for the rows ``X_input``; return both as C arrays of the network's dtype."""
    Y = check_array(Y, ensure_2d=False, dtype=network.dtype)
    if Y.ndim == 1:
        Y = Y.reshape(-1, 1)
    if Y.shape != (X_input.n_samples, network.layer_units[-1]):
        raise ValueError(
            f"Y has shape {Y.shape}, expected ({X_input.n_samples}, {network.layer_units[-1]})."
        )
    sample_weight = _check_sample_weight(
        sample_weight, np.empty((X_input.n_samples, 0)), dtype=network.dtype, ensure_non_negative=True
    )
    # scikit-learn 1.8+ says so itself; the objective divides by the weights' sum
    if not (sample_weight > 0).any():
        raise ValueError("Sample weights must contain at least one non-zero number.")
    return np.ascontiguousarray(Y), np.ascontiguousarray(sample_weight)


def _check_descent_settings(learning_rate, alpha, momentum=0.0, n_epochs=1, max_grad_norm=None):
    """Raise ValueError naming a setting of :meth:`Network.step` / :meth:`Network.train` that is unusable."""
    numbers = [
        ("learning_rate", learning_rate, lambda v: 0 < v < math.inf, "a finite number > 0"),
        ("alpha", alpha, lambda v: 0 <= v < math.inf, "a finite number >= 0"),
        ("momentum", momentum, lambda v: 0 <= v < 1, "a number in [0, 1)"),
    ]
    if max_grad_norm is not None:
        numbers.append(("max_grad_norm", max_grad_norm, lambda v: 0 < v, "None or a number > 0"))
    for name, value, usable, wanted in numbers:
        if isinstance(value, bool) or not isinstance(value, Real) or not usable(value):
            raise ValueError(f"{name} must be {wanted}, got {value!r}.")
    if isinstance(n_epochs, bool) or not isinstance(n_epochs, Integral) or n_epochs < 1:
        raise ValueError(f"n_epochs must be an integer >= 1, got {n_epochs!r}.")


class Network:
    """A dense feed-forward network whose parameters live in one flat buffer.

    Parameters
    ----------
    layer_units : sequence of int
        Units per layer, input first: ``(n_features, *hidden, n_outputs)``.
    activation : str or sequence of str, default="relu"
        Activation of the hidden layers: one name for all, or one per layer,
        among "identity", "logistic", "tanh", "relu", "leaky_relu" (slope
        0.01 below 0), "gelu" (exact erf form), "silu" and "softplus"
        (see ``fastbp.kernels.activations``).
    out_activation : {"identity", "logistic", "tanh", "relu", "exp", "softmax"}, default="identity"
        Activation of the output layer.
    loss : {"squared_error", "poisson", "log_loss", "binary_log_loss", "absolute_error", "huber"}, \
default="squared_error"
        Loss minimised; log losses require their canonical output activation
        (softmax, logistic) and poisson requires exp, while the regression
        losses (squared error, absolute error, huber) may follow any
        elementwise output activation. Absolute error and huber average
        over the outputs (see :meth:`loss_and_gradient`).
    bias : bool, default=True
        Whether layers have trained intercepts; without, intercepts stay zero.
    dtype : {np.float64, np.float32}, default=np.float64
        Dtype of parameters and computation.
    huber_delta : float, default=1.0
        Threshold of the huber loss between its quadratic and linear parts
        (used with ``loss="huber"`` only).

    Attributes
    ----------
    params : ndarray of shape (n_params,)
        All parameters: weights row-major, then intercepts.
    coefs : list of ndarray of shape (fan_in, fan_out)
        Views of the weights in ``params``, one per layer.
    intercepts : list of ndarray of shape (fan_out,)
        Views of the intercepts in ``params``, one per layer.
    layer_units : tuple of int
        Units per layer, input first.
    activations : tuple of str
        Activation of each layer after the input: the hidden ones, then the
        output's.
    loss : str
        The loss minimised.
    huber_delta : float
        Threshold of the huber loss.
    bias : bool
        Whether the layers have trained intercepts.
    dtype : numpy.dtype
        Dtype of parameters and computation.
    n_params : int
        Number of parameters, weights and intercepts.
    layers : ndarray of shape (n_layers, 5)
        Layer table passed to the kernels: fan-in, fan-out, offsets of the
        weights and of the intercepts in ``params``, activation code.
    kernel_codes : tuple
        The codes the network's kernels are compiled for (see
        ``fastbp.kernels.network_codes``).
    slope_units : int
        Units per row whose activation's derivative a training pass keeps
        (those of gelu and silu layers).
    version : int
        Raised by one before and after trained weights are copied into
        ``params`` (:meth:`publish`): odd while they are copied. Predictions
        made in other threads meanwhile use it to see the weights from
        before or after a training call, never a mix.

    See Also
    --------
    check_gradients : Compare the gradients with finite differences.
    MLPClassifier, MLPRegressor : The estimators built on this network.

    Examples
    --------
    >>> import numpy as np
    >>> from fastbp import Network
    >>> net = Network((2, 3, 1), activation="tanh").init_weights(0)
    >>> net.predict(np.ones((4, 2))).shape
    (4, 1)
    >>> [coef.shape for coef in net.coefs]
    [(2, 3), (3, 1)]
    """

    def __init__(
        self,
        layer_units,
        activation="relu",
        out_activation="identity",
        loss="squared_error",
        *,
        bias=True,
        dtype=np.float64,
        huber_delta=1.0,
    ):
        if any(isinstance(u, bool) or not isinstance(u, Integral) for u in layer_units):
            raise ValueError(f"layer_units must be integers, got {layer_units}.")
        self.layer_units = tuple(int(u) for u in layer_units)
        if len(self.layer_units) < 2 or min(self.layer_units) < 1:
            raise ValueError(
                f"layer_units must list at least two positive sizes, got {layer_units}."
            )
        n_hidden = len(self.layer_units) - 2
        hidden = [activation] * n_hidden if isinstance(activation, str) else list(activation)
        if len(hidden) != n_hidden:
            raise ValueError(
                f"Got {len(hidden)} hidden activations for {n_hidden} hidden layers."
            )
        for name in hidden:
            if name not in HIDDEN_ACTIVATIONS:
                raise ValueError(
                    f"Unknown hidden activation {name!r}; expected one of {HIDDEN_ACTIVATIONS}."
                )
        if out_activation not in OUTPUT_ACTIVATIONS:
            raise ValueError(
                f"Unknown output activation {out_activation!r}; expected one of "
                f"{OUTPUT_ACTIVATIONS}."
            )
        if loss not in kernels.LOSS_CODES:
            raise ValueError(f"Unknown loss {loss!r}; expected one of {LOSSES}.")
        loss_code = kernels.LOSS_CODES[loss]
        out_code = kernels.ACTIVATION_CODES[out_activation]
        if out_code != kernels.CANONICAL_OUTPUT[loss_code] and (
            loss_code not in kernels.REGRESSION_LOSSES or out_activation == "softmax"
        ):
            raise ValueError(
                f"loss={loss!r} cannot follow out_activation={out_activation!r}."
            )
        if isinstance(huber_delta, bool) or not isinstance(huber_delta, Real) or not huber_delta > 0:
            raise ValueError(f"huber_delta must be a number > 0, got {huber_delta!r}.")
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype}.")
        self.activations = tuple(hidden) + (out_activation,)
        self.loss = loss
        self.huber_delta = float(huber_delta)
        self.bias = bool(bias)
        self.layers = self._layer_table()
        _engine.require_memory(
            self.n_params * self.dtype.itemsize,
            f"A network of layer sizes {self.layer_units} ({self.n_params:,} parameters)",
        )
        self.params = aligned_zeros(self.n_params, self.dtype)
        self.version = 0
        self._make_views()

    def _layer_table(self):
        units = self.layer_units
        n_coefs = sum(a * b for a, b in zip(units[:-1], units[1:]))
        table = np.empty((len(units) - 1, 5), dtype=np.int64)
        coef_offset, intercept_offset = 0, n_coefs
        for l, (fan_in, fan_out) in enumerate(zip(units[:-1], units[1:])):
            code = kernels.ACTIVATION_CODES[self.activations[l]]
            table[l] = (fan_in, fan_out, coef_offset, intercept_offset, code)
            coef_offset += fan_in * fan_out
            intercept_offset += fan_out
        self.n_params = intercept_offset
        self.kernel_codes = kernels.network_codes(table, kernels.LOSS_CODES[self.loss])
        self.slope_units = kernels.slope_units(table)
        return table

    def _make_views(self):
        self.coefs, self.intercepts = layer_views(self, self.params)
        # what :meth:`owns` checks: the views made, with their shapes and strides
        self._views = [(view, view.shape, view.strides) for view in self.coefs + self.intercepts]

    def __getstate__(self):
        # the views are remade from ``params`` on unpickling: pickled apart,
        # they would come back as copies that no longer share its memory
        state = dict(self.__dict__)
        for name in ("coefs", "intercepts", "_views", "version", "kernel_codes", "slope_units"):
            state.pop(name, None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.version = 0
        # a network pickled before these existed
        self.__dict__.setdefault("huber_delta", 1.0)
        self.kernel_codes = kernels.network_codes(self.layers, self.loss_code)
        self.slope_units = kernels.slope_units(self.layers)
        params = aligned_empty(self.n_params, self.dtype)
        params[:] = state["params"]
        self.params = params
        self._make_views()

    @property
    def n_layers(self):
        """Number of weight layers (hidden layers plus the output layer)."""
        return len(self.layer_units) - 1

    @property
    def loss_code(self):
        """Integer code of ``loss`` in the kernels' tables."""
        return kernels.LOSS_CODES[self.loss]

    def set_weights(self, coefs, intercepts=None):
        """Copy weights (and intercepts) into the flat buffer.

        Parameters
        ----------
        coefs : list of array-like of shape (fan_in, fan_out)
            One weight matrix per layer.
        intercepts : list of array-like of shape (fan_out,), default=None
            One intercept vector per layer; None sets them to zero.
        """
        # every shape is checked before anything is copied: a failed call changes nothing
        coefs = [np.asarray(coef, dtype=self.dtype) for coef in coefs]
        if len(coefs) != self.n_layers:
            raise ValueError(f"Expected {self.n_layers} weight matrices, got {len(coefs)}.")
        for l, coef in enumerate(coefs):
            if coef.shape != self.coefs[l].shape:
                raise ValueError(
                    f"Weight matrix {l} has shape {coef.shape}, expected {self.coefs[l].shape}."
                )
        if intercepts is not None:
            intercepts = [np.asarray(intercept, dtype=self.dtype) for intercept in intercepts]
            if len(intercepts) != self.n_layers:
                raise ValueError(
                    f"Expected {self.n_layers} intercept vectors, got {len(intercepts)}."
                )
            for l, intercept in enumerate(intercepts):
                if intercept.shape != self.intercepts[l].shape:
                    raise ValueError(
                        f"Intercept {l} has shape {intercept.shape}, expected "
                        f"{self.intercepts[l].shape}."
                    )
        for l in range(self.n_layers):
            self.coefs[l][...] = coefs[l]
            self.intercepts[l][...] = 0 if intercepts is None else intercepts[l]

    def publish(self, params):
        """Copy trained parameters into ``params``, raising :attr:`version` before and after.

        Parameters
        ----------
        params : ndarray of shape (n_params,)
            The new parameters, in the layout of ``params``.
        """
        self.version += 1
        try:
            self.params[:] = params
        finally:
            self.version += 1

    def copy(self, dtype=None):
        """Return an independent copy of the network, optionally in another dtype.

        Parameters
        ----------
        dtype : {np.float64, np.float32}, default=None
            Dtype of the copy; None keeps this network's.

        Returns
        -------
        network : Network
            A new network with the same layers, activations, loss and
            parameters (converted to ``dtype``).
        """
        network = Network(
            self.layer_units,
            activation=self.activations[:-1],
            out_activation=self.activations[-1],
            loss=self.loss,
            bias=self.bias,
            dtype=self.dtype if dtype is None else dtype,
            huber_delta=self.huber_delta,
        )
        network.params[:] = self.params
        return network

    def get_weights(self):
        """Return copies of the weights and intercepts as two lists of arrays.

        Returns
        -------
        coefs : list of ndarray of shape (fan_in, fan_out)
            Copies of the weight matrices, one per layer.
        intercepts : list of ndarray of shape (fan_out,)
            Copies of the intercept vectors, one per layer.
        """
        return [c.copy() for c in self.coefs], [b.copy() for b in self.intercepts]

    def owns(self, coefs, intercepts):
        """Whether the lists ``coefs`` and ``intercepts`` are this network's views.

        Parameters
        ----------
        coefs : list of ndarray
            A list of weight matrices, such as an estimator's ``coefs_``.
        intercepts : list of ndarray
            A list of intercept vectors, such as an estimator's ``intercepts_``.

        Returns
        -------
        owned : bool
            True when both are the very lists of views this network made,
            with every view unmoved (same shape and strides).
        """
        # the views it made, unmoved (an ndarray's data pointer cannot be
        # changed, its shape and strides can): checking identity, shape and
        # strides is much cheaper than comparing data addresses
        if coefs is not self.coefs or intercepts is not self.intercepts:
            return False
        views = coefs + intercepts
        return len(views) == len(self._views) and all(
            view is made and view.shape == shape and view.strides == strides
            for view, (made, shape, strides) in zip(views, self._views)
        )

    # ------------------------------------------------------------------
    # Backpropagation on user arrays

    def init_weights(self, random_state=None):
        """Draw Glorot-uniform weights and intercepts, as scikit-learn's MLP does.

        Each layer's weights and then intercepts are drawn from
        ``U(-b, b)`` with ``b = sqrt(f / (fan_in + fan_out))``, ``f = 2`` for
        a logistic first hidden activation and 6 otherwise.

        Parameters
        ----------
        random_state : int, RandomState instance or None, default=None
            Source of the draws.

        Returns
        -------
        self : Network
        """
        rng = check_random_state(random_state)
        factor = 2.0 if self.activations[0] == "logistic" else 6.0
        for l, (fan_in, fan_out) in enumerate(zip(self.layer_units[:-1], self.layer_units[1:])):
            bound = np.sqrt(factor / (fan_in + fan_out))
            self.coefs[l][...] = rng.uniform(-bound, bound, (fan_in, fan_out))
            intercept = rng.uniform(-bound, bound, fan_out)
            self.intercepts[l][...] = intercept if self.bias else 0
        return self

    def predict(self, X):
        """Output of the network for every row of X.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input rows.

        Returns
        -------
        output : ndarray of shape (n_samples, n_outputs)
            The last layer's activations ``A[L]``.
        """
        return _engine.predict(self, validate_input(self, X))

    def _split_rows(self, buffer, n_rows):
        """Per-layer (n_rows, fan_out) copies of a work buffer filled for n_rows rows."""
        blocks, start = [], 0
        for fan_out in self.layer_units[1:]:
            blocks.append(buffer[start : start + n_rows * fan_out].reshape(n_rows, fan_out).copy())
            start += n_rows * fan_out
        return blocks

    def forward(self, X):
        """Forward pass keeping every layer's pre-activation and activation.

        With rows as samples, ``Z[l] = A[l-1] W[l] + b[l]`` and
        ``A[l] = g[l](Z[l])`` for l = 1..L, ``A[0] = X``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input rows.

        Returns
        -------
        Z : list of ndarray
            ``Z[l - 1]`` is layer l's pre-activation, of shape (n_samples, units[l]).
        A : list of ndarray
            ``A[0]`` is X (as validated) and ``A[l]`` layer l's activation.
        """
        X_input = validate_input(self, X)
        n_rows = X_input.n_samples
        work = _engine.Workspace(self, max(n_rows, 1))
        zs = np.empty_like(work.acts)
        rows = np.arange(n_rows, dtype=np.int64)
        hidden_code, out_code, _ = self.kernel_codes
        kernels.forward_recording(
            *X_input.arrays, rows, self.params, self.layers, work.acts, work.capacity, zs, None,
            None, hidden_code, out_code, False,
        )
        inputs = X if X_input.sparse else X_input.dense
        return self._split_rows(zs, n_rows), [inputs] + self._split_rows(work.acts, n_rows)

    def backward(self, X, Y, sample_weight=None, alpha=0.0):
        """Forward pass, loss and backward pass, keeping every intermediate.

        Returns the gradients of the objective ``J`` of
        :meth:`loss_and_gradient`. With ``S = sum_i s_i``::

            dZ[L] = s_i dJ_i/dZ[L] / S        (= s_i (A[L] - Y) / S for canonical pairs)
            dW[l] = A[l-1]^T dZ[l] + alpha W[l] / S      db[l] = sum_rows dZ[l]
            dA[l-1] = dZ[l] W[l]^T            dZ[l-1] = dA[l-1] * g'[l-1](Z[l-1])

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input rows.
        Y : array-like of shape (n_samples, n_outputs) or (n_samples,)
            Targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Row weights; None weighs every row 1.
        alpha : float, default=0.0
            L2 strength (intercepts are not penalised).

        Returns
        -------
        result : dict
            ``"loss"`` (float), ``"Z"`` and ``"A"`` as returned by
            :meth:`forward`, and per layer l = 1..L (list index l - 1):
            ``"dZ"``, ``"dW"``, ``"db"``, and ``"dA"``, whose last entry is
            dJ/dA[L] for the regression losses (squared error, absolute
            error, huber) and None for the other losses.
        """
        X_input = validate_input(self, X)
        Y, sample_weight = validate_targets(self, X_input, Y, sample_weight)
        n_rows = X_input.n_samples
        work = _engine.Workspace(self, max(n_rows, 1))
        zs, dAs = np.empty_like(work.acts), np.zeros_like(work.deltas)
        rows = np.arange(n_rows, dtype=np.int64)
        loss = kernels.batch_loss_and_gradient_recording[self.kernel_codes](
            *X_input.arrays, rows, Y, sample_weight, self.params, self.layers, work.acts, work.deltas,
            work.slopes, work.capacity, work.grads, 0.0 + alpha, self.loss_code, 1.0,
            float(np.finfo(self.dtype).eps), self.huber_delta, self.bias, zs, dAs, None,
        )
        weight_sum = sample_weight.sum(dtype=np.float64)
        A = self._split_rows(work.acts, n_rows)
        dA = [block / weight_sum for block in self._split_rows(dAs, n_rows)[:-1]]
        if self.loss_code in kernels.REGRESSION_LOSSES:
            output_error = np.empty_like(A[-1])
            kernels.output_delta(  # the error before the output activation's derivative
                A[-1], Y, sample_weight, kernels.ACTIVATION_CODES["identity"], self.loss_code,
                self.huber_delta, output_error,
            )
            dA.append(output_error / weight_sum)
        else:
            dA.append(None)
        grads = work.grads
        inputs = X if X_input.sparse else X_input.dense
        return {
            "loss": loss,
            "Z": self._split_rows(zs, n_rows),
            "A": [inputs] + A,
            "dZ": [block / weight_sum for block in self._split_rows(work.deltas, n_rows)],
            "dW": [grads[o : o + a * b].reshape(a, b).copy() for a, b, o, _, _ in self.layers],
            "db": [grads[o : o + b].copy() for _, b, _, o, _ in self.layers],
            "dA": dA,
        }

    def loss_and_gradient(self, X, Y, sample_weight=None, alpha=0.0):
        """Objective and its gradient with respect to ``params``.

        The objective is ``J = (1/S) sum_i s_i loss_i + alpha/2 ||W||^2 / S``
        with ``S = sum_i s_i``, where ``loss_i`` sums the network's loss over
        the ``k`` outputs of row i (for squared error
        ``1/2 sum_j (a_ij - y_ij)^2``), except absolute error and huber, which
        average over them: ``(1/k) sum_j |r_ij|`` and ``(1/k) sum_j h(r_ij)``
        with ``r = a - y`` and ``h(r) = r^2 / 2`` if ``|r| < delta``, else
        ``delta (|r| - delta / 2)`` (``delta = huber_delta``). With unit
        weights these are PyTorch's ``L1Loss()`` and ``HuberLoss(delta)``; at
        ``r = 0`` the gradient of ``|r|`` is taken as 0, as PyTorch does.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input rows.
        Y : array-like of shape (n_samples, n_outputs) or (n_samples,)
            Targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Row weights; None weighs every row 1.
        alpha : float, default=0.0
            L2 strength (intercepts are not penalised).

        Returns
        -------
        loss : float
            The objective J.
        grad : ndarray of shape (n_params,)
            dJ/dparams in the layout of ``params``.
        """
        X_input = validate_input(self, X)
        Y, sample_weight = validate_targets(self, X_input, Y, sample_weight)
        loss, grad = _engine.Objective(self, X_input, Y, sample_weight, alpha)()
        return loss, grad.copy()

    def step(self, X, Y, learning_rate, sample_weight=None, alpha=0.0):
        """One gradient-descent step on the given rows: ``params -= lr * dJ/dparams``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input rows.
        Y : array-like of shape (n_samples, n_outputs) or (n_samples,)
            Targets.
        learning_rate : float
            Step size.
        sample_weight : array-like of shape (n_samples,), default=None
            Row weights; None weighs every row 1.
        alpha : float, default=0.0
            L2 strength (intercepts are not penalised).

        Returns
        -------
        loss : float
            The objective before the step.
        """
        _check_descent_settings(learning_rate, alpha)
        X_input = validate_input(self, X)
        Y, sample_weight = validate_targets(self, X_input, Y, sample_weight)
        loss, grad = _engine.Objective(self, X_input, Y, sample_weight, alpha)()
        no_velocity = np.zeros(self.n_params, dtype=self.dtype)
        kernels.sgd_step(
            self.params, grad, no_velocity, self.dtype.type(learning_rate), self.dtype.type(0), False
        )
        return loss

    def train(self, X, Y, *, mode="standard", learning_rate=0.1, n_epochs=1,
              sample_weight=None, alpha=0.0, momentum=0.0, max_grad_norm=None):
        """Train with plain (momentum) gradient descent in one compiled call per epoch.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input rows.
        Y : array-like of shape (n_samples, n_outputs) or (n_samples,)
            Targets.
        mode : {"standard", "accumulated"}, default="standard"
            "standard" updates after every single row, in order (the
            textbook's standard BP); "accumulated" updates once per epoch
            with the gradient of the whole set (accumulated BP).
        learning_rate : float, default=0.1
            Step size.
        n_epochs : int, default=1
            Passes over the data.
        sample_weight : array-like of shape (n_samples,), default=None
            Row weights; None weighs every row 1.
        alpha : float, default=0.0
            L2 strength (intercepts are not penalised).
        momentum : float, default=0.0
            Classical momentum.
        max_grad_norm : float, default=None
            Clip the gradient of each update (the L2 term's included) to this
            L2 norm: it is multiplied by ``max_grad_norm / (norm + 1e-6)``
            when that is below 1. None does not clip.

        Returns
        -------
        losses : list of float
            Per epoch, the mean over updates of the objective just before
            each update (each weighted by its number of rows).
        """
        if mode not in ("standard", "accumulated"):
            raise ValueError(f"mode must be 'standard' or 'accumulated', got {mode!r}.")
        _check_descent_settings(learning_rate, alpha, momentum, n_epochs, max_grad_norm)
        X_input = validate_input(self, X)
        Y, sample_weight = validate_targets(self, X_input, Y, sample_weight)
        n_samples = X_input.n_samples
        order = np.arange(n_samples, dtype=np.int64)
        if mode == "standard":
            # a row of weight 0 carries no gradient: as a mini-batch of its own it would divide 0 by 0
            order = order[sample_weight[order] > 0]
            batch_size = 1
        else:
            batch_size = n_samples
        optimizer = StochasticOptimizer(
            "sgd", self.n_params, self.dtype, learning_rate, momentum=momentum, nesterov=False
        )
        # trained in a copy: a call that diverges leaves the network as it was
        params = aligned_empty(self.n_params, self.dtype)
        params[:] = self.params
        losses = []
        with _engine.EpochTrainer(
            self, params, X_input, Y, sample_weight, batch_size, optimizer, alpha, max_grad_norm=max_grad_norm
        ) as trainer:
            for epoch in range(n_epochs):
                loss = trainer.run(order) / order.shape[0]
                if not (np.isfinite(loss) and np.isfinite(params).all()):
                    raise ValueError(
                        f"Training diverged in epoch {epoch + 1} (the loss became {loss}); the "
                        "network was left as it was before this call. Try a smaller "
                        "learning_rate or scaling X."
                    )
                losses.append(loss)
        self.publish(params)
        return losses

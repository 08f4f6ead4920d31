"""The network the estimators are built on: layers, one flat parameter buffer, kernel calls.

``Network`` owns the parameters of a dense feed-forward network in a single
flat vector laid out as scikit-learn packs them for L-BFGS (every weight
matrix row-major, then every intercept vector); ``coefs`` and ``intercepts``
are views into it, so code that reads or writes them in place sees the same
numbers the kernels train. It validates nothing about user data: callers
hand it arrays already checked and converted.
"""

import contextlib
import math
import os
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from sklearn.utils import check_array, check_random_state
from sklearn.utils.validation import _check_sample_weight

from . import _threads, kernels
from ._buffers import aligned_empty, aligned_zeros
from ._solvers import StochasticOptimizer, run_epoch
from ._threads import (
    chunk_blocks,
    multiply_adds_per_row,
    prediction_team,
    release_prediction_workers,
    row_blocks,
    training_threads,
)

HIDDEN_ACTIVATIONS = ("identity", "logistic", "tanh", "relu")
OUTPUT_ACTIVATIONS = ("identity", "logistic", "tanh", "relu", "exp", "softmax")

# Rows of work buffers per chunk are bounded so that a chunk's activations
# stay around this many elements.
_CHUNK_ELEMENTS = 1 << 20
# A prediction is cut into at least this many chunks when it has rows enough.
_PREDICTION_CHUNKS = 8
# The L-BFGS objective over rows enough is computed in this many blocks.
_OBJECTIVE_BLOCKS = 2
# The ``labels`` argument of ``kernels.predict`` when only outputs are wanted,
# and its ``board`` when no team of threads shares the chunks.
_NO_LABELS = np.empty(0, dtype=np.int64)
_NO_BOARD = np.empty(0, dtype=np.int64)


class KernelInput:
    """Input rows in the form the kernels take: dense C array or CSR arrays.

    Parameters
    ----------
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)
        Validated input of a float dtype.
    dtype : numpy dtype
        The dtype the kernels compute in.
    """

    def __init__(self, X, dtype):
        self.n_samples, self.n_features = X.shape
        self.sparse = sp.issparse(X)
        if self.sparse:
            X = X.tocsr()
            index_dtype = np.int32 if X.nnz < np.iinfo(np.int32).max else np.int64
            self.dense = np.empty((0, self.n_features), dtype=dtype)
            self.csr = (
                np.ascontiguousarray(X.data, dtype=dtype),
                np.ascontiguousarray(X.indices, dtype=index_dtype),
                np.ascontiguousarray(X.indptr, dtype=index_dtype),
            )
        else:
            self.dense = np.ascontiguousarray(X, dtype=dtype)
            self.csr = None

    @property
    def arrays(self):
        """The ``(X, csr)`` arguments of a kernel (X is a dummy for CSR input)."""
        return self.dense, self.csr

    @property
    def inputs_per_row(self):
        """Mean non-zeros per row of a CSR input; None for dense input."""
        if self.csr is None:
            return None
        return self.csr[0].shape[0] / max(self.n_samples, 1)

    def row_block(self, start, stop):
        """The ``(X, csr)`` arguments of a kernel for the rows ``start:stop``."""
        if self.csr is None:
            return self.dense[start:stop], None
        data, indices, indptr = self.csr
        return self.dense, (data, indices, indptr[start : stop + 1])


def available_memory():
    """Bytes of memory available to this process now (None when unknown)."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


# Allocations below this are not checked: NumPy raises MemoryError itself
# when they fail, and reading /proc/meminfo costs ~20-70 us per call, twice
# per fit (1% of a 12 ms online fit).
_UNCHECKED_BYTES = 64 * 2**20


def require_memory(n_bytes, what):
    """Raise MemoryError, before allocating, when ``n_bytes`` (above 64 MiB) cannot fit in memory."""
    if n_bytes < _UNCHECKED_BYTES:
        return
    available = available_memory()
    if available is not None and n_bytes > available:
        raise MemoryError(
            f"{what} needs about {n_bytes / 2**30:.2f} GiB but only "
            f"{available / 2**30:.2f} GiB of memory is available. Use smaller "
            "hidden_layer_sizes, a smaller batch_size or float32 data."
        )


def check_memory(layer_units, X, solver, batch_size):
    """Check, before allocating anything, that training this network fits in memory.

    Counts the parameters with their gradient, optimizer state and best-weight
    copy (L-BFGS keeps about 25 float64 vectors of them), and the activation
    and error buffers of one mini-batch or chunk.
    """
    itemsize = np.dtype(X.dtype).itemsize
    n_params = sum(a * b for a, b in zip(layer_units[:-1], layer_units[1:])) + sum(layer_units[1:])
    n_samples = X.shape[0]
    if solver == "lbfgs":
        # each block of rows of the objective has its own buffers and gradient
        rows = min(n_samples, _OBJECTIVE_BLOCKS * chunk_rows(n_samples, layer_units))
        param_bytes = n_params * ((2 + 2 * _OBJECTIVE_BLOCKS) * itemsize + 25 * 8)
    else:
        rows = min(200, n_samples) if batch_size == "auto" else min(batch_size, n_samples)
        # parameters, the parts' gradients, two optimizer buffers, two copies
        parts = _threads.epoch_parts(rows, layer_units)
        param_bytes = n_params * (5 + parts) * itemsize
    work_bytes = 2 * rows * sum(layer_units[1:]) * itemsize + n_samples * layer_units[-1] * itemsize
    sizes = "-".join(str(u) for u in layer_units)
    require_memory(
        param_bytes + work_bytes,
        f"Training a {sizes} network ({n_params:,} parameters) with solver={solver!r}",
    )


def chunk_rows(n_samples, layer_units):
    """Rows per chunk for full-data passes (L-BFGS objective, gradients)."""
    per_row = max(1, sum(layer_units[1:]))
    return int(max(1, min(n_samples, max(64, _CHUNK_ELEMENTS // per_row))))


def prediction_chunk_rows(n_samples, layer_units):
    """Rows per chunk of a prediction: :func:`chunk_rows`, cut so there are enough chunks to share.

    At least :data:`_PREDICTION_CHUNKS` chunks (of at least
    ``_threads.MIN_BLOCK_ROWS`` rows) when there are rows enough, so that
    worker threads can share them (see ``_threads.row_blocks``). The
    size depends only on the data's length and the network, never on the
    machine, so neither do the results.
    """
    wanted = max(_threads.MIN_BLOCK_ROWS, -(-n_samples // _PREDICTION_CHUNKS))
    return min(chunk_rows(n_samples, layer_units), wanted)


class Workspace:
    """Work buffers of a full-data pass or a prediction, allocated once and reused.

    Parameters
    ----------
    network : Network
        The network whose layer table fixes the buffer sizes.
    capacity : int
        Maximum rows per chunk.
    slots : int, default=1
        Threads that share a prediction: ``acts`` and ``rows`` hold a slot
        for each.
    """

    def __init__(self, network, capacity, slots=1):
        dtype = network.dtype
        self.capacity = capacity
        # plain NumPy buffers: a prediction makes new ones at every call, where
        # aligned ones cost more in making (~3 us each) than they save
        units = sum(network.layer_units[1:])
        self.acts = np.empty(slots * capacity * units, dtype=dtype)
        self.deltas = np.empty(capacity * units, dtype=dtype)
        self.grads = np.empty(network.n_params, dtype=dtype)
        self.rows = np.empty(slots * capacity, dtype=np.int64)


class EpochWorkspace:
    """Work buffers of ``kernels.train_epoch``: one set per part of a mini-batch.

    Each mini-batch is cut into ``n_parts`` parts (see
    ``_threads.epoch_parts``), which threads may compute at once; every
    buffer has one row per part.

    Parameters
    ----------
    network : Network
        The network whose layer table fixes the buffer sizes.
    batch_size : int
        Rows per mini-batch.
    sparse : bool, default=False
        Whether the input is CSR (then no dense row buffer is needed).

    Attributes
    ----------
    n_parts : int
        Parts per mini-batch.
    capacity : int
        Rows per part.
    sync : ndarray of shape (n_parts + 2,)
        The kernels' barrier counters, abort flag and epoch count.
    order : ndarray of shape (n_train,)
        The row order of the current epoch.
    hyper : ndarray of shape (N_HYPER,)
        The optimizer's hyper-parameters for the current epoch.
    """

    def __init__(self, network, batch_size, *, sparse=False):
        dtype = network.dtype
        units = network.layer_units
        self.n_parts = n_parts = _threads.epoch_parts(batch_size, units)
        self.capacity = capacity = -(-batch_size // n_parts)
        self.acts = aligned_empty((n_parts, capacity * sum(units[1:])), dtype)
        self.deltas = aligned_empty(self.acts.shape, dtype)
        self.grads = aligned_empty((n_parts, network.n_params), dtype)
        # sparse batches are read straight from the CSR arrays
        self.Xb = aligned_empty((n_parts, 0 if sparse else capacity, units[0]), dtype)
        self.Yb = aligned_empty((n_parts, capacity, units[-1]), dtype)
        self.swb = aligned_empty((n_parts, capacity), dtype)
        self.rows = np.empty((n_parts, capacity), dtype=np.int64)
        self.part_sums = np.empty((n_parts, 3))
        self.sync = np.zeros(n_parts + 2, dtype=np.int64)
        # the epoch's row order and hyper-parameters, rewritten in place at each epoch
        self.order = None
        self.hyper = np.empty(kernels.N_HYPER)


class ObjectiveWorkspace:
    """Buffers of the full-data objective: one :class:`Workspace` per block of rows.

    Rows enough for ``_threads.PARALLEL_WORK`` multiply-adds are cut into
    :data:`_OBJECTIVE_BLOCKS` blocks whose raw sums are added in order,
    whatever the number of cores, so that worker threads can share them
    without changing the result.

    Parameters
    ----------
    network : Network
        The network whose layer table fixes the buffer sizes.
    n_samples : int
        Rows of the data.

    Attributes
    ----------
    bounds : list of int
        Block k covers rows ``bounds[k]`` to ``bounds[k + 1]``.
    blocks : list of Workspace
        Each block's buffers, with a ``scratch`` gradient buffer.
    """

    def __init__(self, network, n_samples):
        n_blocks = 1
        big = n_samples * multiply_adds_per_row(network.layer_units) >= _threads.PARALLEL_WORK
        if big and n_samples >= _OBJECTIVE_BLOCKS * _threads.MIN_BLOCK_ROWS:
            n_blocks = _OBJECTIVE_BLOCKS
        self.bounds = [n_samples * k // n_blocks for k in range(n_blocks + 1)]
        self.blocks = []
        for start, stop in zip(self.bounds[:-1], self.bounds[1:]):
            block = Workspace(network, max(1, chunk_rows(stop - start, network.layer_units)))
            block.scratch = np.empty(network.n_params, dtype=network.dtype)
            self.blocks.append(block)


def _check_descent_settings(learning_rate, alpha, momentum=0.0, n_epochs=1):
    """Raise ValueError naming a setting of :meth:`Network.step` / :meth:`Network.train` that is unusable."""
    numbers = [
        ("learning_rate", learning_rate, lambda v: 0 < v < math.inf, "a finite number > 0"),
        ("alpha", alpha, lambda v: 0 <= v < math.inf, "a finite number >= 0"),
        ("momentum", momentum, lambda v: 0 <= v < 1, "a number in [0, 1)"),
    ]
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
        Activation of the hidden layers: one name for all, or one per layer.
    out_activation : str, default="identity"
        Activation of the output layer.
    loss : {"squared_error", "poisson", "log_loss", "binary_log_loss"}, default="squared_error"
        Loss minimised; log losses require their canonical output activation
        (softmax, logistic) and poisson requires exp, while squared error may
        follow any elementwise output activation.
    bias : bool, default=True
        Whether layers have trained intercepts; without, intercepts stay zero.
    dtype : {np.float64, np.float32}, default=np.float64
        Dtype of parameters and computation.

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
    bias : bool
        Whether the layers have trained intercepts.
    dtype : numpy.dtype
        Dtype of parameters and computation.
    n_params : int
        Number of parameters, weights and intercepts.
    layers : ndarray of shape (n_layers, 5)
        Layer table passed to the kernels: fan-in, fan-out, offsets of the
        weights and of the intercepts in ``params``, activation code.

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
            raise ValueError(
                f"Unknown loss {loss!r}; expected one of {tuple(kernels.LOSS_CODES)}."
            )
        canonical = kernels.CANONICAL_OUTPUT[kernels.LOSS_CODES[loss]]
        out_code = kernels.ACTIVATION_CODES[out_activation]
        if out_code != canonical and (loss != "squared_error" or out_activation == "softmax"):
            raise ValueError(
                f"loss={loss!r} cannot follow out_activation={out_activation!r}."
            )
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype}.")
        self.activations = tuple(hidden) + (out_activation,)
        self.loss = loss
        self.bias = bool(bias)
        self.layers = self._layer_table()
        require_memory(
            self.n_params * self.dtype.itemsize,
            f"A network of layer sizes {self.layer_units} ({self.n_params:,} parameters)",
        )
        self.params = aligned_zeros(self.n_params, self.dtype)
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
        return table

    def _make_views(self):
        self.coefs = []
        self.intercepts = []
        for fan_in, fan_out, coef_offset, intercept_offset, _ in self.layers:
            self.coefs.append(
                self.params[coef_offset : coef_offset + fan_in * fan_out].reshape(fan_in, fan_out)
            )
            self.intercepts.append(self.params[intercept_offset : intercept_offset + fan_out])
        # what :meth:`owns` checks: the views made, with their shapes and strides
        self._views = [(view, view.shape, view.strides) for view in self.coefs + self.intercepts]

    def __getstate__(self):
        # the views are remade from ``params`` on unpickling: pickled apart,
        # they would come back as copies that no longer share its memory
        state = dict(self.__dict__)
        for name in ("coefs", "intercepts", "_views"):
            del state[name]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
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
        # changed, its shape and strides can): 1 us where comparing
        # addresses took 10
        if coefs is not self.coefs or intercepts is not self.intercepts:
            return False
        views = coefs + intercepts
        return len(views) == len(self._views) and all(
            view is made and view.shape == shape and view.strides == strides
            for view, (made, shape, strides) in zip(views, self._views)
        )

    # ------------------------------------------------------------------
    # Kernel calls on already-validated input (used by the estimators)

    def _output(self, X_input, out=None, labels=None):
        """Output-layer activations of every row of ``X_input`` (a KernelInput).

        With ``labels``, an int64 array of one entry per row, a softmax
        network writes each row's index of its first largest output there
        instead, and its logits in the returned array (see
        ``kernels.predict``).
        """
        n_samples = X_input.n_samples
        if out is None:
            out = np.empty((n_samples, self.layer_units[-1]), dtype=self.dtype)
        if n_samples == 0:
            return out
        if labels is not None and self.activations[-1] != "softmax":
            raise ValueError(f"labels need a softmax output layer, not {self.activations[-1]!r}.")
        chunk = prediction_chunk_rows(n_samples, self.layer_units)
        n_chunks = -(-n_samples // chunk)
        with row_blocks(n_samples, self.layer_units, chunk, n_chunks) as (workers, run):
            if workers > 1 and not X_input.sparse and n_chunks < kernels.MAX_CHUNKS:
                # the chunks are shared with a team of workers that wait in a kernel
                team = prediction_team(workers - 1)
                team.prepare(self.dtype)
                work = Workspace(self, chunk, slots=team.n_workers + 1)
                if kernels.predict(
                    X_input.dense, None, self.params, self.layers, work.acts, work.rows, chunk, out,
                    _NO_LABELS if labels is None else labels, team.board, 0,
                ) != kernels.PREDICT_DONE:
                    raise RuntimeError("A prediction worker thread failed.") from team.error
                return out

            def predict_rows(start, stop):
                # a block shorter than a chunk is one (the last) chunk
                work = Workspace(self, min(chunk, stop - start))
                kernels.predict(
                    *X_input.row_block(start, stop),
                    self.params, self.layers, work.acts, work.rows, work.capacity, out[start:stop],
                    _NO_LABELS if labels is None else labels[start:stop], _NO_BOARD, 0,
                )

            run(predict_rows, chunk_blocks(n_samples, chunk, workers))
        return out

    def _objective(self, X_input, Y, sample_weight, alpha=0.0, loss_scale=1.0, work=None, run=None):
        """Full-data objective and its gradient at the current parameters.

        Parameters
        ----------
        X_input : KernelInput
            Input rows.
        Y : ndarray of shape (n_samples, n_outputs)
            Targets in the network's dtype.
        sample_weight : ndarray of shape (n_samples,)
            Weights in the network's dtype.
        alpha : float, default=0.0
            L2 strength; the penalty is ``alpha / 2 * ||W||^2 / sum(sample_weight)``.
        loss_scale : float, default=1.0
            Factor on the data term (scikit-learn reports squared error
            averaged over outputs).
        work : ObjectiveWorkspace, default=None
            Buffers to reuse across calls.
        run : callable, default=None
            How the blocks of rows run, from :meth:`_objective_threads` held
            over a series of calls (an optimizer's); None decides for this
            call alone.

        Returns
        -------
        loss : float
        grad : ndarray of shape (n_params,)
            View of the workspace's gradient buffer (copy it to keep it).
        """
        if work is None:
            work = self._objective_workspace(X_input.n_samples)
        if run is None:
            with self._objective_threads(work) as run:
                return self._objective(X_input, Y, sample_weight, alpha, loss_scale, work, run)
        eps = float(np.finfo(self.dtype).eps)
        if len(work.blocks) == 1:
            block = work.blocks[0]
            loss = kernels.loss_and_gradient(
                *X_input.arrays, Y, sample_weight, self.params, self.layers,
                block.acts, block.deltas, block.grads, block.scratch, block.rows, block.capacity,
                float(alpha), self.loss_code, float(loss_scale), eps, self.bias,
            )
            return loss, block.grads
        sums = {}

        def raw_block(start, stop):
            block = work.blocks[work.bounds.index(start)]
            sums[start] = kernels.raw_loss_and_gradient(
                *X_input.row_block(start, stop), Y[start:stop], sample_weight[start:stop],
                self.params, self.layers, block.acts, block.deltas, block.grads, block.scratch,
                block.rows, block.capacity, self.loss_code, eps,
            )

        run(raw_block, work.bounds)
        grads = work.blocks[0].grads
        data_loss, weight_sum = sums[0]
        for start, block in zip(work.bounds[1:-1], work.blocks[1:]):
            grads += block.grads
            data_loss += sums[start][0]
            weight_sum += sums[start][1]
        loss = kernels.finish_loss_and_gradient(
            grads, self.params, self.layers, data_loss, weight_sum, float(alpha), float(loss_scale), self.bias
        )
        return loss, grads

    @contextlib.contextmanager
    def _objective_threads(self, work):
        """Thread use of objective calls on ``work``, held while the block runs; yields ``run``.

        Held over a whole optimization, so that the BLAS threads stay as
        chosen between calls too (an optimizer's own BLAS calls between
        objective calls would otherwise wake BLAS threads that then compete
        with the workers: L-BFGS on 5000 x 30-50-1 took 0.30 s instead of 0.22 s).
        """
        n_rows, chunk = work.bounds[-1], work.blocks[0].capacity
        release_prediction_workers()
        with row_blocks(n_rows, self.layer_units, chunk, len(work.blocks)) as (_, run):
            yield run

    def _objective_workspace(self, n_samples):
        """Buffers for :meth:`_objective` over ``n_samples`` rows."""
        return ObjectiveWorkspace(self, n_samples)

    # ------------------------------------------------------------------
    # Public API on user arrays

    def _check_X(self, X):
        X = check_array(X, accept_sparse=["csr", "csc"], dtype=self.dtype)
        if X.shape[1] != self.layer_units[0]:
            raise ValueError(
                f"X has {X.shape[1]} features, but the network's input layer has "
                f"{self.layer_units[0]} units."
            )
        return KernelInput(X, self.dtype)

    def _check_targets(self, X_input, Y, sample_weight):
        Y = check_array(Y, ensure_2d=False, dtype=self.dtype)
        if Y.ndim == 1:
            Y = Y.reshape(-1, 1)
        if Y.shape != (X_input.n_samples, self.layer_units[-1]):
            raise ValueError(
                f"Y has shape {Y.shape}, expected ({X_input.n_samples}, {self.layer_units[-1]})."
            )
        sample_weight = _check_sample_weight(
            sample_weight, np.empty((X_input.n_samples, 0)), dtype=self.dtype, ensure_non_negative=True
        )
        return np.ascontiguousarray(Y), np.ascontiguousarray(sample_weight)

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
        return self._output(self._check_X(X))

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
        X_input = self._check_X(X)
        n_rows = X_input.n_samples
        work = Workspace(self, max(n_rows, 1))
        zs = np.empty_like(work.acts)
        rows = np.arange(n_rows, dtype=np.int64)
        kernels.forward_recording(
            *X_input.arrays, rows, self.params, self.layers, work.acts, work.capacity, zs,
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
            dJ/dA[L] for squared error and None for the other losses.
        """
        X_input = self._check_X(X)
        Y, sample_weight = self._check_targets(X_input, Y, sample_weight)
        n_rows = X_input.n_samples
        work = Workspace(self, max(n_rows, 1))
        zs, dAs = np.empty_like(work.acts), np.zeros_like(work.deltas)
        rows = np.arange(n_rows, dtype=np.int64)
        loss = kernels.batch_loss_and_gradient_recording(
            *X_input.arrays, rows, Y, sample_weight, self.params, self.layers, work.acts, work.deltas,
            work.capacity, work.grads, 0.0 + alpha, self.loss_code, 1.0, float(np.finfo(self.dtype).eps),
            self.bias, zs, dAs,
        )
        weight_sum = sample_weight.sum(dtype=np.float64)
        A = self._split_rows(work.acts, n_rows)
        dA = [block / weight_sum for block in self._split_rows(dAs, n_rows)[:-1]]
        if self.loss == "squared_error":
            output_error = np.empty_like(A[-1])
            kernels.output_delta(
                A[-1], Y, sample_weight, kernels.ACTIVATION_CODES["identity"],
                kernels.LOSS_CODES["squared_error"], output_error,
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
        the outputs of row i (for squared error ``1/2 sum_j (a_ij - y_ij)^2``).

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
        X_input = self._check_X(X)
        Y, sample_weight = self._check_targets(X_input, Y, sample_weight)
        loss, grad = self._objective(X_input, Y, sample_weight, alpha)
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
        X_input = self._check_X(X)
        Y, sample_weight = self._check_targets(X_input, Y, sample_weight)
        work = self._objective_workspace(X_input.n_samples)
        loss, grad = self._objective(X_input, Y, sample_weight, alpha, work=work)
        no_velocity = np.zeros(self.n_params, dtype=self.dtype)
        kernels.sgd_step(
            self.params, grad, no_velocity, self.dtype.type(learning_rate), self.dtype.type(0), False
        )
        return loss

    def train(self, X, Y, *, mode="standard", learning_rate=0.1, n_epochs=1,
              sample_weight=None, alpha=0.0, momentum=0.0):
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

        Returns
        -------
        losses : list of float
            Per epoch, the mean over updates of the objective just before
            each update (each weighted by its number of rows).
        """
        if mode not in ("standard", "accumulated"):
            raise ValueError(f"mode must be 'standard' or 'accumulated', got {mode!r}.")
        _check_descent_settings(learning_rate, alpha, momentum, n_epochs)
        X_input = self._check_X(X)
        Y, sample_weight = self._check_targets(X_input, Y, sample_weight)
        n_samples = X_input.n_samples
        batch_size = 1 if mode == "standard" else n_samples
        optimizer = StochasticOptimizer(
            "sgd", self.n_params, self.dtype, learning_rate, momentum=momentum, nesterov=False
        )
        work = EpochWorkspace(self, batch_size, sparse=X_input.sparse)
        order = np.arange(n_samples, dtype=np.int64)
        with training_threads(batch_size, self.layer_units, X_input.inputs_per_row) as team:
            return [
                run_epoch(self, X_input, Y, sample_weight, order, batch_size, work, optimizer,
                          alpha, 1.0, team) / n_samples
                for _ in range(n_epochs)
            ]

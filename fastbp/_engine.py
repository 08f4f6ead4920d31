"""The engine between fastbp's public objects and its kernels.

The estimators and :class:`~fastbp.Network` hand the engine validated arrays
and a network (its layer table and flat parameters); the engine lays the
input out for the kernels (:class:`KernelInput`), allocates the work buffers
once per call, decides how a call is cut and how many threads share it
(through ``fastbp._parallel``), and makes one compiled call per epoch
(:class:`EpochTrainer`), per objective evaluation (:class:`Objective`) or per
block of a prediction (:func:`predict`). Every such decision is made here,
once.
"""

import os
import time

import numpy as np
import scipy.sparse as sp

from . import _parallel, kernels
from ._buffers import aligned_empty

# Rows of a chunk of a full-data pass are bounded so that its activations
# stay around this many elements.
_CHUNK_ELEMENTS = 1 << 20
# Rows of a prediction chunk: at least this many chunks when there are rows
# enough, so that threads can share them, each of at least _CHUNK_ROWS rows.
# A product's last bits depend on its rows, so this count is part of what
# makes a saved model predict the same in every version.
_PREDICTION_CHUNKS = 8
_CHUNK_ROWS = 64
# Fewest multiply-adds a thread of a prediction computes: a pool thread is
# woken for each call, which costs more than a part of an epoch.
PREDICTION_THREAD_MULTIPLY_ADDS = 1_000_000
# The ``labels`` argument of ``kernels.predict`` when only outputs are wanted.
_NO_LABELS = np.empty(0, dtype=np.int64)


class KernelInput:
    """Input rows in the form the kernels take: a dense C array or CSR arrays.

    Parameters
    ----------
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)
        Validated input of a float dtype.
    dtype : numpy dtype
        The dtype the kernels compute in.
    """

    def __init__(self, X, dtype):
        self.dtype = np.dtype(dtype)
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

    def row_block(self, start, stop):
        """The ``(X, csr)`` arguments of a kernel for the rows ``start:stop``."""
        if self.csr is None:
            return self.dense[start:stop], None
        data, indices, indptr = self.csr
        return self.dense, (data, indices, indptr[start : stop + 1])

    def row_multiply_adds(self, layer_units):
        """Multiply-adds of one row's forward pass (a CSR row's first layer counts its non-zeros)."""
        per_row = _parallel.multiply_adds_per_row(layer_units)
        if self.csr is None:
            return per_row
        inputs_per_row = self.csr[0].shape[0] / max(self.n_samples, 1)
        return per_row - layer_units[0] * layer_units[1] + inputs_per_row * layer_units[1]


# ---------------------------------------------------------------------------
# Memory


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
# when they fail, and reading /proc/meminfo costs more than a small fit.
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


def check_memory(layer_units, n_samples, dtype, solver, batch_size, dropout=False):
    """Check, before allocating anything, that training this network fits in memory.

    Counts the parameters with their gradient, optimizer state, working and
    best-weight copies (L-BFGS keeps about 25 float64 vectors of them), the
    parts' or blocks' gradients, and their activation and error buffers.

    Parameters
    ----------
    layer_units : sequence of int
        Units per layer, input first.
    n_samples : int
        Training rows.
    dtype : numpy dtype
        Dtype of the computation.
    solver : {"lbfgs", "sgd", "adam"}
        The solver.
    batch_size : int or "auto"
        The ``batch_size`` parameter (ignored by L-BFGS).
    dropout : bool, default=False
        Whether the fit uses dropout (two more buffers of the activations' size).
    """
    itemsize = np.dtype(dtype).itemsize
    n_params = _parallel.multiply_adds_per_row(layer_units) + sum(layer_units[1:])
    row_multiply_adds = _parallel.multiply_adds_per_row(layer_units)
    if solver == "lbfgs":
        blocks = _parallel.part_count(n_samples, row_multiply_adds)
        rows = min(n_samples, blocks * chunk_rows(n_samples, layer_units))
        param_bytes = n_params * ((3 + 2 * blocks) * itemsize + 25 * 8)
    else:
        rows = batch_size_for(batch_size, n_samples)
        parts = _parallel.part_count(rows, row_multiply_adds)
        param_bytes = n_params * (7 + parts) * itemsize
    n_unit_buffers = 4 if dropout else 2
    work_bytes = n_unit_buffers * rows * sum(layer_units[1:]) * itemsize + n_samples * layer_units[-1] * itemsize
    sizes = "-".join(str(u) for u in layer_units)
    require_memory(
        param_bytes + work_bytes,
        f"Training a {sizes} network ({n_params:,} parameters) with solver={solver!r}",
    )


# ---------------------------------------------------------------------------
# Sizes of mini-batches and chunks


def batch_size_for(batch_size, n_samples):
    """Rows per mini-batch, as scikit-learn resolves ``batch_size``: ``"auto"`` is ``min(200, n_samples)``.

    An integer larger than ``n_samples`` is clipped to it (scikit-learn
    warns then: the estimators do).
    """
    if batch_size == "auto":
        return min(200, n_samples)
    return min(max(int(batch_size), 1), n_samples)


def chunk_rows(n_samples, layer_units):
    """Rows per chunk of a full-data pass (objective, gradients)."""
    per_row = max(1, sum(layer_units[1:]))
    return int(max(1, min(n_samples, max(_CHUNK_ROWS, _CHUNK_ELEMENTS // per_row))))


def prediction_chunk_rows(n_samples, layer_units):
    """Rows per chunk of a prediction: :func:`chunk_rows`, cut so there are chunks to share.

    At least :data:`_PREDICTION_CHUNKS` chunks of at least
    :data:`_CHUNK_ROWS` rows when there are rows enough. The size depends
    on the data's length and the network only, so the results do not
    depend on the threads that share the chunks.
    """
    wanted = max(_CHUNK_ROWS, -(-n_samples // _PREDICTION_CHUNKS))
    return min(chunk_rows(n_samples, layer_units), wanted)


def slopes_buffer(shape, dtype):
    """The kernels' ``slopes`` buffer: None when it holds nothing (no gelu or silu layer).

    None, rather than an empty array, makes the kernels compile without the
    code that keeps slopes.
    """
    return aligned_empty(shape, dtype) if shape[-1] > 0 else None


class Workspace:
    """Work buffers of a full-data pass or a prediction over chunks of ``capacity`` rows.

    Parameters
    ----------
    network : Network
        The network whose layer table fixes the buffer sizes.
    capacity : int
        Rows per chunk.
    dtype : numpy dtype, default=None
        Dtype of the buffers; None for the network's.
    """

    def __init__(self, network, capacity, dtype=None):
        dtype = network.dtype if dtype is None else dtype
        self.capacity = capacity
        # plain NumPy buffers: a prediction makes new ones at every call, where
        # aligned ones cost more to make than they save
        units = sum(network.layer_units[1:])
        self.acts = np.empty(capacity * units, dtype=dtype)
        self.deltas = np.empty(capacity * units, dtype=dtype)
        self.slopes = slopes_buffer((capacity * network.slope_units,), dtype)
        self.grads = np.empty(network.n_params, dtype=dtype)
        self.scratch = np.empty(network.n_params, dtype=dtype)
        self.rows = np.empty(capacity, dtype=np.int64)


# ---------------------------------------------------------------------------
# Predictions


def predict(network, X_input, params=None, labels=None):
    """Output-layer activations of every row of ``X_input``, in its dtype.

    Large predictions are shared by threads, each computing a block of
    whole chunks of :func:`prediction_chunk_rows` rows; the results are
    those of one thread. A prediction with the network's own parameters
    that overlaps a :meth:`Network.publish` in another thread is made
    again, so that it uses the weights from before or after, never a mix.

    Parameters
    ----------
    network : Network
        The network (its layer table; its parameters unless ``params``).
    X_input : KernelInput
        Input rows; their dtype is the computation's.
    params : ndarray of shape (n_params,), default=None
        Parameters to use instead of the network's, in X_input's dtype.
    labels : ndarray of shape (n_samples,) of int64, default=None
        For a softmax network, receives each row's index of its first
        largest output; the returned array then holds the logits (see
        ``kernels.predict``).

    Returns
    -------
    out : ndarray of shape (n_samples, n_outputs)
    """
    if labels is not None and network.activations[-1] != "softmax":
        raise ValueError(f"labels need a softmax output layer, not {network.activations[-1]!r}.")
    if params is not None:
        return _predict(network, params, X_input, labels)
    while True:
        version = network.version
        if version % 2 == 0:  # odd: new weights are being copied in
            params = network.params
            if params.dtype != X_input.dtype:
                params = params.astype(X_input.dtype)
            out = _predict(network, params, X_input, labels)
            if network.version == version:
                return out
        time.sleep(0)


def _predict(network, params, X_input, labels):
    """:func:`predict` with the parameters ``params``."""
    n_samples = X_input.n_samples
    out = np.empty((n_samples, network.layer_units[-1]), dtype=params.dtype)
    if n_samples == 0:
        return out
    chunk = prediction_chunk_rows(n_samples, network.layer_units)
    n_chunks = -(-n_samples // chunk)
    work = n_samples * X_input.row_multiply_adds(network.layer_units)
    wanted = int(min(n_chunks, max(1, work // PREDICTION_THREAD_MULTIPLY_ADDS)))
    no_labels = _NO_LABELS if labels is None else labels
    claims = np.zeros(1, dtype=np.int64)
    units = sum(network.layer_units[1:])
    with _parallel.threads_for(wanted) as n_threads:
        # every thread's buffers made here, so that the threads start their kernel at once
        acts = np.empty((n_threads, chunk * units), dtype=params.dtype)
        rows = np.empty((n_threads, chunk), dtype=np.int64)
        arguments = (*X_input.arrays, params, network.layers)
        kernel = kernels.predict[network.kernel_codes[:2]]

        def predict_chunks(thread):
            kernel(*arguments, acts[thread], rows[thread], chunk, out, no_labels, claims)

        _parallel.run_blocks(predict_chunks, n_threads, n_threads)
    return out


# ---------------------------------------------------------------------------
# The full-data objective (L-BFGS, gradient checks, Network.step)


class Objective:
    """Objective and gradient of a network over fixed rows, in blocks of rows.

    The rows are cut into ``_parallel.part_count`` blocks, whose raw sums
    are added in block order, so that threads can share the blocks without
    changing the result. Use it as a context manager to hold the threads
    over a series of evaluations (an optimizer's); an evaluation outside
    one holds them for itself.

    Parameters
    ----------
    network : Network
        The network (layer table, loss, intercepts).
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
    """

    def __init__(self, network, X_input, Y, sample_weight, alpha=0.0, loss_scale=1.0):
        self.network = network
        self.X_input = X_input
        self.Y = Y
        self.sample_weight = sample_weight
        self.alpha = float(alpha)
        self.loss_scale = float(loss_scale)
        n_samples = X_input.n_samples
        n_blocks = _parallel.part_count(n_samples, X_input.row_multiply_adds(network.layer_units))
        self.bounds = [n_samples * k // n_blocks for k in range(n_blocks + 1)]
        self.blocks = [
            Workspace(network, max(1, chunk_rows(stop - start, network.layer_units)))
            for start, stop in zip(self.bounds[:-1], self.bounds[1:])
        ]
        self._sums = [None] * n_blocks
        self._threads = None
        self._held = None

    def __enter__(self):
        self._held = _parallel.threads_for(len(self.blocks))
        self._threads = self._held.__enter__()
        return self

    def __exit__(self, *exc_info):
        held, self._held, self._threads = self._held, None, None
        return held.__exit__(*exc_info)

    def __call__(self, params=None):
        """Objective and gradient at ``params`` (default: the network's parameters).

        Returns
        -------
        loss : float
        grad : ndarray of shape (n_params,)
            A work buffer, overwritten by the next call (copy it to keep it).
        """
        if self._threads is None:
            with self:
                return self(params)
        network = self.network
        params = network.params if params is None else params
        eps = float(np.finfo(network.dtype).eps)

        def raw_block(k):
            start, stop, block = self.bounds[k], self.bounds[k + 1], self.blocks[k]
            self._sums[k] = kernels.raw_loss_and_gradient[network.kernel_codes](
                *self.X_input.row_block(start, stop), self.Y[start:stop], self.sample_weight[start:stop],
                params, network.layers, block.acts, block.deltas, block.slopes, block.grads,
                block.scratch, block.rows, block.capacity, network.loss_code, eps, network.huber_delta,
            )

        if len(self.blocks) == 1:  # one compiled call, which adds the penalty and divides too
            block = self.blocks[0]
            loss = kernels.loss_and_gradient[network.kernel_codes](
                *self.X_input.arrays, self.Y, self.sample_weight, params, network.layers,
                block.acts, block.deltas, block.slopes, block.grads, block.scratch, block.rows,
                block.capacity, self.alpha, network.loss_code, self.loss_scale, eps, network.huber_delta,
                network.bias,
            )
            return loss, block.grads
        _parallel.run_blocks(raw_block, len(self.blocks), self._threads)
        grads = self.blocks[0].grads
        data_loss, weight_sum = self._sums[0]
        for k in range(1, len(self.blocks)):
            grads += self.blocks[k].grads
            data_loss += self._sums[k][0]
            weight_sum += self._sums[k][1]
        loss = kernels.finish_loss_and_gradient(
            grads, params, network.layers, data_loss, weight_sum, self.alpha, self.loss_scale,
            network.bias,
        )
        return loss, grads


# ---------------------------------------------------------------------------
# Epochs of the stochastic solvers


class EpochTrainer:
    """Runs the epochs of a stochastic fit: one compiled call per epoch, threads held while open.

    Each mini-batch is cut into ``_parallel.part_count`` parts of its rows,
    shared by the threads of an ``_parallel.EpochTeam``; mini-batches of one
    dense row take ``kernels.train_epoch_one_row`` (but with dropout). Use
    it as a context manager around the fit's epochs. The options (cosine
    schedule, clipping, dropout) are compile-time choices of the kernels: a
    fit without them compiles none of their code.

    Parameters
    ----------
    network : Network
        The network (layer table, loss, intercepts).
    params : ndarray of shape (n_params,)
        The parameters trained, in place (the network's, or a working copy).
    X_input : KernelInput
        Input rows.
    Y : ndarray of shape (n_samples, n_outputs)
        Targets in the network's dtype.
    sample_weight : ndarray of shape (n_samples,)
        Weights in the network's dtype.
    batch_size : int
        Rows per mini-batch (see :func:`batch_size_for`).
    optimizer : StochasticOptimizer
        The optimizer, whose state is updated in place.
    alpha : float
        L2 strength.
    loss_scale : float, default=1.0
        Factor on the reported data loss.
    schedule : tuple of (int, int), default=None
        Steps and warm-up steps of the cosine schedule (``kernels.train_epoch``);
        None for the optimizer's own learning rate.
    max_grad_norm : float, default=None
        Clip each mini-batch's gradient to this L2 norm; None for no clipping.
    dropout : sequence of float, default=None
        Dropout rate of each hidden layer, in [0, 1); None for no dropout.
    dropout_seed : int, default=0
        Seed of the dropout masks, in [0, 2**63).
    first_epoch : int, default=0
        Number of the first epoch for the dropout masks; the others follow
        (the masks depend on the seed and the epoch's number).
    """

    def __init__(self, network, params, X_input, Y, sample_weight, batch_size, optimizer, alpha,
                 loss_scale=1.0, *, schedule=None, max_grad_norm=None, dropout=None, dropout_seed=0,
                 first_epoch=0):
        self.one_row = batch_size == 1 and not X_input.sparse and dropout is None
        self.params = params
        self.optimizer = optimizer
        n_parts = 1 if self.one_row else _parallel.part_count(
            batch_size, X_input.row_multiply_adds(network.layer_units)
        )
        self.n_parts = n_parts
        capacity = -(-batch_size // n_parts)
        units = network.layer_units
        dtype = network.dtype
        acts = aligned_empty((n_parts, capacity * sum(units[1:])), dtype)
        deltas = aligned_empty(acts.shape, dtype)
        slopes = slopes_buffer((n_parts, capacity * network.slope_units), dtype)
        common = (
            float(alpha), network.loss_code, float(loss_scale), float(np.finfo(dtype).eps),
            network.huber_delta, network.bias,
        )
        self.order = np.empty(0, dtype=np.int64)
        self.hyper = np.empty(kernels.N_HYPER)
        state = (*optimizer.kernel_state(), optimizer.step_counter)
        options = (
            None if schedule is None else (int(schedule[0]), int(schedule[1])),
            None if max_grad_norm is None else float(max_grad_norm),
        )
        self._seed_epoch = None
        if self.one_row:
            n_units = sum(units[1:])
            self._kernel = kernels.train_epoch_one_row[network.kernel_codes]
            self._arrays = (
                X_input.dense, Y, sample_weight, None, params, network.layers,
                acts[0, :n_units], deltas[0, :n_units], None if slopes is None else slopes[0],
                *common, self.hyper, *state, *options,
            )
        else:
            if dropout is not None:
                self._seed_epoch = np.array([dropout_seed, first_epoch], dtype=np.uint64)
                dropout = (
                    aligned_empty(acts.shape, dtype), aligned_empty(acts.shape, dtype), self._seed_epoch,
                    np.array([dropout_threshold(rate) for rate in dropout], dtype=np.uint64),
                    np.array([1.0 / (1.0 - rate) for rate in dropout], dtype=dtype),
                )
            # sparse mini-batches are read straight from the CSR arrays
            Xb = aligned_empty((n_parts, 0 if X_input.sparse else capacity, units[0]), dtype)
            self._kernel = kernels.train_epoch[network.kernel_codes]
            self._arrays = (
                *X_input.arrays, Y, sample_weight, None, batch_size, params, network.layers,
                acts, deltas, slopes, aligned_empty((n_parts, network.n_params), dtype), Xb,
                aligned_empty((n_parts, capacity, units[-1]), dtype), aligned_empty((n_parts, capacity), dtype),
                np.empty((n_parts, capacity), dtype=np.int64),
                np.empty((n_parts, 3 if max_grad_norm is None else 4)),
                *common, self.hyper, *state, *options, dropout,
            )
        self._held = None
        self._team = None

    def __enter__(self):
        self._held = _parallel.threads_for(self.n_parts)
        n_threads = self._held.__enter__()
        # a process on one CPU never shares an epoch: its kernel compiles no thread code
        # (on more CPUs one kernel serves every fit, threaded or not, so none compiles twice)
        single_cpu = n_threads == 1 and _parallel.available_cores() == 1
        self._team = _parallel.EpochTeam(n_threads, None if single_cpu else np.zeros(n_threads + 2, dtype=np.int64))
        return self

    def __exit__(self, exc_type, exc_value, traceback):
        team, held = self._team, self._held
        self._team = self._held = None
        try:
            team.close(raise_errors=exc_type is None)
        finally:
            held.__exit__(exc_type, exc_value, traceback)

    def run(self, order):
        """Train one epoch over the rows ``order`` (int64); return the sum over batches of loss times rows."""
        if self.order.shape != order.shape:
            # the team's workers keep the arrays of the first epoch: the order is rewritten in place
            if self._team.started:
                raise ValueError("Every epoch of a fit must visit the same number of rows.")
            self.order = np.empty_like(order)
        self.order[:] = order
        self.hyper[:] = self.optimizer.hyper()
        if self.one_row:
            arrays = self._arrays[:3] + (self.order,) + self._arrays[4:]
            return self._kernel(*arrays)
        arrays = self._arrays[:4] + (self.order,) + self._arrays[5:]
        kernel = self._kernel

        def epoch(thread, n_threads):
            return kernel(*arrays, thread, n_threads, self._team.sync)

        loss_sum = self._team.run(epoch)
        if self._seed_epoch is not None:  # the next epoch's masks
            self._seed_epoch[1] += 1
        return loss_sum


def dropout_threshold(rate):
    """``floor(rate * 2**64)``: a unit is dropped when its 64-bit hash is below it (``kernels.dropout``)."""
    return min(int(rate * 2.0**64), 2**64 - 1)

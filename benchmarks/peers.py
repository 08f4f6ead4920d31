"""PyTorch and JAX equivalents of a workload's scikit-learn MLP fit, for ``compare.py``.

Both peers train the network scikit-learn trains: ReLU hidden layers, a
softmax (multiclass), logistic (binary) or identity (regression) output,
scikit-learn's losses (mean log-loss, half mean squared error) plus its L2
term ``0.5 * alpha * ||W||^2 / n_batch`` on the weights only, the same
Glorot-uniform initial weights (drawn exactly as scikit-learn draws them from
``RandomState(0)``), a reshuffle every epoch, the same mini-batches (the last
one smaller) and the same optimizer hyper-parameters (Adam 1e-3, 0.9, 0.999,
1e-8; SGD 1e-3, momentum 0). L-BFGS runs SciPy's L-BFGS-B (as scikit-learn
does) on a loss-and-gradient evaluated by the peer. The score of every peer
is computed from its final weights by the same NumPy forward pass.

PyTorch: an eager loop, one ``index_select`` gather, forward, backward and
``torch.optim`` step per mini-batch (fused Adam/SGD kernels when available),
sparse input through ``embedding_bag`` with per-sample weights.

JAX: one ``jax.jit`` function runs a whole epoch, ``lax.scan`` over the
mini-batches (gathered inside the scan from index arrays; the last, shorter
batch is padded and masked). Sparse mini-batches are packed per epoch on the
host into padded (row, column, value) triplets and multiplied with
``segment_sum``. Compilation is ahead of time (``lower().compile()``) and its
time is reported apart from the fit.
"""

import time

import numpy as np
import scipy.optimize
import scipy.sparse as sp

ALPHA = 1e-4
LEARNING_RATE = 1e-3
BETA_1, BETA_2, EPSILON = 0.9, 0.999, 1e-8


# --------------------------------------------------------------------------- shared helpers


def encode_targets(workload, y, dtype):
    """Targets as the network sees them.

    Returns
    -------
    Y : ndarray of shape (n_samples, n_outputs)
        One-hot classes (multiclass), 0/1 column (binary) or the target.
    labels : ndarray of shape (n_samples,) or None
        Class indices (classification only).
    classes : ndarray or None
        The sorted class labels.
    output : {"softmax", "logistic", "identity"}
        The output activation.
    """
    if not workload.is_classifier:
        return np.asarray(y, dtype=dtype).reshape(-1, 1), None, None, "identity"
    classes, labels = np.unique(y, return_inverse=True)
    if classes.shape[0] == 2:
        return labels.astype(dtype).reshape(-1, 1), labels, classes, "logistic"
    Y = np.zeros((labels.shape[0], classes.shape[0]), dtype=dtype)
    Y[np.arange(labels.shape[0]), labels] = 1
    return Y, labels, classes, "softmax"


def glorot_init(units, dtype, random_state=0):
    """Weights (fan_in, fan_out) and intercepts drawn as scikit-learn draws them for ReLU."""
    rng = np.random.RandomState(random_state)
    params = []
    for fan_in, fan_out in zip(units[:-1], units[1:]):
        bound = np.sqrt(6.0 / (fan_in + fan_out))
        W = rng.uniform(-bound, bound, (fan_in, fan_out))
        b = rng.uniform(-bound, bound, fan_out)
        params.append((W.astype(dtype), b.astype(dtype)))
    return params


def numpy_forward(params, X):
    """Output pre-activations of the network for X (dense or sparse)."""
    h = X
    for i, (W, b) in enumerate(params):
        h = h @ W + b
        if i < len(params) - 1:
            h = np.maximum(h, 0)
    return np.asarray(h)


def numpy_score(params, X, y, output, classes):
    """Training accuracy (classification) or R^2 (regression) of final weights."""
    from sklearn.metrics import accuracy_score, r2_score

    z = numpy_forward(params, X)
    if output == "identity":
        return float(r2_score(y, z.ravel()))
    if output == "logistic":
        pred = classes[(z.ravel() > 0).astype(int)]
    else:
        pred = classes[np.argmax(z, axis=1)]
    return float(accuracy_score(y, pred))


def batches_per_epoch(n_samples, batch_size):
    return -(-n_samples // batch_size)


def epoch_index(rng, n_samples, batch_size):
    """A shuffled epoch as padded (n_batches, batch_size) row indices and a 0/1 mask."""
    n_batches = batches_per_epoch(n_samples, batch_size)
    idx = np.zeros(n_batches * batch_size, dtype=np.int32)
    idx[:n_samples] = rng.permutation(n_samples)
    mask = np.zeros(n_batches * batch_size, dtype=np.float32)
    mask[:n_samples] = 1
    return idx.reshape(n_batches, batch_size), mask.reshape(n_batches, batch_size)


def sparse_entry_bound(X, batch_size):
    """Most non-zeros any mini-batch of ``batch_size`` rows can hold (sum of the largest rows)."""
    row_nnz = np.sort(np.diff(X.indptr))[::-1]
    return int(max(1, row_nnz[:batch_size].sum()))


def pack_sparse_epoch(X, order, batch_size, bound):
    """Rows ``order`` of CSR X as per-batch padded (local row, column, value) triplets."""
    n_samples = order.shape[0]
    n_batches = batches_per_epoch(n_samples, batch_size)
    Xp = X[order]
    row_nnz = np.diff(Xp.indptr)
    row = np.repeat(np.arange(n_samples), row_nnz)
    batch = row // batch_size
    position = np.arange(Xp.nnz) - Xp.indptr[batch * batch_size]
    rows = np.zeros((n_batches, bound), dtype=np.int32)
    cols = np.zeros((n_batches, bound), dtype=np.int32)
    vals = np.zeros((n_batches, bound), dtype=Xp.dtype)
    rows[batch, position] = row % batch_size
    cols[batch, position] = Xp.indices
    vals[batch, position] = Xp.data
    return rows, cols, vals


def lbfgs(loss_grad, x0, max_iter):
    """SciPy's L-BFGS-B with scikit-learn's options for ``tol=0``."""
    res = scipy.optimize.minimize(
        loss_grad, x0, method="L-BFGS-B", jac=True,
        options={"maxfun": 15000, "maxiter": max_iter, "gtol": 0.0},
    )
    return res.x, int(res.nit)


class _Peer:
    """What both peers share: target encoding, initial weights, the score."""

    def __init__(self, workload):
        self.workload = workload
        self.compile_seconds = 0.0

    def _start(self, X, y):
        dtype = np.dtype(self.workload.dtype)
        Y, labels, classes, output = encode_targets(self.workload, y, dtype)
        units = [X.shape[1], *self.workload.hidden_layer_sizes, Y.shape[1]]
        return dtype, Y, labels, classes, output, units

    def _flat_layout(self, units):
        """Offsets of each weight matrix and intercept in a flat vector (scikit-learn's packing)."""
        shapes = [(a, b) for a, b in zip(units[:-1], units[1:])] + [(b,) for b in units[1:]]
        offsets = np.cumsum([0] + [int(np.prod(s)) for s in shapes])
        return shapes, offsets

    def score(self, X, y):
        return numpy_score(self.params_, X, y, self.output_, self.classes_)


# --------------------------------------------------------------------------- PyTorch


class TorchMLP(_Peer):
    """The workload's fit as an eager PyTorch CPU loop."""

    name = "torch"

    def __init__(self, workload):
        super().__init__(workload)
        import torch
        import torch.nn.functional as F

        self.torch = torch
        self.F = F

    def _optimizer(self, weights, biases, batch_size):
        torch = self.torch
        groups = [
            # the L2 term's gradient alpha * W / n_batch, as weight decay
            {"params": weights, "weight_decay": ALPHA / batch_size},
            {"params": biases, "weight_decay": 0.0},
        ]
        for flags in ({"fused": True}, {"foreach": True}):
            try:
                if self.workload.solver == "adam":
                    return torch.optim.Adam(
                        groups, lr=LEARNING_RATE, betas=(BETA_1, BETA_2), eps=EPSILON, **flags
                    )
                return torch.optim.SGD(groups, lr=LEARNING_RATE, momentum=self.workload.momentum, **flags)
            except (RuntimeError, TypeError, ValueError):
                continue
        raise RuntimeError("no torch optimizer implementation available")

    def _loss(self, z, target):
        F = self.F
        if self.output_ == "softmax":
            return F.cross_entropy(z, target)
        if self.output_ == "logistic":
            return F.binary_cross_entropy_with_logits(z, target)
        return 0.5 * F.mse_loss(z, target)

    def fit(self, X, y):
        torch = self.torch
        dtype, Y, labels, classes, output, units = self._start(X, y)
        self.output_, self.classes_ = output, classes
        target = torch.from_numpy(labels.astype(np.int64)) if output == "softmax" else torch.from_numpy(Y)
        if self.workload.solver == "lbfgs":
            return self._fit_lbfgs(X, target, dtype, units)
        init = glorot_init(units, dtype)
        weights = [torch.tensor(W, requires_grad=True) for W, _ in init]
        biases = [torch.tensor(b, requires_grad=True) for _, b in init]
        batch_size = min(self.workload.batch_size, X.shape[0])
        optimizer = self._optimizer(weights, biases, batch_size)
        n_samples = X.shape[0]
        rng = np.random.RandomState(0)
        sparse = sp.issparse(X)
        if not sparse:
            Xt = torch.from_numpy(np.ascontiguousarray(X))
        for _ in range(self.workload.max_iter):
            perm = rng.permutation(n_samples)
            if sparse:
                Xp = X[perm]
                cols = torch.from_numpy(Xp.indices.astype(np.int64))
                vals = torch.from_numpy(Xp.data)
                offsets = torch.from_numpy(Xp.indptr.astype(np.int64))
            perm_t = torch.from_numpy(perm)
            for start in range(0, n_samples, batch_size):
                stop = min(start + batch_size, n_samples)
                idx = perm_t[start:stop]
                optimizer.zero_grad(set_to_none=True)
                if sparse:
                    lo, hi = int(offsets[start]), int(offsets[stop])
                    h = self.F.embedding_bag(
                        cols[lo:hi], weights[0], offsets[start:stop] - lo,
                        mode="sum", per_sample_weights=vals[lo:hi],
                    ) + biases[0]
                else:
                    h = torch.addmm(biases[0], Xt.index_select(0, idx), weights[0])
                for W, b in zip(weights[1:], biases[1:]):
                    h = torch.addmm(b, torch.relu(h), W)
                loss = self._loss(h, target.index_select(0, idx))
                loss.backward()
                optimizer.step()
        self.params_ = [(W.detach().numpy().copy(), b.detach().numpy().copy()) for W, b in zip(weights, biases)]
        self.n_iter_ = self.workload.max_iter
        return self

    def _fit_lbfgs(self, X, target, dtype, units):
        torch = self.torch
        shapes, offsets = self._flat_layout(units)
        n_layers = len(units) - 1
        init = glorot_init(units, np.float64)
        x0 = np.concatenate([W.ravel() for W, _ in init] + [b for _, b in init])
        flat = torch.zeros(x0.shape[0], dtype=getattr(torch, dtype.name), requires_grad=True)
        Xt = torch.from_numpy(np.ascontiguousarray(X))
        n_samples = X.shape[0]

        def loss_grad(x):
            with torch.no_grad():
                flat.copy_(torch.from_numpy(x))
            flat.grad = None
            views = [flat[offsets[i]:offsets[i + 1]].view(*shapes[i]) for i in range(len(shapes))]
            weights, biases = views[:n_layers], views[n_layers:]
            h = torch.addmm(biases[0], Xt, weights[0])
            for W, b in zip(weights[1:], biases[1:]):
                h = torch.addmm(b, torch.relu(h), W)
            loss = self._loss(h, target) + 0.5 * ALPHA * sum((W * W).sum() for W in weights) / n_samples
            loss.backward()
            return float(loss.item()), flat.grad.numpy().astype(np.float64)

        x, self.n_iter_ = lbfgs(loss_grad, x0, self.workload.max_iter)
        self.params_ = [
            (x[offsets[i]:offsets[i + 1]].reshape(shapes[i]).astype(dtype),
             x[offsets[n_layers + i]:offsets[n_layers + i + 1]].astype(dtype))
            for i in range(n_layers)
        ]
        return self


# --------------------------------------------------------------------------- JAX


class JaxMLP(_Peer):
    """The workload's fit with one ``jax.jit``-compiled ``lax.scan`` per epoch."""

    name = "jax"

    def __init__(self, workload):
        super().__init__(workload)
        import jax

        jax.config.update("jax_enable_x64", True)
        self.jax = jax
        self._compiled = None
        self._signature = None
        self.compile_phases = None

    # ---- the maths, traced by jit

    def _loss(self, params, h_in, target, mask):
        """scikit-learn's batch loss (masked rows excluded) plus the L2 term."""
        import jax.numpy as jnp

        jax = self.jax
        h = h_in
        for i, (W, b) in enumerate(params):
            if i > 0:
                h = jnp.maximum(h, 0) @ W + b
            else:
                h = h + b
        n = jnp.sum(mask)
        if self.output_ == "softmax":
            per_row = -jnp.sum(target * jax.nn.log_softmax(h), axis=1)
        elif self.output_ == "logistic":
            per_row = jnp.sum(jax.nn.softplus(h) - target * h, axis=1)
        else:
            per_row = 0.5 * jnp.sum((target - h) ** 2, axis=1)
        l2 = sum(jnp.sum(W * W) for W, _ in params)
        return jnp.sum(per_row * mask) / n + 0.5 * ALPHA * l2 / n

    def _first_layer_dense(self, params, X, idx):
        return X[idx] @ params[0][0]

    def _first_layer_sparse(self, params, rows, cols, vals, batch_size):
        jax = self.jax
        return jax.ops.segment_sum(vals[:, None] * params[0][0][cols], rows, num_segments=batch_size)

    def _make_epoch(self, sparse, batch_size, dtype):
        import jax.numpy as jnp
        from jax import lax

        jax = self.jax
        solver = self.workload.solver
        lr = np.asarray(LEARNING_RATE, dtype)

        def batch_loss(params, batch, X, Y):
            if sparse:
                idx, mask, rows, cols, vals = batch
                z1 = self._first_layer_sparse(params, rows, cols, vals, batch_size)
            else:
                idx, mask = batch
                z1 = self._first_layer_dense(params, X, idx)
            return self._loss(params, z1, Y[idx], mask)

        grad_fn = jax.grad(batch_loss)

        def step(carry, batch, X, Y):
            params, m, v, t = carry
            g = grad_fn(params, batch, X, Y)
            if solver == "adam":
                t = t + 1
                m = jax.tree_util.tree_map(lambda m_, g_: BETA_1 * m_ + (1 - BETA_1) * g_, m, g)
                v = jax.tree_util.tree_map(lambda v_, g_: BETA_2 * v_ + (1 - BETA_2) * g_ * g_, v, g)
                lr_t = lr * jnp.sqrt(1 - BETA_2 ** t) / (1 - BETA_1 ** t)
                params = jax.tree_util.tree_map(
                    lambda p, m_, v_: p - lr_t * m_ / (jnp.sqrt(v_) + EPSILON), params, m, v
                )
            else:  # sgd, momentum 0
                params = jax.tree_util.tree_map(lambda p, g_: p - lr * g_, params, g)
            return (params, m, v, t), None

        def epoch(params, m, v, t, X, Y, batches):
            carry, _ = lax.scan(lambda c, b: step(c, b, X, Y), (params, m, v, t), batches)
            return carry

        return jax.jit(epoch)

    # ---- host side

    def _prepare(self, X, y):
        import jax.numpy as jnp

        dtype, Y, labels, classes, output, units = self._start(X, y)
        self.output_, self.classes_ = output, classes
        self._dtype = dtype
        self._units = units
        self._Y = jnp.asarray(Y)
        self._sparse = sp.issparse(X)
        self._X = None if self._sparse else jnp.asarray(np.ascontiguousarray(X))
        self._batch_size = min(self.workload.batch_size or 1, X.shape[0])
        if self._sparse:
            self._bound = sparse_entry_bound(X, self._batch_size)

    def _batches(self, X, rng):
        import jax.numpy as jnp

        idx, mask = epoch_index(rng, X.shape[0], self._batch_size)
        mask = mask.astype(self._dtype)
        if not self._sparse:
            return (jnp.asarray(idx), jnp.asarray(mask))
        order = idx.ravel()[: X.shape[0]]
        rows, cols, vals = pack_sparse_epoch(X, order, self._batch_size, self._bound)
        return tuple(jnp.asarray(a) for a in (idx, mask, rows, cols, vals))

    def _initial_state(self):
        import jax.numpy as jnp

        params = tuple((jnp.asarray(W), jnp.asarray(b)) for W, b in glorot_init(self._units, self._dtype))
        zeros = self.jax.tree_util.tree_map(jnp.zeros_like, params)
        t = jnp.asarray(0, dtype=self._dtype)
        return params, zeros, zeros, t

    def compile(self, X, y):
        """Compile the epoch (or the L-BFGS objective) for X's shapes; return the seconds taken.

        For an epoch, ``compile_phases`` then holds the seconds of tracing
        and lowering to StableHLO and of XLA's compile, apart.
        """
        self._prepare(X, y)
        if self.workload.solver == "lbfgs":
            start = time.perf_counter()
            self._compile_lbfgs(X)
            self.compile_phases = None
        else:
            batches = self._batches(X, np.random.RandomState(0))
            params, m, v, t = self._initial_state()
            start = time.perf_counter()
            epoch = self._make_epoch(self._sparse, self._batch_size, self._dtype)
            lowered = epoch.lower(params, m, v, t, self._X, self._Y, batches)
            lowered_at = time.perf_counter()
            self._compiled = lowered.compile()
            self.compile_phases = {"trace_and_lower": lowered_at - start,
                                   "xla_compile": time.perf_counter() - lowered_at}
        self.compile_seconds = time.perf_counter() - start
        return self.compile_seconds

    def fit(self, X, y):
        if self._compiled is None:
            self.compile(X, y)
        else:
            self._prepare(X, y)
        if self.workload.solver == "lbfgs":
            return self._fit_lbfgs(X)
        rng = np.random.RandomState(0)
        params, m, v, t = self._initial_state()
        for _ in range(self.workload.max_iter):
            batches = self._batches(X, rng)
            params, m, v, t = self._compiled(params, m, v, t, self._X, self._Y, batches)
        self.jax.block_until_ready(params)
        self.params_ = [(np.asarray(W), np.asarray(b)) for W, b in params]
        self.n_iter_ = self.workload.max_iter
        return self

    def _unflatten(self, flat):
        shapes, offsets = self._flat_layout(self._units)
        n_layers = len(self._units) - 1
        return tuple(
            (flat[offsets[i]:offsets[i + 1]].reshape(shapes[i]),
             flat[offsets[n_layers + i]:offsets[n_layers + i + 1]])
            for i in range(n_layers)
        )

    def _compile_lbfgs(self, X):
        import jax.numpy as jnp

        jax = self.jax
        n = X.shape[0]
        mask = jnp.ones(n, dtype=self._dtype)
        idx = jnp.arange(n, dtype=jnp.int32)

        def objective(flat, X, Y):
            params = self._unflatten(flat.astype(self._dtype))
            return self._loss(params, self._first_layer_dense(params, X, idx), Y, mask)

        flat0 = jnp.zeros(self._flat_layout(self._units)[1][-1], dtype=jnp.float64)
        self._compiled = jax.jit(jax.value_and_grad(objective)).lower(flat0, self._X, self._Y).compile()

    def _fit_lbfgs(self, X):
        import jax.numpy as jnp

        init = glorot_init(self._units, np.float64)
        x0 = np.concatenate([W.ravel() for W, _ in init] + [b for _, b in init])

        def loss_grad(x):
            value, grad = self._compiled(jnp.asarray(x), self._X, self._Y)
            return float(value), np.asarray(grad, dtype=np.float64)

        x, self.n_iter_ = lbfgs(loss_grad, x0, self.workload.max_iter)
        self.params_ = [(W.astype(self._dtype), b.astype(self._dtype)) for W, b in self._unflatten(x)]
        return self

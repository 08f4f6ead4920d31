"""Whole-epoch and whole-dataset loops: one compiled call each.

``train_epoch`` runs every mini-batch of an epoch (gather rows by index,
forward, loss, backward, optimizer step) with no Python in between, and
``train_epoch_one_row`` does the same for mini-batches of one dense row;
``loss_and_gradient`` (``raw_loss_and_gradient`` then
``finish_loss_and_gradient``) evaluates the full-data objective and its
gradient for L-BFGS (``predict`` is in :mod:`.prediction`). All but the
one-row kernel take the input as a dense array ``X`` and a
``csr`` argument: None for dense input, or the CSR arrays
``(data, indices, indptr)`` (X is then a dummy). Dense and CSR input compile
separate specialisations, the dense one without the CSR code.

The kernels that run a network are compiled per combination of its codes
(:class:`._jit.Specialised`): ``train_epoch[hidden, out, loss]`` is the
kernel of networks whose hidden layers all have the activation ``hidden``,
whose output activation is ``out`` and whose loss is ``loss``, and compiles
only those activations and that loss (``network.network_codes`` gives a
network's codes). A code of None is read at run time instead, from the
layer table or the ``loss_code`` argument: ``train_epoch[None, None, None]``
serves every network, with every activation and loss compiled in.
"""

import numpy as np

from ._arrays import matrix_view, prefetch_row
from ._jit import jit, specialised
from ._sync import meet, store_release, wait_for_epoch
from .dropout import draw_masks
from .losses import output_derivative, output_error, weighted_loss
from .network import (
    ACTIVATION,
    COEF_OFFSET,
    FAN_IN,
    FAN_OUT,
    INTERCEPT_OFFSET,
    activate_layer,
    backward,
    backward_recording,
    copy_rows,
    derive_layer,
    finalize_gradient,
    forward,
    forward_recording,
    squared_coef_norm,
    squared_sum,
    unit_view,
)
from .optimizers import (
    adam_element,
    adam_rates,
    adam_update,
    clip_scale,
    cosine_rate,
    finished_squared_norm,
    sgd_element,
    sgd_update,
)

# Positions in the float64 ``hyper`` vector of train_epoch.
LEARNING_RATE = 0
MOMENTUM = 1
NESTEROV = 2
BETA_1 = 3
BETA_2 = 4
EPSILON = 5
N_HYPER = 6


@jit(internal=True)
def raw_batch_gradient(
    Xb, csr, rows, Yb, swb, params, layers, acts, deltas, slopes, capacity, grads, loss_code, eps, huber_delta,
    zs, dAs, dropout, hidden_code, out_code,
):
    """Forward pass, loss and backward pass of one batch; RAW gradient sums into ``grads``.

    Unless they are None, ``zs`` (layout of ``acts``) receives the pre-activations
    and ``dAs`` (layout of ``deltas``) the back-propagated ``dZ[l+1] W^T`` of
    every hidden layer, both before any division by the weight sum, and
    ``dropout`` = ``(masks, kept)`` applies the dropout masks ``masks`` to
    the hidden layers (see ``network.forward_recording``). The activation
    codes are compile-time constants (see ``network.forward``), the loss
    code a compile-time constant or a run-time value.

    Returns
    -------
    data_loss : float
        ``sum_i s_i loss_i`` over the batch.
    weight_sum : float
        ``S = sum_i s_i``.
    """
    output = forward_recording(
        Xb, csr, rows, params, layers, acts, capacity, zs, dropout, slopes, hidden_code, out_code, False
    )
    n_layers = layers.shape[0]
    weight_sum = 0.0
    for i in range(swb.shape[0]):
        weight_sum += swb[i]
    data_loss = weighted_loss(output, Yb, swb, loss_code, eps, huber_delta)
    delta = unit_view(deltas, layers, n_layers - 1, capacity, output.shape[0])
    output_layer_error(output, Yb, swb, layers, out_code, loss_code, huber_delta, delta)
    backward_recording(
        Xb, csr, rows, params, layers, acts, deltas, capacity, grads, dAs, dropout, slopes, hidden_code
    )
    return data_loss, weight_sum


@jit(internal=True)
def output_layer_error(output, Y, sample_weight, layers, out_code, loss_code, huber_delta, delta):
    """Write the output error ``s_i * d loss_i / dZ`` into ``delta``; an ``out_code`` of None reads the table's."""
    output_error(output, Y, sample_weight, loss_code, huber_delta, delta)
    if out_code is None:
        output_derivative(output, None, delta, layers[layers.shape[0] - 1, ACTIVATION], loss_code)
    else:
        output_derivative(output, None, delta, out_code, loss_code)


@jit(internal=True)
def reported_loss(data_loss, penalty, weight_sum, alpha, loss_scale):
    """The objective as scikit-learn reports it: ``loss_scale * L / S + alpha / 2 * ||W||^2 / S``."""
    return loss_scale * data_loss / weight_sum + 0.5 * alpha * penalty / weight_sum


@specialised
def batch_loss_and_gradient_recording(hidden_code, out_code, loss_constant):
    """One batch's objective, with its finished gradient in ``grads``.

    Arguments are those of :func:`raw_batch_gradient` plus ``alpha``,
    ``loss_scale`` and ``fit_intercepts``; returns :func:`reported_loss`.
    With ``dropout``, the objective and gradient are those of the network
    whose hidden outputs are multiplied by the given masks.
    """
    def batch_loss_and_gradient_recording(
        Xb, csr, rows, Yb, swb, params, layers, acts, deltas, slopes,
        capacity, grads, alpha, loss_code, loss_scale, eps, huber_delta, fit_intercepts, zs, dAs, dropout,
    ):
        loss = loss_code if loss_constant is None else loss_constant
        data_loss, weight_sum = raw_batch_gradient(
            Xb, csr, rows, Yb, swb, params, layers, acts, deltas, slopes,
            capacity, grads, loss, eps, huber_delta, zs, dAs, dropout, hidden_code, out_code,
        )
        return finish_loss_and_gradient(
            grads, params, layers, data_loss, weight_sum, alpha, loss_scale, fit_intercepts
        )

    return batch_loss_and_gradient_recording


@jit(internal=True)
def part_bound(n, part, n_parts):
    """Start of part ``part`` of ``n`` items cut into ``n_parts`` near-equal parts."""
    return n * part // n_parts


@jit(internal=True)
def parameter_bound(n_params, part, n_parts):
    """Start of part ``part`` of the flat buffer, on a 16-item boundary (no shared cache line)."""
    if part == n_parts:
        return n_params
    return min(n_params, (part_bound(n_params, part, n_parts) + 15) // 16 * 16)


@jit(internal=True)
def step_range(params, total_grads, velocity, first_moment, second_moment, step, rate, hyper,
               alpha, weight_sum, n_coefs, fit_intercepts, start, stop, scale):
    """The optimizer step of ``params[start:stop]`` with the finished gradient times ``scale`` (None: 1).

    ``rate`` is the step's learning rate (float64); returns the range's
    ``||W||^2`` before the step (see ``optimizers.sgd_update``).
    """
    penalty = 0.0
    # the one step below that a specialisation keeps (the other's state is None)
    if first_moment is not None:
        penalty = adam_update(
            params, total_grads, first_moment, second_moment, step, rate, hyper[BETA_1],
            hyper[BETA_2], hyper[EPSILON], alpha, weight_sum, n_coefs, fit_intercepts, start, stop, scale,
        )
    if velocity is not None:
        dtype = params.dtype.type
        penalty = sgd_update(
            params, total_grads, velocity, dtype(rate), dtype(hyper[MOMENTUM]), hyper[NESTEROV] != 0,
            alpha, weight_sum, n_coefs, fit_intercepts, start, stop, scale,
        )
    return penalty


@specialised
def train_epoch(hidden_code, out_code, loss_constant):
    """Train one epoch over the rows ``order`` in mini-batches of ``batch_size``.

    Each mini-batch is cut into ``n_parts`` (the first dimension of the work
    buffers) consecutive parts of its rows. Every part's forward and backward
    passes give raw gradient sums; these are added up part by part, in part
    order, and the optimizer steps the flat buffer in ``n_parts`` ranges,
    each range's ``||W||^2`` summed apart. ``n_threads`` calls running at
    once share the parts and ranges: thread ``t`` computes those numbered
    ``t``, ``t + n_threads``, ..., and the threads meet at two barriers per
    mini-batch (:func:`kernels._sync.meet`), three with gradient clipping
    (the ranges' shares of ``||g||^2`` are added in range order after the
    second). The arithmetic of a part does not depend on the thread that
    computes it, so the results do not depend on ``n_threads``; with one
    part they are scikit-learn's, up to the order of the terms of the sums.

    Thread 0 runs one epoch per call. Any other thread is a worker: it runs
    its parts of every epoch that thread 0 starts (``order``, ``hyper`` and
    the dropout seed and epoch are read anew at each; the caller rewrites
    them in place between epochs) until the abort flag is raised, so that
    no thread is woken between the epochs of a fit.

    The cosine schedule, gradient clipping and dropout are compile-time
    choices, as the solver is: Numba prunes the code of each whose argument
    is None, so a fit without them compiles none of it.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Dense input (a dummy when ``csr`` is given).
    csr : tuple of ndarray or None
        ``(data, indices, indptr)`` of a CSR input, or None for dense input
        (a compile-time choice, as in :func:`forward`).
    Y : ndarray of shape (n_samples, n_outputs)
        Targets in X's dtype.
    sample_weight : ndarray of shape (n_samples,)
        Weight of each sample (ones when the user gave none).
    order : ndarray of shape (n_train,)
        Row numbers in the order they are visited; batches are consecutive
        slices of it, the last one possibly shorter.
    batch_size : int
        Rows per mini-batch (at most ``n_parts`` times the parts' capacity).
    params : ndarray of shape (n_params,)
        Flat parameters, updated in place.
    layers : ndarray of shape (n_layers, 5)
        Layer table.
    acts, deltas : ndarray of shape (n_parts, capacity * sum(fan_out))
        Work buffers of each part, ``capacity`` rows each.
    slopes : ndarray of shape (n_parts, capacity * n_slope_units) or None
        Slopes of each part's gelu and silu layers (see ``network``); None
        when the network has none.
    grads : ndarray of shape (n_parts, n_params)
        Raw gradient sums of each part (the first row receives their total).
    Xb : ndarray of shape (n_parts, capacity, n_features)
        Gathered rows of each part (a dummy with no rows when ``csr`` is given).
    Yb : ndarray of shape (n_parts, capacity, n_outputs)
        Gathered targets of each part.
    swb : ndarray of shape (n_parts, capacity)
        Gathered sample weights of each part.
    rows : ndarray of shape (n_parts, capacity)
        Row numbers of each part.
    part_sums : ndarray of shape (n_parts, 3), or (n_parts, 4) with ``max_grad_norm``
        Per part: data loss, weight sum, the ``||W||^2`` of its range and,
        with clipping, the range's share of ``||g||^2``.
    alpha, loss_scale, eps, huber_delta : float
        L2 strength, factor on the reported data loss, log-loss clipping,
        Huber's threshold.
    loss_code : int
        Loss code (the kernel's own when it was compiled for one).
    fit_intercepts : bool
        Whether intercepts are trained.
    hyper : ndarray of shape (N_HYPER,)
        Learning rate, momentum, Nesterov flag, beta_1, beta_2, epsilon.
    velocity : ndarray of shape (n_params,) or None
        SGD's velocity; None for Adam.
    first_moment, second_moment : ndarray of shape (n_params,) or None
        Adam's moments; None for SGD. The solver is a compile-time choice:
        Numba prunes the code of the solver whose state is None.
    step_counter : ndarray of shape (1,)
        The optimizer's step count, advanced once per batch (by thread 0,
        at the end of the epoch) for Adam and for the cosine schedule.
    schedule : tuple of (int, int) or None
        With ``(n_steps, n_warmup)``, the learning rate of the step numbered
        from 0 over the optimizer's life (``step_counter``) is
        ``optimizers.cosine_rate`` of the rate in ``hyper``; None for the
        rate in ``hyper``.
    max_grad_norm : float or None
        Clip each mini-batch's finished gradient to this L2 norm
        (``optimizers.clip_scale``); None for no clipping.
    dropout : tuple or None
        ``(masks, kept, seed_epoch, thresholds, scales)`` for dropout on the
        hidden layers: two buffers of the shape of ``acts``, and the
        arguments of ``dropout.draw_masks``; None for no dropout.
    thread : int
        This call's thread number, from 0 to ``n_threads - 1``.
    n_threads : int
        Threads that share the epoch, at most ``n_parts``.
    sync : ndarray of shape (n_threads + 2,) of int64, or None
        Barrier counters, abort flag and epochs started (see
        ``kernels._sync``), zero before the first epoch of the workers;
        None compiles no thread code (then ``n_threads`` must be 1).

    Returns
    -------
    loss_sum : float
        Sum over batches of the batch loss times the batch length, or NaN
        when the epoch was aborted; for a worker, the number of epochs it ran.
    """

    def train_epoch(
        X, csr, Y, sample_weight, order, batch_size,
        params, layers, acts, deltas, slopes, grads, Xb, Yb, swb, rows, part_sums,
        alpha, loss_code, loss_scale, eps, huber_delta, fit_intercepts,
        hyper, velocity, first_moment, second_moment, step_counter,
        schedule, max_grad_norm, dropout, thread, n_threads, sync,
    ):
        return train_epoch_coded(
            X, csr, Y, sample_weight, order, batch_size,
            params, layers, acts, deltas, slopes, grads, Xb, Yb, swb, rows, part_sums,
            alpha, loss_code, loss_scale, eps, huber_delta, fit_intercepts,
            hyper, velocity, first_moment, second_moment, step_counter,
            schedule, max_grad_norm, dropout, thread, n_threads, sync,
            hidden_code, out_code, loss_constant,
        )

    return train_epoch


@jit(internal=True)
def train_epoch_coded(
    X, csr, Y, sample_weight, order, batch_size,
    params, layers, acts, deltas, slopes, grads, Xb, Yb, swb, rows, part_sums,
    alpha, loss_code, loss_scale, eps, huber_delta, fit_intercepts,
    hyper, velocity, first_moment, second_moment, step_counter,
    schedule, max_grad_norm, dropout, thread, n_threads, sync,
    hidden_code, out_code, loss_constant,
):
    """:func:`train_epoch` with its codes as arguments: compile-time constants, or None for run-time ones."""
    loss = loss_code if loss_constant is None else loss_constant
    n_train = order.shape[0]
    n_parts = acts.shape[0]
    capacity = rows.shape[1]
    n_params = params.shape[0]
    threaded = n_threads > 1
    worker = thread != 0
    dtype = params.dtype.type
    typed_alpha = dtype(alpha)
    n_coefs = layers[0, INTERCEPT_OFFSET]
    total_grads = grads[0]
    epochs = 0
    # a worker loops over epochs here: the epoch's code is written once in this
    # function (as a separate helper it would add to the first compile)
    while True:
        barrier = 0  # barriers this thread has met, counted on from earlier epochs
        if sync is not None:
            if worker and not wait_for_epoch(sync, n_threads, epochs + 1):
                break
            if threaded:
                barrier = sync[thread]
                if not worker:  # start the epoch for the workers
                    store_release(sync, n_threads + 1, sync[n_threads + 1] + 1)
        first_step = step_counter[0]
        n_batches = 0
        loss_sum = 0.0
        for start in range(0, n_train, batch_size):
            n_rows = min(batch_size, n_train - start)
            n_batches += 1
            step = first_step + n_batches  # this batch's step, numbered from 1
            rate = hyper[LEARNING_RATE]
            if schedule is not None:
                rate = cosine_rate(rate, step - 1, schedule[0], schedule[1])
            for p in range(thread, n_parts, n_threads):
                part_start = start + part_bound(n_rows, p, n_parts)
                part_rows = start + part_bound(n_rows, p + 1, n_parts) - part_start
                batch_rows = rows[p, :part_rows]
                sw_part = swb[p, :part_rows]
                part_order = order[part_start : part_start + part_rows]
                for k in range(part_rows):
                    r = part_order[k]
                    batch_rows[k] = r
                    sw_part[k] = sample_weight[r]
                copy_rows(Y, batch_rows, Yb[p, :part_rows])
                if csr is None:
                    X_batch = Xb[p, :part_rows]
                    copy_rows(X, batch_rows, X_batch)
                else:
                    X_batch = Xb[p, :0]
                if part_rows == 0:
                    grads[p, :] = 0
                    part_sums[p, 0], part_sums[p, 1] = 0.0, 0.0
                elif dropout is None:
                    part_sums[p, 0], part_sums[p, 1] = raw_batch_gradient(
                        X_batch, csr, batch_rows, Yb[p, :part_rows], sw_part,
                        params, layers, acts[p], deltas[p], None if slopes is None else slopes[p],
                        capacity, grads[p], loss, eps, huber_delta, None, None, None, hidden_code, out_code,
                    )
                else:
                    masks, kept = dropout[0][p], dropout[1][p]
                    draw_masks(dropout[2], dropout[3], dropout[4], layers, batch_rows, masks, capacity)
                    part_sums[p, 0], part_sums[p, 1] = raw_batch_gradient(
                        X_batch, csr, batch_rows, Yb[p, :part_rows], sw_part,
                        params, layers, acts[p], deltas[p], None if slopes is None else slopes[p],
                        capacity, grads[p], loss, eps, huber_delta, None, None, (masks, kept), hidden_code, out_code,
                    )
            if sync is not None and threaded:
                barrier += 1
                if not meet(sync, thread, n_threads, barrier):
                    return np.nan
            data_loss, weight_sum = 0.0, 0.0
            for p in range(n_parts):
                data_loss += part_sums[p, 0]
                weight_sum += part_sums[p, 1]
            typed_sum = dtype(weight_sum)
            for p in range(thread, n_parts, n_threads):
                range_start = parameter_bound(n_params, p, n_parts)
                range_stop = parameter_bound(n_params, p + 1, n_parts)
                total_range = total_grads[range_start:range_stop]  # views looped from 0 vectorise
                for q in range(1, n_parts):
                    part_range = grads[q, range_start:range_stop]
                    for k in range(total_range.shape[0]):
                        total_range[k] += part_range[k]
                if max_grad_norm is None:
                    part_sums[p, 2] = step_range(
                        params, total_grads, velocity, first_moment, second_moment, step, rate, hyper,
                        typed_alpha, typed_sum, n_coefs, fit_intercepts, range_start, range_stop, None,
                    )
                else:
                    part_sums[p, 3] = finished_squared_norm(
                        params, total_grads, typed_alpha, typed_sum, n_coefs, fit_intercepts,
                        range_start, range_stop,
                    )
            if max_grad_norm is not None:
                if sync is not None and threaded:
                    barrier += 1
                    if not meet(sync, thread, n_threads, barrier):
                        return np.nan
                squared_norm = 0.0
                for p in range(n_parts):  # in range order: the same sum in every thread
                    squared_norm += part_sums[p, 3]
                scale = dtype(clip_scale(max_grad_norm, squared_norm))
                for p in range(thread, n_parts, n_threads):
                    range_start = parameter_bound(n_params, p, n_parts)
                    range_stop = parameter_bound(n_params, p + 1, n_parts)
                    part_sums[p, 2] = step_range(
                        params, total_grads, velocity, first_moment, second_moment, step, rate, hyper,
                        typed_alpha, typed_sum, n_coefs, fit_intercepts, range_start, range_stop, scale,
                    )
            if sync is not None and threaded:
                barrier += 1
                if not meet(sync, thread, n_threads, barrier):
                    return np.nan
            penalty = 0.0
            for p in range(n_parts):
                penalty += part_sums[p, 2]
            loss_sum += reported_loss(data_loss, penalty, weight_sum, alpha, loss_scale) * n_rows
        if not worker and (first_moment is not None or schedule is not None):
            step_counter[0] = first_step + n_batches
        epochs += 1
        if not worker:
            return loss_sum
    return float(epochs)


@jit(internal=True)
def per_weight(value, weight_sum, unit_weight):
    """``value / weight_sum``, or ``value`` itself when ``unit_weight`` (the weight is exactly 1).

    Dividing by 1 is exact, so skipping it changes no result; in a one-row
    weight update the division costs more than the rest of the update.
    """
    return value if unit_weight else value / weight_sum


@jit(internal=True)
def one_row_squared_norm(
    x, params, layers, acts, deltas, slopes, alpha, weight_sum, unit_weight, fit_intercepts, hidden_code,
):
    """Back-propagate one row's output error through every layer; return ``||g||^2`` of its finished gradient.

    ``acts`` and ``deltas`` are the one-row buffers of
    :func:`train_epoch_one_row` after its forward pass, with the output
    error in place; every layer's error is left in ``deltas`` (computed as
    that kernel computes it) and nothing else is written. ``g`` is that
    kernel's gradient: ``(a_i d_j + alpha W_ij) / S`` and ``d_j / S`` (0
    without ``fit_intercepts``), squares summed in float64.
    """
    n_layers = layers.shape[0]
    total = 0.0
    unit_start = acts.shape[0]
    for l in range(n_layers - 1, -1, -1):
        fan_in, fan_out = layers[l, FAN_IN], layers[l, FAN_OUT]
        coef_start = layers[l, COEF_OFFSET]
        unit_start -= fan_out
        delta = deltas[unit_start : unit_start + fan_out]
        A_prev = acts[unit_start - fan_in : unit_start] if l > 0 else x
        W = matrix_view(params[coef_start : coef_start + fan_in * fan_out], fan_in, fan_out)
        for i in range(fan_in):
            a = A_prev[i]
            for j in range(fan_out):
                g = per_weight(a * delta[j] + alpha * W[i, j], weight_sum, unit_weight)
                total += np.float64(g) * g
        if fit_intercepts:
            for j in range(fan_out):
                g = per_weight(delta[j], weight_sum, unit_weight)
                total += np.float64(g) * g
        if l > 0:
            delta_prev = deltas[unit_start - fan_in : unit_start]
            for i in range(fan_in):
                sent = delta.dtype.type(0)
                for j in range(fan_out):
                    sent += delta[j] * W[i, j]
                delta_prev[i] = sent
            derive_layer(
                matrix_view(A_prev, 1, fan_in), matrix_view(delta_prev, 1, fan_in), slopes, layers, l - 1, 1,
                hidden_code,
            )
    return total


# Layers with fewer output units than this run their one-row loops with the
# inputs innermost: an inner loop of one or two iterations costs more in
# set-up than in work.
NARROW_LAYER = 8


@specialised
def train_epoch_one_row(hidden_code, out_code, loss_constant):
    """:func:`train_epoch` with mini-batches of ONE row of dense input, fused per row.

    A one-row step is too small for BLAS calls and separate passes to pay
    off, so each row runs as plain loops over the flat buffers: the forward
    pass, then one walk down the layers that computes the error sent to the
    layer below with the weights not yet moved and then finishes and applies
    the gradient of the layer's weights and intercepts element by element.
    The arithmetic is :func:`train_epoch`'s with ``batch_size=1``, up to the
    order of the terms of each sum. Per-row overheads dominate such small
    steps, hence the prefetch of the next row of X, four inputs per pass in
    wide layers, no division by a weight of 1 and aligned buffers.

    With ``max_grad_norm``, the errors of every layer and the gradient's
    norm are computed first (:func:`one_row_squared_norm`), since the
    clipped step of a layer needs the norm of them all; the walk down the
    layers then only steps the weights.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Dense input.
    Y, sample_weight, order, params, layers, alpha, loss_code, loss_scale, eps, huber_delta, \
fit_intercepts, hyper, velocity, first_moment, second_moment, step_counter, \
schedule, max_grad_norm
        As for :func:`train_epoch`.
    acts, deltas : ndarray of shape (sum(fan_out),)
        Work buffers for one row.
    slopes : ndarray of shape (n_slope_units,) or None
        Slopes of the row's gelu and silu layers; None when there are none.

    Returns
    -------
    loss_sum : float
        Sum over rows of the one-row objective.
    """

    def train_epoch_one_row(
        X, Y, sample_weight, order, params, layers, acts, deltas, slopes,
        alpha, loss_code, loss_scale, eps, huber_delta, fit_intercepts,
        hyper, velocity, first_moment, second_moment, step_counter, schedule, max_grad_norm,
    ):
        return train_epoch_one_row_coded(
            X, Y, sample_weight, order, params, layers, acts, deltas, slopes,
            alpha, loss_code, loss_scale, eps, huber_delta, fit_intercepts,
            hyper, velocity, first_moment, second_moment, step_counter, schedule, max_grad_norm,
            hidden_code, out_code, loss_constant,
        )

    return train_epoch_one_row


@jit(internal=True)
def train_epoch_one_row_coded(
    X, Y, sample_weight, order, params, layers, acts, deltas, slopes,
    alpha, loss_code, loss_scale, eps, huber_delta, fit_intercepts,
    hyper, velocity, first_moment, second_moment, step_counter, schedule, max_grad_norm,
    hidden_code, out_code, loss_constant,
):
    """:func:`train_epoch_one_row` with its codes as arguments: compile-time constants, or None for run-time ones."""
    loss = loss_code if loss_constant is None else loss_constant
    dtype = params.dtype.type
    n_layers = layers.shape[0]
    learning_rate = dtype(hyper[LEARNING_RATE])
    momentum = dtype(hyper[MOMENTUM])
    nesterov = hyper[NESTEROV] != 0
    typed_alpha = dtype(alpha)
    zero = dtype(0)
    n_coefs = layers[0, INTERCEPT_OFFSET]
    n_units = acts.shape[0]
    out_start = n_units - layers[n_layers - 1, FAN_OUT]
    output = matrix_view(acts[out_start:], 1, n_units - out_start)
    out_delta = matrix_view(deltas[out_start:], 1, n_units - out_start)
    lr_t, b1, b2, c1, c2, adam_eps = 0.0, zero, zero, zero, zero, zero
    # state_a is stepped with each gradient; sgd keeps no state_b: its velocity stands in
    if velocity is not None:
        state_a, state_b = velocity, velocity
    if first_moment is not None:
        state_a, state_b = first_moment, second_moment
    loss_sum = 0.0
    n_rows = order.shape[0]
    for position in range(n_rows):
        r = order[position]
        if position + 1 < n_rows:
            prefetch_row(X, order[position + 1])  # rows are drawn at random from X
        # forward: Z = A_prev @ W, then bias and activation
        unit_start = 0
        A_prev = X[r]
        for l in range(n_layers):
            fan_in, fan_out = layers[l, FAN_IN], layers[l, FAN_OUT]
            coef_start = layers[l, COEF_OFFSET]
            W = matrix_view(params[coef_start : coef_start + fan_in * fan_out], fan_in, fan_out)
            Z = acts[unit_start : unit_start + fan_out]
            if fan_out >= NARROW_LAYER:
                # Four inputs per pass over Z, added in the plain loop's order: Z is
                # read and written a quarter as often.
                Z[:] = zero
                n_quads = fan_in // 4
                for quad in range(n_quads):
                    i = 4 * quad
                    a0, a1, a2, a3 = A_prev[i], A_prev[i + 1], A_prev[i + 2], A_prev[i + 3]
                    W0, W1, W2, W3 = W[i], W[i + 1], W[i + 2], W[i + 3]
                    for j in range(fan_out):
                        Z[j] = (((Z[j] + a0 * W0[j]) + a1 * W1[j]) + a2 * W2[j]) + a3 * W3[j]
                for i in range(4 * n_quads, fan_in):
                    a = A_prev[i]
                    for j in range(fan_out):
                        Z[j] += a * W[i, j]
            else:
                for j in range(fan_out):
                    total = zero
                    for i in range(fan_in):
                        total += A_prev[i] * W[i, j]
                    Z[j] = total
            bias = params[layers[l, INTERCEPT_OFFSET] : layers[l, INTERCEPT_OFFSET] + fan_out]
            if l < n_layers - 1:
                activate_layer(matrix_view(Z, 1, fan_out), bias, slopes, layers, l, 1, hidden_code)
            else:
                activate_layer(matrix_view(Z, 1, fan_out), bias, None, layers, l, 1, out_code)
            A_prev = Z
            unit_start += fan_out
        Y_row = Y[r : r + 1]
        weight_row = sample_weight[r : r + 1]
        weight_sum = np.float64(sample_weight[r])
        typed_sum = dtype(weight_sum)
        unit_weight = typed_sum == 1
        data_loss = weighted_loss(output, Y_row, weight_row, loss, eps, huber_delta)
        output_layer_error(output, Y_row, weight_row, layers, out_code, loss, huber_delta, out_delta)
        penalty = squared_sum(params, n_coefs)
        rate = hyper[LEARNING_RATE]
        if schedule is not None:
            rate = cosine_rate(rate, step_counter[0], schedule[0], schedule[1])
            learning_rate = dtype(rate)
            step_counter[0] += 1
        if first_moment is not None:
            if schedule is None:
                step_counter[0] += 1
            lr_t, b1, b2, c1, c2, adam_eps = adam_rates(
                params, step_counter[0], rate, hyper[BETA_1], hyper[BETA_2], hyper[EPSILON]
            )
        scale = zero
        if max_grad_norm is not None:
            squared_norm = one_row_squared_norm(
                X[r], params, layers, acts, deltas, slopes, typed_alpha, typed_sum, unit_weight, fit_intercepts,
                hidden_code,
            )
            scale = dtype(clip_scale(max_grad_norm, squared_norm))
        # backward, layer by layer from the top, each layer's step fused in
        for l in range(n_layers - 1, -1, -1):
            fan_in, fan_out = layers[l, FAN_IN], layers[l, FAN_OUT]
            coef_start = layers[l, COEF_OFFSET]
            unit_start -= fan_out
            delta = deltas[unit_start : unit_start + fan_out]
            if l > 0:
                A_prev = acts[unit_start - fan_in : unit_start]
                delta_prev = deltas[unit_start - fan_in : unit_start]
            else:
                A_prev = X[r]
                delta_prev = deltas[:0]
            # 2-D views indexed by loop counters: no negative-index checks, so the loops vectorise.
            # The solver branches (``first_moment is not None``: adam) are written out at
            # each loop: one helper taking the solver (15 arguments) was not inlined,
            # which made the epoch many times slower.
            n_coefs_l = fan_in * fan_out
            W = matrix_view(params[coef_start : coef_start + n_coefs_l], fan_in, fan_out)
            W_a = matrix_view(state_a[coef_start : coef_start + n_coefs_l], fan_in, fan_out)
            W_b = matrix_view(state_b[coef_start : coef_start + n_coefs_l], fan_in, fan_out)
            # with clipping, the errors are already back-propagated (one_row_squared_norm)
            if fan_out >= NARROW_LAYER:
                for i in range(fan_in):
                    if max_grad_norm is None:
                        if l > 0:
                            total = zero
                            for j in range(fan_out):
                                total += delta[j] * W[i, j]
                            delta_prev[i] = total
                    a = A_prev[i]
                    if first_moment is not None:
                        for j in range(fan_out):
                            g = per_weight(a * delta[j] + typed_alpha * W[i, j], typed_sum, unit_weight)
                            if max_grad_norm is not None:
                                g = g * scale
                            adam_element(W, W_a, W_b, (i, j), g, lr_t, b1, b2, c1, c2, adam_eps)
                    else:
                        for j in range(fan_out):
                            g = per_weight(a * delta[j] + typed_alpha * W[i, j], typed_sum, unit_weight)
                            if max_grad_norm is not None:
                                g = g * scale
                            sgd_element(W, W_a, (i, j), g, learning_rate, momentum, nesterov)
            else:
                if max_grad_norm is None:
                    if l > 0:
                        delta_prev[:] = zero
                        for j in range(fan_out):
                            d = delta[j]
                            for i in range(fan_in):
                                delta_prev[i] += d * W[i, j]
                for j in range(fan_out):
                    d = delta[j]
                    if first_moment is not None:
                        for i in range(fan_in):
                            g = per_weight(A_prev[i] * d + typed_alpha * W[i, j], typed_sum, unit_weight)
                            if max_grad_norm is not None:
                                g = g * scale
                            adam_element(W, W_a, W_b, (i, j), g, lr_t, b1, b2, c1, c2, adam_eps)
                    else:
                        for i in range(fan_in):
                            g = per_weight(A_prev[i] * d + typed_alpha * W[i, j], typed_sum, unit_weight)
                            if max_grad_norm is not None:
                                g = g * scale
                            sgd_element(W, W_a, (i, j), g, learning_rate, momentum, nesterov)
            intercept_start = layers[l, INTERCEPT_OFFSET]
            b = params[intercept_start : intercept_start + fan_out]
            b_a = state_a[intercept_start : intercept_start + fan_out]
            b_b = state_b[intercept_start : intercept_start + fan_out]
            for j in range(fan_out):
                g = per_weight(delta[j], typed_sum, unit_weight) if fit_intercepts else zero
                if max_grad_norm is not None:
                    g = g * scale
                if first_moment is not None:
                    adam_element(b, b_a, b_b, j, g, lr_t, b1, b2, c1, c2, adam_eps)
                else:
                    sgd_element(b, b_a, j, g, learning_rate, momentum, nesterov)
            if max_grad_norm is None and l > 0:
                derive_layer(
                    matrix_view(A_prev, 1, fan_in), matrix_view(delta_prev, 1, fan_in), slopes, layers, l - 1, 1,
                    hidden_code,
                )
        loss_sum += reported_loss(data_loss, penalty, weight_sum, alpha, loss_scale)
    return loss_sum


@specialised
def loss_and_gradient(hidden_code, out_code, loss_constant):
    """Objective and gradient over all rows, in chunks of ``capacity`` rows.

    :func:`raw_loss_and_gradient` then :func:`finish_loss_and_gradient`;
    returns the objective as scikit-learn's L-BFGS sees it (see
    :func:`reported_loss`).
    """

    def loss_and_gradient(
        X, csr, Y, sample_weight, params, layers, acts, deltas, slopes,
        grads, scratch, rows, capacity, alpha, loss_code, loss_scale, eps, huber_delta, fit_intercepts,
    ):
        data_loss, weight_sum = raw_loss_and_gradient_coded(
            X, csr, Y, sample_weight, params, layers, acts, deltas, slopes,
            grads, scratch, rows, capacity, loss_code if loss_constant is None else loss_constant,
            eps, huber_delta, hidden_code, out_code,
        )
        return finish_loss_and_gradient(
            grads, params, layers, data_loss, weight_sum, alpha, loss_scale, fit_intercepts
        )

    return loss_and_gradient


@specialised
def raw_loss_and_gradient(hidden_code, out_code, loss_constant):
    """Data loss and RAW gradient sums over all rows, in chunks of ``capacity`` rows.

    Raw gradient sums of every chunk are added up in ``grads`` (``scratch``
    holds each chunk after the first), so the result does not depend on the
    chunk size beyond floating-point reordering. ``slopes`` (None when the
    network has no gelu or silu layer) holds the slopes of one chunk.

    Returns
    -------
    data_loss : float
        ``sum_i s_i loss_i``.
    weight_sum : float
        ``S = sum_i s_i``.
    """

    def raw_loss_and_gradient(
        X, csr, Y, sample_weight, params, layers, acts, deltas, slopes,
        grads, scratch, rows, capacity, loss_code, eps, huber_delta,
    ):
        return raw_loss_and_gradient_coded(
            X, csr, Y, sample_weight, params, layers, acts, deltas, slopes,
            grads, scratch, rows, capacity, loss_code if loss_constant is None else loss_constant,
            eps, huber_delta, hidden_code, out_code,
        )

    return raw_loss_and_gradient


@jit(internal=True)
def raw_loss_and_gradient_coded(
    X, csr, Y, sample_weight, params, layers, acts, deltas, slopes,
    grads, scratch, rows, capacity, loss_code, eps, huber_delta, hidden_code, out_code,
):
    """:func:`raw_loss_and_gradient` with its codes as arguments (compile-time constants or, for None, run-time)."""
    n_samples = X.shape[0] if csr is None else csr[2].shape[0] - 1
    n_layers = layers.shape[0]
    data_loss = 0.0
    weight_sum = 0.0
    for start in range(0, n_samples, capacity):
        stop = min(start + capacity, n_samples)
        n_rows = stop - start
        chunk_rows = rows[:n_rows]
        for k in range(n_rows):
            chunk_rows[k] = start + k
        X_chunk = X[start:stop] if csr is None else X[:0]
        Y_chunk = Y[start:stop]
        sw_chunk = sample_weight[start:stop]
        for i in range(n_rows):
            weight_sum += sw_chunk[i]
        output = forward(X_chunk, csr, chunk_rows, params, layers, acts, capacity, slopes, hidden_code, out_code)
        data_loss += weighted_loss(output, Y_chunk, sw_chunk, loss_code, eps, huber_delta)
        delta = unit_view(deltas, layers, n_layers - 1, capacity, n_rows)
        output_layer_error(output, Y_chunk, sw_chunk, layers, out_code, loss_code, huber_delta, delta)
        target = grads if start == 0 else scratch
        backward(X_chunk, csr, chunk_rows, params, layers, acts, deltas, capacity, target, slopes, hidden_code)
        if start > 0:
            for k in range(grads.shape[0]):
                grads[k] += scratch[k]
    return data_loss, weight_sum


@jit(internal=True)
def finish_loss_and_gradient(grads, params, layers, data_loss, weight_sum, alpha, loss_scale, fit_intercepts):
    """Turn raw sums into the objective and, in ``grads``, its gradient.

    Adds the L2 term and divides by the weight sum (see
    :func:`finalize_gradient`); returns :func:`reported_loss`.
    """
    penalty = squared_coef_norm(params, layers)
    typed_sum = params.dtype.type(weight_sum)
    finalize_gradient(grads, params, layers, params.dtype.type(alpha), typed_sum, fit_intercepts)
    return reported_loss(data_loss, penalty, weight_sum, alpha, loss_scale)

"""The prediction loop: the forward pass over every row, one chunk of rows at a time.

A chunk's results do not depend on the thread that computes it or on the
chunks computed before, so the threads of a prediction take its chunks one
at a time from a shared counter, each next one going to whichever thread is
free first, and still return the bits of a prediction made in one thread.
"""

from ._jit import jit, specialised
from ._sync import fetch_add
from .activations import first_largest_softmax
from .network import copy_into, forward_recording, unit_view


@jit(internal=True)
def predict_chunk(X, csr, params, layers, acts, rows, capacity, out, labels, start, stop, hidden_code, out_code):
    """Forward pass of rows ``start:stop`` (one chunk) into ``out`` and, if not empty, ``labels``."""
    chunk_rows = rows[: stop - start]
    for k in range(stop - start):
        chunk_rows[k] = start + k
    X_chunk = X[start:stop] if csr is None else X[:0]
    logits_only = labels.shape[0] > 0
    output = forward_recording(
        X_chunk, csr, chunk_rows, params, layers, acts, capacity, None, None, None, hidden_code, out_code,
        logits_only,
    )
    copy_into(output, out[start:stop])
    if logits_only:
        # the same rows as ``output``, typed writable also when X is read-only
        logits = unit_view(acts, layers, layers.shape[0] - 1, capacity, stop - start)
        for k in range(stop - start):
            labels[start + k] = first_largest_softmax(logits[k])


@specialised
def predict(hidden_code, out_code):
    """Forward pass of every row, ``capacity`` rows at a time, into ``out``; or the labels of a softmax.

    ``predict[hidden, out]`` is the kernel of networks whose hidden layers
    all have the activation ``hidden`` (None: they differ) and whose output
    activation is ``out``.

    The calls of the threads that share a prediction take its chunks from
    the counter ``claims[0]`` until none is left.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Dense input (a dummy when ``csr`` is given).
    csr : tuple of ndarray or None
        ``(data, indices, indptr)`` of a CSR input, or None for dense input
        (a compile-time choice, as in ``forward``).
    params : ndarray of shape (n_params,)
        Flat parameters.
    layers : ndarray of shape (n_layers, 5)
        Layer table.
    acts : ndarray of shape (capacity * sum(fan_out),)
        Work buffer.
    rows : ndarray of shape (capacity,) of int64
        Work buffer of row numbers.
    capacity : int
        Rows per chunk.
    out : ndarray of shape (n_samples, n_outputs)
        Output activations.
    labels : ndarray of shape (n_samples,) or (0,) of int64
        Empty, or, for a network whose output layer is softmax, the index
        of each row's first largest output (:func:`first_largest_softmax`).
        The softmax is then skipped (it is computed only for rows with
        near ties), and ``out`` receives the logits.
    claims : ndarray of shape (1,) of int64
        Chunks claimed so far by the threads of the prediction (0 before
        the first call).
    """

    def predict(X, csr, params, layers, acts, rows, capacity, out, labels, claims):
        n_samples = out.shape[0]
        n_chunks = (n_samples + capacity - 1) // capacity
        chunk = fetch_add(claims, 0, 1)
        while chunk < n_chunks:
            start = chunk * capacity
            stop = min(start + capacity, n_samples)
            predict_chunk(
                X, csr, params, layers, acts, rows, capacity, out, labels, start, stop, hidden_code, out_code
            )
            chunk = fetch_add(claims, 0, 1)

    return predict

"""The prediction loop, and the board on which threads share its chunks.

``predict`` runs the forward pass over the data one chunk of ``capacity``
rows at a time. A chunk's results do not depend on the thread that computes
it, so threads can share the chunks of a call in any way.

Threads share them without Python between chunks: the calling thread posts
its call on a *board* (an int64 array, 64-byte aligned): the addresses and
sizes of its arrays, and a claim counter. Worker threads that stay in
:func:`predict` (as :func:`serve_chunks`) between calls, spinning, see the
call at once, claim chunks with a compare-and-swap, and make arrays of the
posted memory (``_arrays.vector_at``). The caller claims chunks too, then
waits for the last one to be done. A late worker simply takes fewer
chunks, and a call that no worker joins is computed by the caller alone.

The compile of ``predict`` grew from 0.5 to 1.7 s per dtype with the
labels and the board; a caller's chunks, in turn or shared, run in one
loop, so the forward pass has one call site for the caller (each call site
costs compile time).

Measured on digits 64-100-10, 1797 rows in 8 chunks of 225, on 2 cores
(outputs, median us per call): one thread 719; two blocks of 4 chunks, one
on a pool thread, 438 (the worker started about 20 us late, woken through
a lock and then the GIL, and the caller waited about 25 us more to be woken
in turn); the board 380. Class labels (``labels``): 470 -> 385-405.
"""

from ._arrays import matrix_view, vector_at
from ._jit import jit
from ._sync import compare_and_swap, fetch_add, load_acquire, spin_pause, store_release
from .activations import IDENTITY, first_largest_softmax
from .network import ACTIVATION, FAN_OUT, copy_into, forward_recording, unit_view

# Entries of a board; the two counters have cache lines of their own.
BOARD_CLAIM = 0  # (call number << 32) + number of the next chunk to claim
BOARD_DONE = 8  # chunks of the current call done
BOARD_STOP = 16  # raised: workers leave
BOARD_FAILED = 17  # raised when a worker failed in a chunk (see abandon_chunk)
BOARD_ITEMSIZE = 18  # the call's float size, 4 or 8
BOARD_X = 19  # the call's arrays: address, then sizes
BOARD_N_ROWS = 20
BOARD_N_FEATURES = 21
BOARD_PARAMS = 22
BOARD_N_PARAMS = 23
BOARD_LAYERS = 24
BOARD_N_LAYERS = 25
BOARD_OUT = 26
BOARD_N_OUTPUTS = 27
BOARD_LABELS = 28
BOARD_N_LABELS = 29
BOARD_ACTS = 30  # one slot of work buffers per thread, the caller's first
BOARD_ACTS_PER_SLOT = 31
BOARD_ROWS = 32
BOARD_SLOTS = 33
BOARD_CAPACITY = 34
BOARD_N_CHUNKS = 35
BOARD_IDLE_SPINS = 36  # spins a worker waits for a call before it leaves
BOARD_BUSY = 40  # + slot: 1 while that slot's worker computes a chunk
MAX_SLOTS = 64
BOARD_SERVED = BOARD_BUSY + MAX_SLOTS  # + slot: chunks that slot's worker computed
BOARD_SIZE = BOARD_SERVED + MAX_SLOTS
# A call has fewer chunks than this (the claim counter's low bits).
MAX_CHUNKS = 1 << 31
_CHUNK_BITS = 32

# What predict returns: the call is done, or a worker failed in one of its
# chunks (caller); why the worker left (worker of a team).
PREDICT_DONE = 0
PREDICT_FAILED = 1
SERVE_IDLE = 2
SERVE_OTHER_DTYPE = 3
SERVE_STOPPED = 4


@jit(internal=True)
def predict_chunk(X, csr, params, table, acts, rows, capacity, out, labels, start, stop):
    """Forward pass of rows ``start:stop`` (one chunk) into ``out`` and, if not empty, ``labels``."""
    chunk_rows = rows[: stop - start]
    for k in range(stop - start):
        chunk_rows[k] = start + k
    X_chunk = X[start:stop] if csr is None else X[:0]
    output = forward_recording(  # the training kernel's specialisation: no other to compile
        X_chunk, csr, chunk_rows, params, table, acts, capacity, None
    )
    copy_into(output, out[start:stop])
    if labels.shape[0] > 0:
        # the same rows as ``output``, typed writable also when X is read-only
        logits = unit_view(acts, table, table.shape[0] - 1, capacity, stop - start)
        for k in range(stop - start):
            labels[start + k] = first_largest_softmax(logits[k])


@jit
def predict(X, csr, params, layers, acts, rows, capacity, out, labels, board, slot):
    """Forward pass of every row, ``capacity`` rows at a time, into ``out``; or the labels of a softmax.

    Also the worker side of a team that shares the chunks (``slot`` > 0):
    one kernel for both sides, so that the forward pass is compiled once.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Dense input (a dummy when ``csr`` is given; for a worker, an empty
        array of the dtype it serves).
    csr : tuple of ndarray or None
        ``(data, indices, indptr)`` of a CSR input, or None for dense input
        (a compile-time choice, as in ``forward``).
    params : ndarray of shape (n_params,)
        Flat parameters.
    layers : ndarray of shape (n_layers, 5)
        Layer table.
    acts : ndarray
        Work buffer of ``capacity * sum(fan_out)`` entries per thread.
    rows : ndarray
        Buffer of ``capacity`` row numbers per thread.
    capacity : int
        Rows per chunk.
    out : ndarray of shape (n_samples, n_outputs)
        Output activations.
    labels : ndarray of shape (n_samples,) or (0,) of int64
        Empty, or, for a network whose output layer is softmax, the index
        of each row's first largest output (:func:`first_largest_softmax`).
        The softmax is then skipped (it is computed only for rows with
        near ties), and ``out`` receives the logits. This spares the
        ``exp`` of every output (digits 64-100-10: 342 -> 310 us per
        900 rows).
    board : ndarray of int64
        Empty, or (dense input) a board of :data:`BOARD_SIZE` entries whose
        workers share the chunks (:func:`post_call`); ``acts`` and
        ``rows`` then hold a slot of buffers for each thread.
    slot : int
        0 for a call; a worker's slot of buffers (from 1) to serve the
        calls on ``board`` instead (:func:`serve_chunks`), the other
        arguments but ``X`` being dummies.

    Returns
    -------
    status : int
        :data:`PREDICT_DONE`, or :data:`PREDICT_FAILED` when a worker
        failed in a chunk (the results are then not to be used); for a
        worker, why it left (see :func:`serve_chunks`).
    """
    if csr is None:
        if slot > 0:  # a worker's dummy arguments: capacity 0, no rows
            return serve_chunks(board, X, slot)
    n_samples = out.shape[0]
    n_chunks = -(-n_samples // capacity)
    table = layers
    if labels.shape[0] > 0:
        table = layers.copy()
        table[-1, ACTIVATION] = IDENTITY
    shared, call = False, 0
    if csr is None:
        if board.shape[0] > 0:
            shared, call = True, post_call(X, params, table, acts, rows, capacity, out, labels, board)
    # one loop, and one call of predict_chunk, for both ways (each call site
    # of the forward pass costs compile time): the chunks in turn, or those
    # the caller claims before the workers do
    chunk = 0
    while True:
        if shared:
            chunk = fetch_add(board, BOARD_CLAIM, 1) - (call << _CHUNK_BITS)
        if chunk >= n_chunks:
            break
        start = chunk * capacity
        stop = min(start + capacity, n_samples)
        # the caller's slot of work buffers is the first: ``acts`` and ``rows`` start with it
        predict_chunk(X, csr, params, table, acts, rows, capacity, out, labels, start, stop)
        if shared:
            fetch_add(board, BOARD_DONE, 1)
        else:
            chunk += 1
    if not shared:
        return PREDICT_DONE
    spins = 0
    while load_acquire(board, BOARD_DONE) < n_chunks:
        spins += 1
        spin_pause(spins)
    return PREDICT_DONE if load_acquire(board, BOARD_FAILED) == 0 else PREDICT_FAILED


@jit(internal=True)
def post_call(X, params, table, acts, rows, capacity, out, labels, board):
    """Post a call on ``board`` and open it to claims; return its number."""
    n_samples = out.shape[0]
    n_chunks = -(-n_samples // capacity)
    units = 0
    for l in range(table.shape[0]):
        units += table[l, FAN_OUT]
    acts_per_slot = capacity * units
    board[BOARD_ITEMSIZE] = X.itemsize
    board[BOARD_X] = X.ctypes.data
    board[BOARD_N_ROWS] = n_samples
    board[BOARD_N_FEATURES] = X.shape[1]
    board[BOARD_PARAMS] = params.ctypes.data
    board[BOARD_N_PARAMS] = params.shape[0]
    board[BOARD_LAYERS] = table.ctypes.data
    board[BOARD_N_LAYERS] = table.shape[0]
    board[BOARD_OUT] = out.ctypes.data
    board[BOARD_N_OUTPUTS] = out.shape[1]
    board[BOARD_LABELS] = labels.ctypes.data
    board[BOARD_N_LABELS] = labels.shape[0]
    board[BOARD_ACTS] = acts.ctypes.data
    board[BOARD_ACTS_PER_SLOT] = acts_per_slot
    board[BOARD_ROWS] = rows.ctypes.data
    board[BOARD_SLOTS] = min(acts.shape[0] // acts_per_slot, rows.shape[0] // capacity)
    board[BOARD_CAPACITY] = capacity
    board[BOARD_N_CHUNKS] = n_chunks
    board[BOARD_FAILED] = 0
    board[BOARD_DONE] = 0
    call = (load_acquire(board, BOARD_CLAIM) >> _CHUNK_BITS) + 1
    store_release(board, BOARD_CLAIM, call << _CHUNK_BITS)  # the call is open
    return call


@jit(internal=True)
def serve_chunks(board, like, slot):
    """Worker side of a shared call: claim and compute chunks of the calls posted on ``board``.

    Waits, spinning, for calls; leaves after ``board[BOARD_IDLE_SPINS]``
    spins without a chunk to claim (the waits yield the core, then sleep,
    as ``_sync.spin_pause``).

    Parameters
    ----------
    board : ndarray of shape (BOARD_SIZE,) of int64
        The board.
    like : ndarray
        An array of the float dtype of the calls served.
    slot : int
        This worker's slot of work buffers, from 1.

    Returns
    -------
    reason : int
        :data:`SERVE_IDLE`, :data:`SERVE_OTHER_DTYPE` (a call on floats of
        another size is open: serve it with another ``like``) or
        :data:`SERVE_STOPPED` (the board's stop flag is raised).
    """
    spins = 0
    while True:
        if load_acquire(board, BOARD_STOP) != 0:
            return SERVE_STOPPED
        claim = load_acquire(board, BOARD_CLAIM)
        chunk = claim & (MAX_CHUNKS - 1)
        # the sizes read before a successful claim may be another call's:
        # the claim then fails, as that call's counter has moved on
        if claim != 0 and chunk < board[BOARD_N_CHUNKS] and slot < board[BOARD_SLOTS]:
            if board[BOARD_ITEMSIZE] != like.itemsize:
                return SERVE_OTHER_DTYPE
            if compare_and_swap(board, BOARD_CLAIM, claim, claim + 1):
                # the call cannot end before this chunk is done: its arrays stay valid
                board[BOARD_BUSY + slot] = 1
                compute_claimed_chunk(board, like, slot, chunk)
                board[BOARD_BUSY + slot] = 0
                board[BOARD_SERVED + slot] += 1
                fetch_add(board, BOARD_DONE, 1)
                spins = 0
                continue
        spins += 1
        if spins > board[BOARD_IDLE_SPINS]:
            return SERVE_IDLE
        spin_pause(spins)


@jit(internal=True)
def compute_claimed_chunk(board, like, slot, chunk):
    """Compute chunk ``chunk`` of the call on ``board`` with the buffers of ``slot``."""
    n_rows, n_features = board[BOARD_N_ROWS], board[BOARD_N_FEATURES]
    n_layers, n_outputs = board[BOARD_N_LAYERS], board[BOARD_N_OUTPUTS]
    capacity, acts_per_slot = board[BOARD_CAPACITY], board[BOARD_ACTS_PER_SLOT]
    X = matrix_view(vector_at(board[BOARD_X], like, n_rows * n_features), n_rows, n_features)
    params = vector_at(board[BOARD_PARAMS], like, board[BOARD_N_PARAMS])
    table = matrix_view(vector_at(board[BOARD_LAYERS], board, n_layers * 5), n_layers, 5)
    out = matrix_view(vector_at(board[BOARD_OUT], like, n_rows * n_outputs), n_rows, n_outputs)
    labels = vector_at(board[BOARD_LABELS], board, board[BOARD_N_LABELS])
    acts = vector_at(board[BOARD_ACTS] + slot * acts_per_slot * like.itemsize, like, acts_per_slot)
    rows = vector_at(board[BOARD_ROWS] + slot * capacity * board.itemsize, board, capacity)
    start = chunk * capacity
    predict_chunk(X, None, params, table, acts, rows, capacity, out, labels, start, min(start + capacity, n_rows))


@jit
def abandon_chunk(board, slot):
    """Count the chunk a failed worker had claimed as done, and raise the board's failure flag.

    Called from Python by a worker whose :func:`serve_chunks` raised while
    computing a chunk (``board[BOARD_BUSY + slot]`` is then 1), so that the
    caller stops waiting and reports the failure.
    """
    board[BOARD_FAILED] = 1
    board[BOARD_BUSY + slot] = 0
    fetch_add(board, BOARD_DONE, 1)

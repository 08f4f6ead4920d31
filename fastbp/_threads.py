"""Thread count of the BLAS that the kernels call.

Numba's ``np.dot`` calls SciPy's BLAS, whose OpenBLAS threads help large
products and hurt small ones. Measured on a 2-core machine with nothing else
running (seconds, 1 vs 2 BLAS threads): 100-256-128-10 float32 fit 1.02 vs
0.73, 256-512-512-1 fit 2.36 vs 1.49; but 100-64-10 with mini-batches of 32
0.052 vs 0.068, and 20-32-1 one row at a time 0.043 vs 0.053. On a busy
machine threads are far worse (the first fit above took 3.56 s with two
threads against 0.52 s with one while other jobs ran).

So by default ("auto") a kernel call keeps the library's own thread count
only when its largest product has at least ``LARGE_PRODUCT`` multiply-adds
and no other fastbp fit or prediction is running in the process; otherwise
it uses one thread. ``FASTBP_BLAS_THREADS=N`` forces N threads. The limit is
set on SciPy's BLAS library, process-wide, for the duration of the call;
results do not depend on it.

Full-data passes have a second kind of parallelism: their rows are
independent, so they are shared among threads (the kernels release the
GIL) with one BLAS thread each, by :func:`row_blocks`. The chunks of a
dense prediction are shared with the workers of a :class:`PredictionTeam`,
which wait for calls in the kernel itself; a CSR prediction is split into
one block of whole chunks per core, run on pool threads. Either way its
chunks, and its results, are those of a serial prediction. The L-BFGS
objective is split into two halves whatever the machine, and their sums
are added in order. Measured on the 2-core machine (ms per
``Network.predict``, ``FASTBP_BLAS_THREADS=1`` vs split): digits
64-100-10 0.72 vs 0.42, 20-32-1 on 20,000 rows 1.09 vs 0.64,
100-256-128-10 on 50,000 float32 rows 64.9 vs 34.7, 5000-128-5 on 20,000
CSR rows 10.5 vs 5.4.
"""

import contextlib
import ctypes
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

from . import kernels
from ._buffers import aligned_zeros

# Multiply-adds of a mini-batch product above which BLAS threads pay off.
LARGE_PRODUCT = 4_000_000

# Multiply-adds of a whole forward pass above which its rows are split among
# worker threads, and the fewest rows a worker gets.
PARALLEL_WORK = 1_000_000
MIN_BLOCK_ROWS = 64

# Multiply-adds of a mini-batch's forward pass above which a fit cuts every
# mini-batch into EPOCH_PARTS parts that threads share. The parts run on one
# thread where threads are not used (one core, another fastbp call running,
# a slow spell below) and then cost 3-13% more than an uncut mini-batch.
# Measured on the 2-core machine, one epoch of 20,000 rows (ms, uncut / two
# threads / parts on one thread): 20-32-2 batches of 200 (134k multiply-adds)
# 4.8 / 3.8 / 4.9; 100-64-10 batches of 16 (113k) 19.0 / 17.4 / 21.5;
# 100-64-10 batches of 8 (56k) 27.2 / 28.5 / 32.8; 100-64-10 batches of 32
# on 50,000 rows (225k) 36.2 / 27.9 / 39.4.
SPLIT_WORK = 125_000
EPOCH_PARTS = 2

# The threads that share a mini-batch exchange data at every mini-batch: each
# reads the gradient sums and the parameters the other wrote. When a part's
# forward pass has fewer multiply-adds per parameter than MIN_SPLIT_INTENSITY,
# that traffic outweighs the halved work unless the cores share a cache, so
# such a fit splits only when a token passed between two of its threads
# crosses in less than SHARED_CACHE_HANDOFF seconds (HANDOFF_PASSES passes
# each way, measured at most every HANDOFF_MAX_AGE seconds). Measured on a
# 2-core KVM guest whose two vCPUs at times sit on cores without a shared L3
# cache, for minutes: a hand-off took 30-35 ns, and 143-172 ns in such
# spells. In a spell (ms, as above): 100-64-10 batches of 32 (16
# multiply-adds per parameter per part) 36.2 / 67.6 / 39.4; batches of 64
# (32) 13.2 / 17.6 / 13.8; 20-32-2 batches of 200 (91) 4.8 / 5.0 / 5.0,
# batches of 400 (182) 4.8 / 4.5 / 4.9. 5000-128-5 on 20,000 CSR rows (29
# non-zeros per row, batches of 200: 0.7) fit in 0.15 s on two threads and
# 0.25-0.28 s on one, but 0.46 s on two in a spell. Digits 64-100-10,
# batches of 200 (98), fit in 0.071 s on two threads in a spell and in
# 0.078 s on one.
MIN_SPLIT_INTENSITY = 64
SHARED_CACHE_HANDOFF = 110e-9
HANDOFF_PASSES = 256
HANDOFF_MAX_AGE = 1.0
# How long the measurement waits for its worker thread to start.
HANDOFF_START_TIMEOUT = 0.01

_controller = None
_active_calls = 0
_lock = threading.Lock()
_executor = None
_executor_pid = None
_handoff = None  # (seconds, perf_counter time of the measurement, process id)


def _scipy_blas():
    """threadpoolctl handle on the BLAS library behind scipy.linalg.cython_blas."""
    global _controller
    if _controller is None:
        import scipy
        import scipy.linalg.cython_blas  # noqa: F401 - loads the library
        from threadpoolctl import ThreadpoolController

        controller = ThreadpoolController().select(user_api="blas")
        scipy_dir = os.path.dirname(os.path.realpath(scipy.__file__))
        own = [
            lib.filepath
            for lib in controller.lib_controllers
            if os.path.realpath(lib.filepath).startswith(scipy_dir)
        ]
        # wheels bundle a private copy beside the package; otherwise SciPy
        # shares the BLAS of NumPy and every BLAS library is limited
        _controller = controller.select(filepath=own) if own else controller
    return _controller


def blas_threads(largest_product, concurrent):
    """BLAS threads for a kernel call, or None to keep the library's own count.

    Parameters
    ----------
    largest_product : int
        Multiply-adds of the call's largest matrix product.
    concurrent : bool
        Whether another fastbp call is running in this process.
    """
    value = os.environ.get("FASTBP_BLAS_THREADS", "auto")
    if value == "auto":
        return None if largest_product >= LARGE_PRODUCT and not concurrent else 1
    try:
        return max(1, int(value))
    except ValueError:
        raise ValueError(
            f"FASTBP_BLAS_THREADS must be 'auto' or a positive integer, got {value!r}."
        ) from None


def largest_product(n_rows, layer_units):
    """Multiply-adds of the largest product of a pass over ``n_rows`` rows."""
    return n_rows * max(a * b for a, b in zip(layer_units[:-1], layer_units[1:]))


def available_cores():
    """Number of CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def _tracked_call():
    """Count the block as a running fastbp call; yield whether another one runs."""
    global _active_calls
    with _lock:
        concurrent = _active_calls > 0
        _active_calls += 1
    try:
        yield concurrent
    finally:
        with _lock:
            _active_calls -= 1


@contextlib.contextmanager
def _blas_limit(threads):
    """Limit SciPy's BLAS to ``threads`` for the block (None: leave it alone).

    Sets the libraries' thread counts directly, and back: 2 us, where
    threadpoolctl's ``limit``, which first collects every library's full
    information, took 7 us of each prediction.
    """
    if threads is None:
        yield
        return
    libraries = _scipy_blas().lib_controllers
    counts = [library.num_threads for library in libraries]
    for library in libraries:
        library.set_num_threads(threads)
    try:
        yield
    finally:
        for library, count in zip(libraries, counts):
            library.set_num_threads(count)


def epoch_parts(batch_size, layer_units):
    """Parts each mini-batch of a fit is cut into (see ``kernels.train_epoch``).

    :data:`EPOCH_PARTS` when a mini-batch's forward pass has at least
    :data:`SPLIT_WORK` multiply-adds, else one. The count depends only on
    the batch size and the network, never on the machine, so neither do the
    results.
    """
    if batch_size >= EPOCH_PARTS and batch_size * multiply_adds_per_row(layer_units) >= SPLIT_WORK:
        return EPOCH_PARTS
    return 1


def split_intensity(part_rows, layer_units, inputs_per_row=None):
    """Multiply-adds of a part's forward pass per parameter of the network.

    ``inputs_per_row`` is the mean number of non-zeros per row of a CSR
    input (None: dense, every input feature).
    """
    first_inputs = layer_units[0] if inputs_per_row is None else inputs_per_row
    multiply_adds = first_inputs * layer_units[1] + multiply_adds_per_row(layer_units[1:])
    n_params = sum(a * b + b for a, b in zip(layer_units[:-1], layer_units[1:]))
    return part_rows * multiply_adds / n_params


def _current_cpu():
    """Number of the CPU this thread runs on, or None where the C library cannot tell."""
    try:
        cpu = ctypes.CDLL(None).sched_getcpu()
    except (AttributeError, OSError, TypeError):  # no such function, or no C library to load
        return None
    return cpu if cpu >= 0 else None


@contextlib.contextmanager
def _pinned_to(cpus):
    """Run this thread on the CPUs ``cpus`` only for the block, then on those it had (None: leave it)."""
    if not cpus:
        yield
        return
    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, allowed)


def _pass_token_pinned(flag, cpus, n_passes):
    """Side 0 of ``kernels.pass_token``, run on the CPUs ``cpus`` only (None: any)."""
    with _pinned_to(cpus):
        return kernels.pass_token(flag, 0, n_passes)


def _separate_cpus():
    """This thread's CPU and the other CPUs it may use, as two sets; (None, None) where that is unknown.

    Linux often wakes a pool worker on the CPU of the thread that woke it,
    and moves threads between CPUs while they wait. Two threads that pass
    a token on one CPU yield it to each other at every pass (7.7 us a pass),
    which says nothing of the caches: on the 2-core VM, 44 of 66 hand-offs
    measured in bursts of six after pauses of 0.3 s ran so (a fit that
    follows a pause then ran on one thread: 35 ms instead of 28). So for
    the measurement this thread stays on its CPU and the worker on the
    others: 0 of 66.
    """
    if not hasattr(os, "sched_getaffinity"):
        return None, None
    allowed = os.sched_getaffinity(0)
    here = _current_cpu()
    if here not in allowed or len(allowed) < 2:
        return None, None
    return {here}, allowed - {here}


def handoff_seconds():
    """Time of a one-way hand-off between this thread and a pool worker on another CPU; None if none started.

    A token goes back and forth :data:`HANDOFF_PASSES` times each way
    (``kernels.pass_token``), three times over; the fastest time counts.
    For the measurement, this thread and the worker run on different CPUs
    (see :func:`_separate_cpus`). None when no worker took its side within
    :data:`HANDOFF_START_TIMEOUT` seconds.
    """
    here, elsewhere = _separate_cpus()
    flag = aligned_zeros(8, np.int64)
    kernels.pass_token(flag, 0, 0)  # compiled or loaded here, not in the worker's time
    # submitted before this thread is pinned: a pool thread started now inherits this thread's CPUs
    worker = _worker_pool().submit(_pass_token_pinned, flag, elsewhere, 3 * HANDOFF_PASSES + 1)
    with _pinned_to(here):
        return _timed_handoff(flag, worker)


def _timed_handoff(flag, worker):
    """Side 1 of the hand-off that ``worker`` takes side 0 of; see :func:`handoff_seconds`."""
    deadline = time.perf_counter() + HANDOFF_START_TIMEOUT
    while flag[0] == 0:  # the worker's first pass: it has started
        if time.perf_counter() > deadline:
            flag[1] = 1  # a worker that starts now returns at once
            if not worker.cancel():
                worker.result()
            return None
        time.sleep(0)
    kernels.pass_token(flag, 1, 1)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        kernels.pass_token(flag, 1, HANDOFF_PASSES)
        times.append(time.perf_counter() - start)
    worker.result()
    return min(times) / (2 * HANDOFF_PASSES)


def cores_share_cache():
    """Whether this thread and a pool worker exchange data fast (see :data:`MIN_SPLIT_INTENSITY`).

    Measured by :func:`handoff_seconds` at most every
    :data:`HANDOFF_MAX_AGE` seconds; True when the measurement fails.
    """
    global _handoff
    now = time.perf_counter()
    if _handoff is None or _handoff[2] != os.getpid() or now - _handoff[1] > HANDOFF_MAX_AGE:
        seconds = handoff_seconds()
        if seconds is None:
            return True
        _handoff = (seconds, now, os.getpid())
    return _handoff[0] < SHARED_CACHE_HANDOFF


@contextlib.contextmanager
def training_threads(batch_size, layer_units, inputs_per_row=None):
    """Decide how the epochs of a fit run; yield the :class:`EpochTeam` that runs them.

    The parts of a mini-batch (:func:`epoch_parts`) run on one thread each,
    with one BLAS thread each, when ``FASTBP_BLAS_THREADS`` is "auto", no
    other fastbp call runs, two cores or more are available, and either a
    part's largest product is below :data:`LARGE_PRODUCT` or there are no
    more cores than parts (otherwise BLAS threads would use more cores),
    and, when a part does few multiply-adds per parameter, the cores share
    a cache (:data:`MIN_SPLIT_INTENSITY`).
    Cores count up to Numba's thread limit (``NUMBA_NUM_THREADS``, which
    joblib's worker processes and ``fastbp.distributed`` set), since threads
    that wait for each other lose much on oversubscribed cores.
    Else they run in turn in this thread, with the BLAS threads
    :func:`blas_threads` picks for a part. The team's workers stop when the
    block ends.

    Parameters
    ----------
    batch_size : int
        Rows per mini-batch.
    layer_units : sequence of int
        Units per layer, input first.
    inputs_per_row : float, optional
        Mean non-zeros per row of a CSR input; None for dense input.
    """
    n_parts = epoch_parts(batch_size, layer_units)
    part_rows = -(-batch_size // n_parts)
    product = largest_product(part_rows, layer_units)
    release_prediction_workers()
    with _tracked_call() as concurrent:
        cores = min(available_cores(), numba.config.NUMBA_NUM_THREADS)
        threaded = (
            n_parts > 1
            and os.environ.get("FASTBP_BLAS_THREADS", "auto") == "auto"
            and not concurrent
            and cores >= 2
            and (product < LARGE_PRODUCT or cores <= n_parts)
            and (
                split_intensity(part_rows, layer_units, inputs_per_row) >= MIN_SPLIT_INTENSITY
                or cores_share_cache()
            )
        )
        with _blas_limit(1 if threaded else blas_threads(product, concurrent)):
            team = EpochTeam(n_parts, n_parts if threaded else 1)
            try:
                yield team
            except BaseException:
                team.close(raise_errors=False)
                raise
            team.close()


class EpochTeam:
    """The threads that share the mini-batches of a fit's epochs (see ``kernels.train_epoch``).

    With one thread, every part of every epoch runs in the calling thread.
    Otherwise part 0 runs in the calling thread and each other part on a
    pool worker that stays in the kernel, waiting between epochs, from the
    first epoch until :meth:`close`. An epoch that starts while another
    fastbp call runs in the process runs every part in the calling thread
    (threads that wait for each other lose much when other threads compete
    for the cores); the workers wait meanwhile. The arithmetic is the same
    either way.

    Parameters
    ----------
    n_parts : int
        Parts per mini-batch.
    threads : int
        1, or ``n_parts``.
    """

    def __init__(self, n_parts, threads):
        self.n_parts = n_parts
        self.threads = threads
        self._sync = None
        self._key = None
        self._futures = []

    def run(self, epoch, sync, key):
        """Run one epoch; return part 0's result.

        Parameters
        ----------
        epoch : callable
            ``epoch(parts)`` calls the kernel for the parts in the int64
            array ``parts``.
        sync : ndarray of shape (n_parts + 2,) of int64
            The kernel's barrier counters, abort flag and epoch count.
        key : tuple
            Identifies the arrays ``epoch`` passes: workers started for
            other arrays are stopped and new ones started.
        """
        if self.threads == 1 or _active_calls > 1:
            return epoch(np.arange(self.n_parts, dtype=np.int64))
        if key != self._key:
            self.close()
            self._start(epoch, sync, key)
        try:
            result = epoch(np.array([0], dtype=np.int64))
        except BaseException:
            self.close(raise_errors=False)
            raise
        if sync[self.n_parts] != 0:  # a worker failed: raise its error
            self.close()
        return result

    def _start(self, epoch, sync, key):
        """Start a worker for each part but the first."""
        sync[:] = 0
        self._sync, self._key = sync, key

        def work(part):
            try:
                return epoch(np.array([part], dtype=np.int64))
            except BaseException:
                sync[self.n_parts] = 1  # part 0 and the other workers stop waiting
                raise

        pool = _worker_pool()
        self._futures = [pool.submit(work, part) for part in range(1, self.n_parts)]

    def close(self, raise_errors=True):
        """Stop the workers (the abort flag) and wait for them; raise the first worker error."""
        futures, self._futures, self._key = self._futures, [], None
        if not futures:
            return
        self._sync[self.n_parts] = 1
        errors = [future.exception() for future in futures]
        for error in errors:
            if error is not None and raise_errors:
                raise error


# Spins (each a PAUSE, with a sched_yield every 256: see kernels/_sync.py) a
# prediction worker waits for the next call before it leaves the kernel and
# sleeps until woken: measured 2.2 ms on the 2-core machine. Predictions
# closer together find the workers in the kernel.
PREDICTION_IDLE_SPINS = 1 << 16

_teams = {}


def release_prediction_workers():
    """Make this process's prediction workers leave their kernel and sleep: a fit needs the cores.

    They would otherwise spin on for up to :data:`PREDICTION_IDLE_SPINS`
    after the last prediction, taking a core from the fit's threads (in a
    grid search, fits follow predictions at once). The next prediction
    wakes them.
    """
    pid = os.getpid()
    for (team_pid, _), team in list(_teams.items()):
        if team_pid == pid:
            team.board[kernels.BOARD_IDLE_SPINS] = 0


def prediction_team(n_workers):
    """The process's :class:`PredictionTeam` of ``n_workers`` workers (new ones in a forked child)."""
    n_workers = min(n_workers, kernels.MAX_SLOTS - 1)
    key = (os.getpid(), n_workers)
    with _lock:
        team = _teams.get(key)
        if team is None:
            team = _teams[key] = PredictionTeam(n_workers)
        return team


class PredictionTeam:
    """Worker threads that share the chunks of dense predictions, staying in a kernel between calls.

    Each worker runs ``kernels.predict`` as a worker of the team's board:
    it spins there, computing chunks of the calls that callers post, until
    no call came for :data:`PREDICTION_IDLE_SPINS` spins; it then sleeps
    until the next :meth:`prepare`. The caller computes chunks too, so a
    call that no worker joins in time still completes; the results are
    those of one thread in any case.

    Parameters
    ----------
    n_workers : int
        Worker threads besides the caller.
    """

    def __init__(self, n_workers):
        self.n_workers = n_workers
        self.board = aligned_zeros(kernels.BOARD_SIZE, np.int64)
        self.error = None
        self._awake = [False] * n_workers
        self._wake = [threading.Semaphore(0) for _ in range(n_workers)]
        self._worker_args = {}
        for slot in range(1, n_workers + 1):
            thread = threading.Thread(target=self._serve, args=(slot,), name=f"fastbp-predict-{slot}", daemon=True)
            thread.start()

    def prepare(self, dtype):
        """Compile (or load) the kernel for ``dtype`` now, in this thread, and wake the workers."""
        dtype = np.dtype(dtype)
        if dtype.itemsize not in self._worker_args:
            # a worker's dummy arguments: of the types of a caller's
            empty = np.empty(0, dtype=dtype)
            args = (
                empty.reshape(0, 0), None, empty, np.empty((0, 5), dtype=np.int64), empty,
                np.empty(0, dtype=np.int64), 0, empty.reshape(0, 0), np.empty(0, dtype=np.int64),
            )
            stopped = aligned_zeros(kernels.BOARD_SIZE, np.int64)
            stopped[kernels.BOARD_STOP] = 1
            kernels.predict(*args, stopped, 1)  # returns at once
            self._worker_args[dtype.itemsize] = args
        self.board[kernels.BOARD_IDLE_SPINS] = PREDICTION_IDLE_SPINS  # see release_prediction_workers
        with _lock:
            for index, awake in enumerate(self._awake):
                if not awake:
                    self._awake[index] = True
                    self._wake[index].release()

    def _serve(self, slot):
        """A worker's life: sleep until woken, then serve calls until idle."""
        board = self.board
        while True:
            self._wake[slot - 1].acquire()
            reason = kernels.SERVE_OTHER_DTYPE
            try:
                while reason == kernels.SERVE_OTHER_DTYPE:
                    # prepare() made the arguments of every dtype posted, before waking us
                    args = self._worker_args.get(int(board[kernels.BOARD_ITEMSIZE]))
                    if args is None:  # no call posted yet
                        args = list(self._worker_args.values())[0]
                    reason = kernels.predict(*args, board, slot)
            except BaseException as error:  # a chunk failed: its caller reports the error
                self.error = error
                if board[kernels.BOARD_BUSY + slot]:
                    kernels.abandon_chunk(board, slot)
            if reason == kernels.SERVE_STOPPED:
                return
            with _lock:
                self._awake[slot - 1] = False


def row_workers(n_rows, layer_units, concurrent):
    """Worker threads among which a pass over ``n_rows`` independent rows is split.

    One unless ``FASTBP_BLAS_THREADS`` is "auto", no other fastbp call runs,
    and the pass has at least :data:`PARALLEL_WORK` multiply-adds; then one
    per core, each with at least :data:`MIN_BLOCK_ROWS` rows. Cores count
    up to ``NUMBA_NUM_THREADS``, as in :func:`training_threads`: a
    prediction's workers spin while they wait for each other and for the
    next call, which oversubscribed cores cannot afford.
    """
    if os.environ.get("FASTBP_BLAS_THREADS", "auto") != "auto" or concurrent:
        return 1
    if n_rows * multiply_adds_per_row(layer_units) < PARALLEL_WORK:
        return 1
    cores = min(available_cores(), numba.config.NUMBA_NUM_THREADS)
    return max(1, min(cores, n_rows // MIN_BLOCK_ROWS))


def multiply_adds_per_row(layer_units):
    """Multiply-adds of one row's forward pass."""
    return sum(a * b for a, b in zip(layer_units[:-1], layer_units[1:]))


def _worker_pool():
    """The process's pool of worker threads (a new one in a forked child)."""
    global _executor, _executor_pid
    with _lock:
        if _executor is None or _executor_pid != os.getpid():
            _executor = ThreadPoolExecutor(available_cores(), thread_name_prefix="fastbp")
            _executor_pid = os.getpid()
        return _executor


def _run_in_turn(process, bounds):
    """``process(start, stop)`` for each block, one after another in this thread."""
    for start, stop in zip(bounds[:-1], bounds[1:]):
        process(start, stop)


def _run_in_pool(process, bounds):
    """``process(start, stop)`` for each block, the first in this thread, the others on workers.

    Waits for every block, even when one raises an Exception, then raises the first error.
    """
    pool = _worker_pool()
    blocks = list(zip(bounds[:-1], bounds[1:]))
    futures = [pool.submit(process, start, stop) for start, stop in blocks[1:]]
    errors = []
    try:
        process(*blocks[0])
    except Exception as exc:
        errors.append(exc)
    errors += [future.exception() for future in futures]
    for error in errors:
        if error is not None:
            raise error


@contextlib.contextmanager
def row_blocks(n_rows, layer_units, chunk, max_blocks):
    """Decide how blocks of independent rows run; yield ``(workers, run)``.

    ``run(process, bounds)`` calls ``process(start, stop)`` for the blocks
    ``bounds[k]..bounds[k+1]`` and returns when all have finished (it raises
    the first error). With :func:`row_workers` > 1 the blocks run in
    parallel on worker threads, each with one BLAS thread; otherwise in
    turn in this thread, with the BLAS threads :func:`blas_threads` picks
    for chunks of ``chunk`` rows. Callers make the blocks themselves, from
    the data's length and the network only, so that results do not depend
    on ``workers``.

    Parameters
    ----------
    n_rows : int
        Rows of the whole pass.
    layer_units : sequence of int
        Units per layer, input first.
    chunk : int
        Rows per kernel chunk.
    max_blocks : int
        Blocks the caller can make (no more workers than that are used).
    """
    with _tracked_call() as concurrent:
        workers = min(row_workers(n_rows, layer_units, concurrent), max_blocks)
        if workers == 1:
            with _blas_limit(blas_threads(largest_product(chunk, layer_units), concurrent)):
                yield 1, _run_in_turn
        else:
            with _blas_limit(1):
                yield workers, _run_in_pool


def chunk_blocks(n_rows, chunk, n_blocks):
    """Bounds of at most ``n_blocks`` blocks of whole ``chunk``-row chunks covering ``0..n_rows``."""
    n_chunks = -(-n_rows // chunk)
    n_blocks = max(1, min(n_blocks, n_chunks))
    return [min(n_rows, chunk * (n_chunks * k // n_blocks)) for k in range(n_blocks + 1)]

"""The parallel layer: how many threads a kernel call may use, and the threads that share its work.

Threads are the user's, lent to fastbp. A call uses at most as many as
every control the user already has allows (:func:`allowed_threads`): the
CPUs of the process's affinity, Numba's thread count (``NUMBA_NUM_THREADS``
or ``numba.set_num_threads``) and the thread count of the BLAS the kernels
call (SciPy's, which ``threadpoolctl.threadpool_limits`` and the
``OPENBLAS_NUM_THREADS`` / ``OMP_NUM_THREADS`` variables that joblib gives
its workers set): fastbp's threads take the place of BLAS threads. Calls
running at once in one process share that allowance (:func:`reserve`).

How work is cut does not depend on the threads: a mini-batch is cut into
:func:`part_count` parts of its rows, and a full-data pass into as many
blocks, from its size and the network only, and each part's sums are added
in part order. Threads then take whole parts, so the results are the same
bits whatever the number of threads (one thread computes every part in
turn).

Cost model of the cut. A part of ``r`` rows of a network of ``m``
multiply-adds per row costs its threads about ``c + r m / R`` (fixed cost
``c`` of its calls and loops, product rate ``R``), and its mini-batch two
barriers ``b`` and the sum of the parts' gradients. A cut pays off on ``T``
threads when the work a thread saves, ``r m / R (1 - 1 / T)``, exceeds
the ``c`` and ``b`` it adds, and it costs a machine with fewer threads
than parts about ``c`` per extra part. Measured here (2 cores, OpenBLAS
0.3.30; figures in ``benchmarks/RESULTS.md``): ``c`` about 1-2 us,
``b`` 0.03-0.2 us, ``R`` 20-40 multiply-adds per ns in float64 products of
16 to 64 rows; so a part of :data:`PART_MULTIPLY_ADDS` multiply-adds (3-5
us of products) and :data:`PART_ROWS` rows at least, and at most
:data:`MAX_PARTS` parts. A mini-batch of 200 rows of 64-100-10 (digits) is
cut into 8 parts; on 8 cores each thread computes one, on 2 cores four in
turn (about ``3 c`` more per mini-batch than two halves). With 32 cores
the same mini-batch still has 8 parts: its threads do at most 8 parts'
work at once, and the rest stay free for the user (a larger ``batch_size``
gets up to 16 parts; beyond, BLAS threads would not serve better either).

A thread waits for the others spinning, then yielding its core, then
sleeping (``kernels._sync``) and only within a call: workers leave the
kernels when the call ends. No thread's CPU affinity is ever changed. The
only process-wide setting changed is SciPy's BLAS thread count, set to 1
while fastbp's own threads share a call (two multi-threaded products at
once would take turns), counted across overlapping calls and set back when
the last one ends. A forked child starts with no workers and the setting
as the parent had it before any fastbp call.
"""

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numba
import numba.np.ufunc.parallel as _numba_parallel

# Fewest multiply-adds of a part's forward pass, fewest rows of a part and
# most parts of a mini-batch or full-data pass (see the module docstring).
PART_MULTIPLY_ADDS = 100_000
PART_ROWS = 16
MAX_PARTS = 16

# Bound of the worker pool, above any number of threads a call can be allowed.
_MAX_WORKERS = 1024

_lock = threading.Lock()
_threads_in_use = 0  # threads held by the fastbp calls running in this process
_blas = None  # threadpoolctl controller of the kernels' BLAS
_blas_holders = 0  # overlapping calls that keep the BLAS on one thread
_blas_saved = None  # the BLAS thread counts before the first of them
_pool = None


def multiply_adds_per_row(layer_units):
    """Multiply-adds of one row's forward pass through a network of ``layer_units``."""
    return sum(a * b for a, b in zip(layer_units[:-1], layer_units[1:]))


def part_count(n_rows, row_multiply_adds):
    """Parts a mini-batch (or a full-data pass) of ``n_rows`` rows is cut into: a power of two.

    The largest power of two that gives each part at least
    :data:`PART_ROWS` rows and :data:`PART_MULTIPLY_ADDS` multiply-adds,
    at most :data:`MAX_PARTS`; 1 when no cut pays off. It depends on the
    size of the work only, never on the machine or the threads.

    Parameters
    ----------
    n_rows : int
        Rows of the mini-batch or pass.
    row_multiply_adds : float
        Multiply-adds of one row's forward pass.
    """
    limit = min(MAX_PARTS, n_rows // PART_ROWS, int(n_rows * row_multiply_adds // PART_MULTIPLY_ADDS))
    parts = 1
    while 2 * parts <= limit:
        parts *= 2
    return parts


def available_cores():
    """Number of CPUs this process may run on (its affinity)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _blas_controller():
    """threadpoolctl controller of the BLAS behind ``scipy.linalg.cython_blas``, which the kernels call."""
    global _blas
    if _blas is None:
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
        # shares NumPy's BLAS, and every BLAS library counts
        _blas = controller.select(filepath=own) if own else controller
    return _blas


def user_blas_threads():
    """The BLAS thread count the user set (not the 1 of a running fastbp call); None without a BLAS."""
    with _lock:
        if _blas_holders:
            counts = _blas_saved
        else:
            counts = [lib.num_threads for lib in _blas_controller().lib_controllers]
    return min(counts) if counts else None


def numba_threads():
    """Numba's thread count for this thread, without starting Numba's thread pool."""
    if _numba_parallel._is_initialized:  # the user set it, or ran a parallel function
        return numba.get_num_threads()
    return numba.config.NUMBA_NUM_THREADS


def allowed_threads():
    """Threads the user allows a call: the fewest of the process's CPUs, Numba's and the BLAS's threads."""
    blas = user_blas_threads()
    return max(1, min(available_cores(), numba_threads(), blas if blas is not None else 1 << 30))


@contextlib.contextmanager
def reserve(wanted, allowed=None):
    """Hold up to ``wanted`` threads (this one included) for the block; yield how many.

    The threads :func:`allowed_threads` allows (or ``allowed``) are shared
    among the fastbp calls running in the process: a call gets what the
    others leave, and always at least its own thread.
    """
    global _threads_in_use
    if allowed is None:
        allowed = allowed_threads()
    with _lock:
        granted = max(1, min(wanted, allowed - _threads_in_use))
        _threads_in_use += granted
    try:
        yield granted
    finally:
        with _lock:
            _threads_in_use -= granted


@contextlib.contextmanager
def single_threaded_blas(needed=True):
    """Keep the kernels' BLAS on one thread for the block (when ``needed``), then restore it.

    Overlapping blocks in several threads are counted: the first saves the
    thread counts and sets 1, the last sets back what the first saved.
    """
    global _blas_holders, _blas_saved
    if not needed:
        yield
        return
    libraries = _blas_controller().lib_controllers
    with _lock:
        if _blas_holders == 0:
            _blas_saved = [lib.num_threads for lib in libraries]
            for lib, count in zip(libraries, _blas_saved):
                if count != 1:
                    lib.set_num_threads(1)
        _blas_holders += 1
    try:
        yield
    finally:
        with _lock:
            _blas_holders -= 1
            if _blas_holders == 0:
                for lib, count in zip(libraries, _blas_saved):
                    if count != 1:
                        lib.set_num_threads(count)


@contextlib.contextmanager
def threads_for(wanted):
    """Reserve threads for a call that wants ``wanted``; yield how many it got.

    The BLAS is kept on one thread while the call's own threads share the
    work, and also when the user allows one thread only (a BLAS left at
    more would use more cores than allowed).
    """
    allowed = allowed_threads()
    with reserve(wanted, allowed) as granted:
        with single_threaded_blas(granted > 1 or allowed == 1):
            yield granted


def _worker_pool():
    """The process's pool of worker threads, made on first use."""
    global _pool
    with _lock:
        if _pool is None:
            # threads are made only when every one made is busy; a team whose worker
            # could not start would wait for it forever, so the bound is far above need
            _pool = ThreadPoolExecutor(max_workers=_MAX_WORKERS, thread_name_prefix="fastbp")
        return _pool


def _after_fork_in_child():
    """Forget the parent's threads and calls: the child has neither."""
    global _lock, _pool, _threads_in_use, _blas_holders
    _lock = threading.Lock()  # another thread may have held it at the fork
    _pool = None
    _threads_in_use = 0
    if _blas_holders:
        for lib, count in zip(_blas_controller().lib_controllers, _blas_saved):
            lib.set_num_threads(count)
        _blas_holders = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def run_blocks(process, n_blocks, n_threads):
    """``process(k)`` for every block ``k`` in ``range(n_blocks)``, on ``n_threads`` threads.

    This thread runs the first contiguous share of the blocks, pool
    workers the others. Waits for every block, even when one raises, then
    raises the first error.
    """
    n_threads = max(1, min(n_threads, n_blocks))
    bounds = [n_blocks * t // n_threads for t in range(n_threads + 1)]

    def share(t):
        for k in range(bounds[t], bounds[t + 1]):
            process(k)

    futures = [_worker_pool().submit(share, t) for t in range(1, n_threads)]
    errors = []
    try:
        share(0)
    except BaseException as error:  # noqa: B036 - re-raised below, after the workers finished
        errors.append(error)
    errors += [future.exception() for future in futures]
    for error in errors:
        if error is not None:
            raise error


class EpochTeam:
    """The threads that share the parts of a fit's mini-batches (see ``kernels.train_epoch``).

    Thread 0 is the calling thread, which runs one epoch per
    :meth:`run`. Threads 1 to ``n_threads - 1`` are pool workers that stay
    in the kernel from the first epoch until :meth:`close`, waiting between
    epochs. The parts' arithmetic does not depend on the thread that
    computes them.

    Parameters
    ----------
    n_threads : int
        Threads, at most the parts of a mini-batch.
    sync : ndarray of shape (n_threads + 2,) of int64
        The kernel's barrier counters, abort flag and epoch count.
    """

    def __init__(self, n_threads, sync):
        self.n_threads = n_threads
        self.sync = sync
        self._futures = []

    @property
    def started(self):
        """Whether the workers run (they keep the arrays of the first epoch until :meth:`close`)."""
        return bool(self._futures)

    def run(self, epoch):
        """Run one epoch; return thread 0's result.

        ``epoch(thread, n_threads)`` calls the kernel as thread ``thread``
        of ``n_threads``; the workers are started at the first call and
        keep the arrays of that call.
        """
        if self.n_threads == 1:
            return epoch(0, 1)
        if not self._futures:
            self._start(epoch)
        try:
            result = epoch(0, self.n_threads)
        except BaseException:
            self.close(raise_errors=False)
            raise
        if self.sync[self.n_threads] != 0:  # a worker failed: raise its error
            self.close()
        return result

    def _start(self, epoch):
        self.sync[:] = 0
        abort = self.n_threads

        def work(thread):
            try:
                return epoch(thread, self.n_threads)
            except BaseException:
                self.sync[abort] = 1  # thread 0 and the other workers stop waiting
                raise

        pool = _worker_pool()
        self._futures = [pool.submit(work, thread) for thread in range(1, self.n_threads)]

    def close(self, raise_errors=True):
        """Stop the workers (the abort flag) and wait for them; raise the first worker error."""
        futures, self._futures = self._futures, []
        if not futures:
            return
        self.sync[self.n_threads] = 1
        errors = [future.exception() for future in futures]
        for error in errors:
            if error is not None and raise_errors:
                raise error

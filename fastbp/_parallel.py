"""The parallel layer: how many threads a kernel call may use, and the threads that share its work.

Threads are the user's, lent to fastbp. A call uses at most as many as
every control the user already has allows (:func:`allowed_threads`): the
CPUs of the process's affinity, Numba's thread count (``NUMBA_NUM_THREADS``
or ``numba.set_num_threads``) and the thread count of the BLAS the kernels
call (SciPy's, which ``threadpoolctl.threadpool_limits`` and the
``OPENBLAS_NUM_THREADS`` / ``OMP_NUM_THREADS`` variables that joblib gives
its workers set): fastbp's threads take the place of BLAS threads. Calls
running at once in one process share that allowance (:func:`reserve`).

How work is cut never depends on the thread controls: a mini-batch is cut
into :func:`part_count` parts of its rows, and a full-data pass into as
many blocks, from its size, the network and the CPUs the process may use,
and each part's sums are added in part order. Threads take whole parts
(thread ``t`` computes parts ``t``, ``t + T``, ...), so the results are the
same bits whatever the number of threads, one computing every part in turn.

Cost model of the cut. A part of ``r`` rows of a network of ``m``
multiply-adds per row and ``n`` parameters costs its thread about
``c + g n + r m / R``: a fixed cost ``c`` of its calls and loops, writing
and summing its own gradient (``g`` per parameter), and its products at
rate ``R``; a mini-batch adds two barriers ``b``. Cutting into ``P`` parts
on ``T = P`` threads saves ``r m / R (P - 1)`` of products per thread and
costs ``c + g n + 2 b``: worth it while a part carries
:data:`PART_MULTIPLY_ADDS` multiply-adds and :data:`PART_ROWS` rows at
least. More parts than CPUs would only add ``c + g n`` per extra part,
so the parts never outnumber the CPUs. Measured here (2 cores, OpenBLAS
0.3.30, ``benchmarks/RESULTS.md``): ``c`` 1-2 us, ``g`` up to about 1 ns
(a gradient larger than the caches goes through memory), ``b`` well under
a microsecond while the two cores share a cache, ``R`` 15-40
multiply-adds per ns for products of 16 to 100 rows; two parts then gain
1.2-1.7x over one, and four parts on the two cores cost 8-34% more than
two. What this predicts elsewhere, for the default mini-batch of 200 rows:
on 8 cores digits (64-100-10) is cut into 8 parts of 25 rows, each thread
computing about 25 us of products for 9-10 us of fixed and gradient cost,
so about 4x one thread; on 32 cores into 12 parts (16 rows at least), about
5x, the rest of the cores staying free for the user. A larger
``batch_size`` gets up to :data:`MAX_PARTS` parts. Where cores share no
cache (several sockets, or a VM whose vCPUs move between hosts' sockets),
the gradient and weights each thread reads from the others cost more, and
networks of few multiply-adds per parameter (small-batch, sparse input)
lose by the cut; ``threadpool_limits(1)`` then keeps them on one thread.

A thread waits for the others spinning, then yielding its core, then
sleeping (``kernels._sync``). Pool workers wait for their next task
spinning for under a millisecond (:data:`IDLE_SPINS`), as OpenMP runtimes
do, so that calls in quick succession find them awake on their own cores,
then sleep. No thread's CPU affinity is ever changed. The
only process-wide setting changed is SciPy's BLAS thread count, set to 1
while fastbp's own threads share a call (two multi-threaded products at
once would take turns), counted across overlapping calls and set back when
the last one ends. A forked child starts with no workers and the setting
as the parent had it before any fastbp call.
"""

import collections
import contextlib
import os
import threading

import numba
import numba.np.ufunc.parallel as _numba_parallel
import numpy as np

from . import kernels

# Fewest multiply-adds of a part's forward pass, fewest rows of a part and
# most parts of a mini-batch or full-data pass (see the module docstring).
PART_MULTIPLY_ADDS = 100_000
PART_ROWS = 16
MAX_PARTS = 16

_lock = threading.Lock()
_threads_in_use = 0  # threads held by the fastbp calls running in this process
_blas = None  # threadpoolctl controller of the kernels' BLAS
_blas_holders = 0  # overlapping calls that keep the BLAS on one thread
_blas_saved = None  # the BLAS thread counts before the first of them
_idle_workers = []  # pool threads waiting for a task


def multiply_adds_per_row(layer_units):
    """Multiply-adds of one row's forward pass through a network of ``layer_units``."""
    return sum(a * b for a, b in zip(layer_units[:-1], layer_units[1:]))


def part_count(n_rows, row_multiply_adds):
    """Parts a mini-batch (or a full-data pass) of ``n_rows`` rows is cut into.

    As many as the CPUs the process may use (:func:`available_cores`),
    with at least :data:`PART_ROWS` rows and :data:`PART_MULTIPLY_ADDS`
    multiply-adds of the forward pass each, at most :data:`MAX_PARTS`; 1
    when no cut pays off. It never depends on the thread controls, so the
    results do not either.

    Parameters
    ----------
    n_rows : int
        Rows of the mini-batch or pass.
    row_multiply_adds : float
        Multiply-adds of one row's forward pass.
    """
    limit = min(MAX_PARTS, available_cores(), n_rows // PART_ROWS,
                int(n_rows * row_multiply_adds // PART_MULTIPLY_ADDS))
    return max(1, limit)


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


# Spins a worker waits for its next task before it sleeps (a pause each, a
# sched_yield every 256; under a millisecond): a worker woken from sleep for
# each call starts late, and on the caller's core.
IDLE_SPINS = 1 << 14
# Spins of a wait for work that is running (no bound: the wait sleeps
# between checks once it lasts).
WAIT_SPINS = 1 << 62


class _Worker:
    """A pool thread that runs the tasks posted to it; between tasks it spins briefly, then sleeps."""

    def __init__(self):
        self._tasks = collections.deque()
        self._posted = np.zeros(1, dtype=np.int64)
        self._wake = threading.Event()
        threading.Thread(target=self._serve, name="fastbp-worker", daemon=True).start()

    def post(self, task, done, slot):
        """Run ``task()``; then give this worker back to the pool and set ``done[slot]`` to 1."""
        self._tasks.append((task, done, slot))
        kernels.signal(self._posted, 0, self._posted[0] + 1)
        self._wake.set()

    def _serve(self):
        while True:
            seen = self._posted[0]
            if not self._tasks:
                kernels.wait_while_equal(self._posted, 0, seen, IDLE_SPINS)
            if not self._tasks:
                self._wake.wait()
                self._wake.clear()
                continue
            task, done, slot = self._tasks.popleft()
            task()  # tasks catch their own errors
            with _lock:
                _idle_workers.append(self)
            kernels.signal(done, slot, 1)


def _run_on_workers(tasks):
    """Start each callable of ``tasks`` on a pool worker; return a function that waits for them all.

    The function returns the exceptions the tasks raised.
    """
    done = np.zeros(len(tasks), dtype=np.int64)
    errors = [None] * len(tasks)

    def guarded(slot, task):
        try:
            task()
        except BaseException as error:  # noqa: B036 - handed to the caller
            errors[slot] = error

    for slot, task in enumerate(tasks):
        with _lock:
            worker = _idle_workers.pop() if _idle_workers else None
        (worker or _Worker()).post(lambda slot=slot, task=task: guarded(slot, task), done, slot)

    def join():
        for slot in range(len(tasks)):
            kernels.wait_while_equal(done, slot, 0, WAIT_SPINS)
        return [error for error in errors if error is not None]

    return join


def _after_fork_in_child():
    """Forget the parent's threads and calls: the child has neither."""
    global _lock, _idle_workers, _threads_in_use, _blas_holders
    _lock = threading.Lock()  # another thread may have held it at the fork
    _idle_workers = []
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

    join = _run_on_workers([lambda t=t: share(t) for t in range(1, n_threads)])
    errors = []
    try:
        share(0)
    except BaseException as error:  # noqa: B036 - re-raised below, after the workers finished
        errors.append(error)
    errors += join()
    if errors:
        raise errors[0]


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
    sync : ndarray of shape (n_threads + 2,) of int64, or None
        The kernel's barrier counters, abort flag and epoch count; None for
        one thread whose kernel has no thread code (see ``kernels.train_epoch``).
    """

    def __init__(self, n_threads, sync):
        self.n_threads = n_threads
        self.sync = sync
        self._join = None

    @property
    def started(self):
        """Whether the workers run (they keep the arrays of the first epoch until :meth:`close`)."""
        return self._join is not None

    def run(self, epoch):
        """Run one epoch; return thread 0's result.

        ``epoch(thread, n_threads)`` calls the kernel as thread ``thread``
        of ``n_threads``; the workers are started at the first call and
        keep the arrays of that call.
        """
        if self.n_threads == 1:
            return epoch(0, 1)
        if self._join is None:
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
                kernels.signal(self.sync, abort, 1)  # thread 0 and the other workers stop waiting
                raise

        self._join = _run_on_workers([lambda t=t: work(t) for t in range(1, self.n_threads)])

    def close(self, raise_errors=True):
        """Stop the workers (the abort flag) and wait for them; raise the first worker error."""
        join, self._join = self._join, None
        if join is None:
            return
        kernels.signal(self.sync, self.n_threads, 1)
        errors = join()
        if errors and raise_errors:
            raise errors[0]

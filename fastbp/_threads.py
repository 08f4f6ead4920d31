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
"""

import contextlib
import os
import threading

# Multiply-adds of a mini-batch product above which BLAS threads pay off.
LARGE_PRODUCT = 4_000_000

_controller = None
_active_calls = 0
_lock = threading.Lock()


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


@contextlib.contextmanager
def kernel_threads(n_rows, layer_units):
    """Run the block with the BLAS thread count :func:`blas_threads` chooses.

    Parameters
    ----------
    n_rows : int
        Rows per mini-batch or chunk of the kernel calls in the block.
    layer_units : sequence of int
        Units per layer, input first.
    """
    global _active_calls
    with _lock:
        concurrent = _active_calls > 0
        _active_calls += 1
    try:
        threads = blas_threads(largest_product(n_rows, layer_units), concurrent)
        if threads is None:
            yield
        else:
            with _scipy_blas().limit(limits=threads):
                yield
    finally:
        with _lock:
            _active_calls -= 1

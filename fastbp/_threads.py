"""Thread count of the BLAS that the kernels call.

Numba's ``np.dot`` calls SciPy's BLAS. Mini-batch products are mid-sized
(a few hundred rows), and there OpenBLAS's own threads cost more than they
save: measured on a 2-core machine, a 100-256-128-10 float32 fit ran 0.52 s
with one BLAS thread against 3.56 s with two. So kernels run with
``FASTBP_BLAS_THREADS`` BLAS threads (default 1) for the duration of each
fit or prediction; parallelism across models comes from running fits in
threads or processes (the kernels release the GIL). The limit is set on
SciPy's BLAS library, which is process-wide for that duration; numbers do
not depend on it.
"""

import contextlib
import os

_controller = None


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


def blas_threads():
    """Number of BLAS threads for kernel calls (``$FASTBP_BLAS_THREADS``, default 1)."""
    value = os.environ.get("FASTBP_BLAS_THREADS", "1")
    try:
        return max(1, int(value))
    except ValueError:
        raise ValueError(f"FASTBP_BLAS_THREADS must be a positive integer, got {value!r}.") from None


@contextlib.contextmanager
def kernel_threads():
    """Limit the kernels' BLAS to :func:`blas_threads` threads within the block."""
    with _scipy_blas().limit(limits=blas_threads()):
        yield

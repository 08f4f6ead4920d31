"""Work and parameter buffers that start on a cache line.

The kernels' vectorised loops load and store 64 bytes at a time (AVX-512)
over the flat parameter buffer, the optimizer state and the work buffers.
NumPy aligns a small array to 16 bytes only, so whether those loads cross
cache lines, and how fast an epoch ran, changed from one fit to the next
(``benchmarks/RESULTS.md``, "Measurements that were in the code").
"""

import math

import numpy as np

ALIGNMENT = 64


def aligned_empty(shape, dtype):
    """``np.empty(shape, dtype)`` whose data start on a multiple of :data:`ALIGNMENT` bytes.

    Parameters
    ----------
    shape : int or tuple of int
        Shape of the C-contiguous array.
    dtype : dtype
        Its dtype.

    Returns
    -------
    array : ndarray
        A C-contiguous view of a slightly larger byte buffer.
    """
    # plain Python on the shape: np.prod and np.ndim cost microseconds, and a
    # prediction makes several such buffers
    dtype = np.dtype(dtype)
    shape = tuple(shape) if isinstance(shape, tuple | list) else (int(shape),)
    n_bytes = math.prod(shape) * dtype.itemsize
    raw = np.empty(n_bytes + ALIGNMENT, dtype=np.uint8)
    start = -raw.__array_interface__["data"][0] % ALIGNMENT
    return raw[start : start + n_bytes].view(dtype).reshape(shape)


def aligned_zeros(shape, dtype):
    """``np.zeros(shape, dtype)`` whose data start on a multiple of :data:`ALIGNMENT` bytes."""
    array = aligned_empty(shape, dtype)
    array[...] = 0
    return array

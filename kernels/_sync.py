"""Barriers, waits and atomic counters for kernels that share work between threads.

The split epoch (:func:`kernels.training.train_epoch` with two parts run by
two threads) meets twice per mini-batch. Pool or OpenMP hand-offs cost
microseconds each; here each thread publishes a counter with a release
store and waits, spinning, for the other's with acquire loads, which costs
a cache-line transfer (well under a microsecond).

``sync`` is an int64 array of ``n_parts + 2`` entries: the number of
barriers each part has reached; an abort flag, raised to stop the workers
(at the end of a fit, or when a thread fails); and the number of epochs the
thread running part 0 has started, which the workers wait for.

The threads of a prediction claim its chunks from a shared counter with
:func:`fetch_add` and :func:`compare_and_swap` (see ``kernels.prediction``).
Two threads time a hand-off between their cores with :func:`pass_token`.
"""

import os
import platform

from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

from ._jit import jit

# Spins between two sched_yield calls while waiting: a waiting thread gives
# its core away now and then, in case the thread it waits for needs it.
# Measured on 2 cores, two processes each fitting digits twice with two
# threads (a worker woken for each epoch): 0.40 s per process with 4096,
# 0.22 s with 256, 0.20 s with 16 or 1. With the worker kept in the kernel
# and 256: 0.18 s, against 0.16 s with one thread per fit.
SPINS_PER_YIELD = 256
# Spins after which a waiting thread sleeps SLEEP_MICROSECONDS instead of
# yielding (a worker waiting for the next epoch while Python code runs).
SPINS_BEFORE_SLEEP = 1 << 16
SLEEP_MICROSECONDS = 100

_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")
# sched_yield and usleep exist wherever Python has os.sched_yield (POSIX systems)
_POSIX = hasattr(os, "sched_yield")


def _element_pointer(context, builder, array_type, array_value, index_type, index_value):
    """Pointer to ``array[index]`` of a 1-D array."""
    array = context.make_array(array_type)(context, builder, array_value)
    index = context.cast(builder, index_value, index_type, types.intp)
    return cgutils.get_item_pointer(context, builder, array_type, array, [index])


def _int64_vector(array):
    """Whether the Numba type ``array`` is a 1-D int64 array."""
    return isinstance(array, types.Array) and array.ndim == 1 and array.dtype == types.int64


@intrinsic
def load_acquire(typingctx, array, index):
    """``array[index]`` of an int64 array, read with acquire ordering."""
    if not (_int64_vector(array) and isinstance(index, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        pointer = _element_pointer(context, builder, signature.args[0], args[0], signature.args[1], args[1])
        return builder.load_atomic(pointer, "acquire", 8)

    return types.int64(array, index), codegen


@intrinsic
def store_release(typingctx, array, index, value):
    """``array[index] = value`` of an int64 array, written with release ordering."""
    if not (_int64_vector(array) and isinstance(index, types.Integer) and isinstance(value, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        pointer = _element_pointer(context, builder, signature.args[0], args[0], signature.args[1], args[1])
        stored = context.cast(builder, args[2], signature.args[2], types.int64)
        builder.store_atomic(stored, pointer, "release", 8)
        return context.get_dummy_value()

    return types.none(array, index, value), codegen


@intrinsic
def compare_and_swap(typingctx, array, index, expected, value):
    """Set ``array[index]`` of an int64 array to ``value`` if it holds ``expected``, atomically; return whether it did."""
    if not (_int64_vector(array) and isinstance(index, types.Integer)
            and isinstance(expected, types.Integer) and isinstance(value, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        pointer = _element_pointer(context, builder, signature.args[0], args[0], signature.args[1], args[1])
        old = context.cast(builder, args[2], signature.args[2], types.int64)
        new = context.cast(builder, args[3], signature.args[3], types.int64)
        outcome = builder.cmpxchg(pointer, old, new, "seq_cst", "seq_cst")
        return builder.extract_value(outcome, 1)

    return types.boolean(array, index, expected, value), codegen


@intrinsic
def fetch_add(typingctx, array, index, value):
    """Add ``value`` to ``array[index]`` of an int64 array, atomically; return the value before."""
    if not (_int64_vector(array) and isinstance(index, types.Integer) and isinstance(value, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        pointer = _element_pointer(context, builder, signature.args[0], args[0], signature.args[1], args[1])
        added = context.cast(builder, args[2], signature.args[2], types.int64)
        return builder.atomic_rmw("add", pointer, added, "seq_cst")

    return types.int64(array, index, value), codegen


@intrinsic
def spin_pause(typingctx, spins):
    """Pause in a spin-wait; every :data:`SPINS_PER_YIELD` spins, yield the core or sleep.

    After :data:`SPINS_BEFORE_SLEEP` spins the wait sleeps
    :data:`SLEEP_MICROSECONDS` instead of yielding, so that a long wait costs
    next to no CPU time.
    """
    if not isinstance(spins, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        module = builder.module
        if _X86:
            pause = cgutils.get_or_insert_function(module, ir.FunctionType(ir.VoidType(), []), "llvm.x86.sse2.pause")
            builder.call(pause, [])
        if _POSIX:
            count = context.cast(builder, args[0], signature.args[0], types.int64)
            due = builder.icmp_unsigned("==", builder.and_(count, ir.Constant(count.type, SPINS_PER_YIELD - 1)),
                                        ir.Constant(count.type, 0))
            with builder.if_then(due, likely=False):
                long_wait = builder.icmp_signed(">=", count, ir.Constant(count.type, SPINS_BEFORE_SLEEP))
                with builder.if_else(long_wait) as (then_sleep, otherwise_yield):
                    with then_sleep:
                        usleep = cgutils.get_or_insert_function(
                            module, ir.FunctionType(ir.IntType(32), [ir.IntType(32)]), "usleep"
                        )
                        builder.call(usleep, [ir.Constant(ir.IntType(32), SLEEP_MICROSECONDS)])
                    with otherwise_yield:
                        sched_yield = cgutils.get_or_insert_function(
                            module, ir.FunctionType(ir.IntType(32), []), "sched_yield"
                        )
                        builder.call(sched_yield, [])
        return context.get_dummy_value()

    return types.none(spins), codegen


@jit(internal=True)
def meet(sync, part, n_parts, barrier):
    """Record that ``part`` reached barrier number ``barrier`` and wait for every other part.

    Returns False, without waiting further, when the abort flag
    (``sync[n_parts]``) is raised.
    """
    store_release(sync, part, barrier)
    for other in range(n_parts):
        spins = 0
        while other != part and load_acquire(sync, other) < barrier:
            if load_acquire(sync, n_parts) != 0:
                return False
            spins += 1
            spin_pause(spins)
    return True


@jit(internal=True)
def wait_for_epoch(sync, n_parts, epoch):
    """Wait until the thread running part 0 has started epoch number ``epoch``.

    Returns False when the abort flag is raised instead.
    """
    spins = 0
    while load_acquire(sync, n_parts + 1) < epoch:
        if load_acquire(sync, n_parts) != 0:
            return False
        spins += 1
        spin_pause(spins)
    return load_acquire(sync, n_parts) == 0


@jit
def pass_token(flag, side, n_passes):
    """Pass a token back and forth with another thread ``n_passes`` times; return the passes made.

    ``flag[0]`` counts the passes of both threads: side 0 passes at even
    counts, side 1 at odd ones. Two threads calling this with sides 0 and
    1 time a one-way hand-off between their cores (``fastbp._threads``
    measures it before it splits a fit whose threads would exchange much
    data). Returns early, with the passes made, when ``flag[1]`` (the abort
    flag) is raised.
    """
    passes = 0
    spins = 0
    while passes < n_passes:
        if load_acquire(flag, 1) != 0:
            break
        count = load_acquire(flag, 0)
        if count % 2 == side:
            store_release(flag, 0, count + 1)
            passes += 1
            spins = 0
        else:
            spins += 1
            spin_pause(spins)
    return passes

"""Barriers and waits for the threads that share the mini-batches of an epoch.

The threads of a split epoch (:func:`kernels.training.train_epoch`) meet
twice per mini-batch, far more often than a pool or OpenMP hand-off could
afford: each thread publishes a counter with a release store and waits,
spinning, for the others' with acquire loads.

``sync`` is an int64 array of ``n_threads + 2`` entries: the number of
barriers each thread has reached; an abort flag, raised to stop every
thread (at the end of a fit, or when a thread fails); and the number of
epochs the leading thread (thread 0) has started, which the others wait for.
A wait spins with the CPU's pause instruction, gives its core away now and
then, and sleeps once it has lasted long (a worker waiting while Python
code runs between epochs), so that a thread that waits long costs next to
no CPU time.
"""

import os
import platform

from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

from ._jit import jit

# A waiting thread calls sched_yield every SPINS_PER_YIELD spins, in case
# the thread it waits for needs its core.
SPINS_PER_YIELD = 256
# After SPINS_BEFORE_SLEEP spins (a millisecond or two) a waiting thread
# sleeps SLEEP_MICROSECONDS between checks instead of yielding.
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
    :data:`SLEEP_MICROSECONDS` instead of yielding.
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
def meet(sync, thread, n_threads, barrier):
    """Record that ``thread`` reached barrier number ``barrier`` and wait for every other thread.

    Returns False, without waiting further, when the abort flag
    (``sync[n_threads]``) is raised.
    """
    store_release(sync, thread, barrier)
    for other in range(n_threads):
        spins = 0
        while other != thread and load_acquire(sync, other) < barrier:
            if load_acquire(sync, n_threads) != 0:
                return False
            spins += 1
            spin_pause(spins)
    return True


@jit(internal=True)
def wait_for_epoch(sync, n_threads, epoch):
    """Wait until thread 0 has started epoch number ``epoch``; False when the abort flag is raised instead."""
    spins = 0
    while load_acquire(sync, n_threads + 1) < epoch:
        if load_acquire(sync, n_threads) != 0:
            return False
        spins += 1
        spin_pause(spins)
    return load_acquire(sync, n_threads) == 0


@jit
def signal(flags, index, value):
    """``flags[index] = value`` for a thread that waits with :func:`wait_while_equal` (release ordering)."""
    store_release(flags, index, value)


@jit
def wait_while_equal(flags, index, value, max_spins):
    """Wait, spinning, while ``flags[index]`` holds ``value``, at most ``max_spins`` spins; return what it holds.

    Called from Python: the wait releases the GIL. Past
    :data:`SPINS_BEFORE_SLEEP` spins it sleeps between checks.
    """
    current = load_acquire(flags, index)
    spins = 0
    while current == value and spins < max_spins:
        spins += 1
        spin_pause(spins)
        current = load_acquire(flags, index)
    return current

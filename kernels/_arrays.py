"""Array helpers Numba lacks: a cheap 2-D view of a 1-D buffer and a prefetch hint.

A 2-D view of a 1-D buffer without Numba's general reshape:

``ndarray.reshape`` in a kernel calls a C helper that handles every layout;
the kernels take many small 2-D views of their flat buffers per mini-batch
(about ten per row in the one-row kernel), where that adds up.
:func:`matrix_view` builds the view of a C-contiguous buffer directly.

:func:`prefetch_row` asks the CPU to start loading a row of a large array
that a loop will read next, so that a row drawn at random from a matrix
larger than the caches does not stall the loop when it arrives there.
"""

from llvmlite import ir
from numba.core import cgutils, types
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic
from numba.np.arrayobj import make_array, populate_array

from ._jit import jit


@intrinsic
def _c_matrix(typingctx, flat, n_rows, n_cols):
    """Unchecked C-ordered (n_rows, n_cols) view of the 1-D C-ordered ``flat``."""
    if not (isinstance(flat, types.Array) and flat.ndim == 1 and flat.layout == "C"):
        return None
    signature = flat.copy(ndim=2, layout="C")(flat, n_rows, n_cols)

    def codegen(context, builder, sig, args):
        flat_value, rows_value, cols_value = args
        source = make_array(sig.args[0])(context, builder, flat_value)
        view = make_array(sig.return_type)(context, builder)
        rows = context.cast(builder, rows_value, sig.args[1], types.intp)
        cols = context.cast(builder, cols_value, sig.args[2], types.intp)
        populate_array(
            view,
            data=source.data,
            shape=cgutils.pack_array(builder, [rows, cols]),
            strides=cgutils.pack_array(builder, [builder.mul(cols, source.itemsize), source.itemsize]),
            itemsize=source.itemsize,
            meminfo=source.meminfo,
            parent=source.parent,
        )
        return impl_ret_borrowed(context, builder, sig.return_type, view._getvalue())

    return signature, codegen


@jit(internal=True)
def matrix_view(flat, n_rows, n_cols):
    """``flat.reshape((n_rows, n_cols))`` for a 1-D C-ordered array of exactly that many items."""
    if n_rows < 0 or n_cols < 0 or flat.shape[0] != n_rows * n_cols:
        raise ValueError("matrix_view: the buffer does not hold n_rows * n_cols items")
    return _c_matrix(flat, n_rows, n_cols)


@intrinsic
def prefetch_row(typingctx, array, row):
    """Hint the CPU to fetch the first and last items of ``array[row]`` (a 2-D array) into its caches.

    A hint only: it reads nothing, cannot fault and changes no result. ``row``
    must be a valid row index and the array must have at least one column.
    """
    if not (isinstance(array, types.Array) and array.ndim == 2 and isinstance(row, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        array_type = sig.args[0]
        matrix = make_array(array_type)(context, builder, args[0])
        row_index = context.cast(builder, args[1], sig.args[1], types.intp)
        n_cols = cgutils.unpack_tuple(builder, matrix.shape, 2)[1]
        last_col = builder.sub(n_cols, context.get_constant(types.intp, 1))
        byte_pointer = ir.IntType(8).as_pointer()
        int32 = ir.IntType(32)
        prefetch = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [byte_pointer, int32, int32, int32]), "llvm.prefetch.p0i8"
        )
        for col in (context.get_constant(types.intp, 0), last_col):
            pointer = cgutils.get_item_pointer(context, builder, array_type, matrix, [row_index, col])
            # read (0), keep in all cache levels (3), data cache (1)
            builder.call(prefetch, [builder.bitcast(pointer, byte_pointer), int32(0), int32(3), int32(1)])
        return context.get_dummy_value()

    return types.none(array, row), codegen

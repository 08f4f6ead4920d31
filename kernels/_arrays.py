"""A 2-D view of a 1-D buffer without Numba's general reshape.

``ndarray.reshape`` in a kernel calls a C helper that handles every layout
(~12 ns a call); the kernels take many small 2-D views of their flat
buffers per mini-batch (per row in the one-row kernel), where that adds up
(20-32-1, one row at a time: ~10 views per row). :func:`matrix_view` builds
the view of a C-contiguous buffer directly (~1 ns).
"""

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

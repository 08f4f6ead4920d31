"""``out = a @ b`` for 2-D arrays through BLAS, emitted in the calling kernel.

Numba's ``np.dot(a, b, out)`` is an overload: each combination of array
types compiles a function of its own, with its shape checks compiled apart
again, each optimised in a module of its own and compiled to machine code
that no kernel runs (kernels link its IR). The kernels meet three
combinations per dtype (``A @ W``, ``A.T @ delta``, ``delta @ W.T``).
:func:`matmul_into` emits the same BLAS calls as Numba's ``np.dot`` for a
matrix product (gemm, or gemv and dot for one-row and one-column operands,
numba.np.linalg.dot_3_mm) directly in the calling kernel, with its shape
checks as plain comparisons.
"""

from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic
from numba.np.arrayobj import make_array
from numba.np.linalg import call_xxdot, call_xxgemm, call_xxgemv, ensure_blas

_C_INT_MAX = 2**31 - 1


@intrinsic
def matmul_into(typingctx, a, b, out):
    """``np.dot(a, b, out)`` for 2-D C- or F-ordered ``a`` and ``b`` of one dtype and a C-ordered ``out``.

    Raises ValueError when the shapes do not match, OverflowError when a
    dimension does not fit in a C int (BLAS's integers), as ``np.dot`` does.
    """
    if not (
        all(isinstance(x, types.Array) and x.ndim == 2 for x in (a, b, out))
        and a.layout in "CF" and b.layout in "CF" and out.layout == "C"
        and a.dtype == b.dtype == out.dtype and out.mutable
    ):
        return None

    def codegen(context, builder, sig, args):
        ensure_blas()
        a_type, b_type, out_type = sig.args
        x = make_array(a_type)(context, builder, args[0])
        y = make_array(b_type)(context, builder, args[1])
        result = make_array(out_type)(context, builder, args[2])
        x_shapes = cgutils.unpack_tuple(builder, x.shape, 2)
        y_shapes = cgutils.unpack_tuple(builder, y.shape, 2)
        out_shapes = cgutils.unpack_tuple(builder, result.shape, 2)
        (m, k), (k_b, n) = x_shapes, y_shapes
        mismatch = builder.or_(
            builder.icmp_signed("!=", k, k_b),
            builder.or_(builder.icmp_signed("!=", out_shapes[0], m), builder.icmp_signed("!=", out_shapes[1], n)),
        )
        with cgutils.if_unlikely(builder, mismatch):
            context.call_conv.return_user_exc(builder, ValueError, ("matmul_into: incompatible array shapes",))
        c_int_max = ir.Constant(m.type, _C_INT_MAX)
        too_large = builder.or_(
            builder.icmp_signed(">", m, c_int_max),
            builder.or_(builder.icmp_signed(">", k, c_int_max), builder.icmp_signed(">", n, c_int_max)),
        )
        with cgutils.if_unlikely(builder, too_large):
            context.call_conv.return_user_exc(builder, OverflowError, ("array size too large to fit in C int",))
        zero = ir.Constant(m.type, 0)
        one = ir.Constant(m.type, 1)
        empty = builder.or_(
            builder.icmp_signed("==", k, zero),
            builder.or_(builder.icmp_signed("==", m, zero), builder.icmp_signed("==", n, zero)),
        )
        # the branches of numba.np.linalg.dot_3_mm, so the products are those of np.dot
        with builder.if_else(empty, likely=False) as (if_empty, if_not_empty):
            with if_empty:
                cgutils.memset(builder, result.data, builder.mul(result.itemsize, result.nitems), 0)
            with if_not_empty:
                left_vector = builder.icmp_signed("==", m, one)
                right_vector = builder.icmp_signed("==", n, one)
                with builder.if_else(right_vector) as (if_right_vector, if_right_matrix):
                    with if_right_vector:
                        with builder.if_else(left_vector) as (vector_vector, matrix_vector):
                            with vector_vector:
                                call_xxdot(context, builder, False, a_type.dtype, k, x.data, y.data, result.data)
                            with matrix_vector:
                                call_xxgemv(context, builder, a_type.layout == out_type.layout,
                                            a_type, x_shapes, x.data, y.data, result.data)
                    with if_right_matrix:
                        with builder.if_else(left_vector) as (vector_matrix, matrix_matrix):
                            with vector_matrix:
                                call_xxgemv(context, builder, b_type.layout != out_type.layout,
                                            b_type, y_shapes, y.data, x.data, result.data)
                            with matrix_matrix:
                                call_xxgemm(context, builder, a_type, x_shapes, x.data,
                                            b_type, y_shapes, y.data, out_type, out_shapes, result.data)
        return context.get_dummy_value()

    return types.none(a, b, out), codegen

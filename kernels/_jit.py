"""One decorator for every fastbp kernel, with a cache that never runs stale code.

Numba's own ``cache=True`` keys a function's cached machine code on the
timestamp of the file that defines it, so an edit to a callee in another
file (numba issue 1833) or an upgrade of fastbp can leave stale machine code
in use. Every kernel here is cached instead under a directory named after a
hash of *all* kernel sources and the Numba version, and its index carries the
same hash as its source stamp: any change to any kernel file starts a fresh
cache. When no cache location is writable the kernels still compile, once per
process, and a single warning says so.
"""

import hashlib
import inspect
import os
import shutil
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numba
import numba.core.errors
from numba.core.caching import CompileResultCacheImpl, FunctionCache, _CacheLocator
from numba.core.codegen import JITCodeLibrary
from numba.core.compiler import Compiler
from numba.core.registry import CPUDispatcher
from numba.extending import intrinsic

_KERNEL_DIR = Path(__file__).resolve().parent

# Integer exceptions are never raised from kernels; "numpy" skips the
# division-by-zero checks, which slow a fused epoch loop noticeably.
# No kernel is called through a C function pointer: the cfunc wrapper Numba
# compiles by default would only add to a default fit's first compile.
_JIT_OPTIONS = {"nogil": True, "error_model": "numpy", "no_cfunc_wrapper": True}


def _sources_hash():
    """Hash every kernel source file with the Numba version and code-generation flags.

    ``NUMBA_BOUNDSCHECK`` changes the machine code without changing the
    source, so it is part of the hash too.
    """
    digest = hashlib.sha256(numba.__version__.encode())
    digest.update(f"boundscheck={numba.config.BOUNDSCHECK}".encode())
    for path in sorted(_KERNEL_DIR.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


SOURCES_HASH = _sources_hash()


def _writable(path):
    """Return True when ``path`` can be created and written to."""
    try:
        os.makedirs(path, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
    except OSError:
        return False
    return True


def _find_cache_dir():
    """First writable cache directory, or None when there is none.

    Candidates, in order: ``$FASTBP_CACHE_DIR``, ``__pycache__`` beside the
    kernel sources, and the user's cache directory (``$XDG_CACHE_HOME`` or
    ``~/.cache``). Each gets a sub-directory named after :data:`SOURCES_HASH`.
    """
    candidates = []
    if os.environ.get("FASTBP_CACHE_DIR"):
        candidates.append(Path(os.environ["FASTBP_CACHE_DIR"]))
    candidates.append(_KERNEL_DIR / "__pycache__")
    xdg = os.environ.get("XDG_CACHE_HOME")
    candidates.append(Path(xdg) if xdg else Path.home() / ".cache")
    for base in candidates:
        path = base / "fastbp" / f"kernels-{SOURCES_HASH}"
        if _writable(path):
            _prune_unused_caches(path)
            return str(path)
    return None


# A cache of other kernel sources (another fastbp version, or Numba) unused
# this long is deleted, so upgrades do not pile up compiled code on disk.
UNUSED_CACHE_SECONDS = 30 * 24 * 3600


def _prune_unused_caches(path):
    """Mark the cache ``path`` as used; delete sibling caches unused for a while.

    A cache's modification time is its last use: every import touches it.
    Siblings older than :data:`UNUSED_CACHE_SECONDS` are deleted. Failures
    are ignored (another process may be pruning or using them).
    """
    now = time.time()
    try:
        os.utime(path, (now, now))
        siblings = [p for p in path.parent.glob("kernels-*") if p.name != path.name and p.is_dir()]
    except OSError:
        return
    for sibling in siblings:
        try:
            unused = now - sibling.stat().st_mtime > UNUSED_CACHE_SECONDS
        except OSError:
            continue
        if unused:
            shutil.rmtree(sibling, ignore_errors=True)


CACHE_DIR = _find_cache_dir()
if CACHE_DIR is None:
    warnings.warn(
        "fastbp: no writable cache directory (set FASTBP_CACHE_DIR); kernels "
        "will be compiled again in every new process.",
        RuntimeWarning,
        stacklevel=2,
    )


class _KernelCacheLocator(_CacheLocator):
    """Place a kernel's cache in :data:`CACHE_DIR`, stamped with the sources hash."""

    def __init__(self, py_func):
        self._lineno = py_func.__code__.co_firstlineno
        # Numba names the source file in its warning when a function cannot be cached
        self._py_file = py_func.__code__.co_filename

    def ensure_cache_path(self):
        os.makedirs(CACHE_DIR, exist_ok=True)

    def get_cache_path(self):
        return CACHE_DIR

    def get_source_stamp(self):
        return SOURCES_HASH

    def get_disambiguator(self):
        return str(self._lineno)

    @classmethod
    def from_function(cls, py_func, py_file):
        return cls(py_func)


class _KernelCacheImpl(CompileResultCacheImpl):
    _locator_classes = [_KernelCacheLocator]


class _KernelCache(FunctionCache):
    _impl_class = _KernelCacheImpl


# Fast-math flags for floating-point REDUCTIONS only (sums of squares): "reassoc"
# lets LLVM vectorise a running sum, at the price of summing in another order.
# Never "nnan"/"ninf": with them np.isnan silently becomes False.
REASSOCIATE = frozenset({"reassoc"})


class _LinkedOnlyLibrary(JITCodeLibrary):
    """Code library of a helper: LLVM IR that its callers link in, never machine code of its own.

    Numba optimises every function's module, then compiles it to machine
    code, and links the optimised IR into each caller, whose module is
    optimised and compiled again. For a helper that only kernels call, its
    own module pass and machine code are wasted: here they are skipped, and
    the kernel at the top of each call chain optimises and compiles the
    whole chain once. Function-level passes still run on the helper's IR.
    """

    def _optimize_final_module(self):
        """Leave module-level optimisation to the callers' modules."""

    def _finalize_final_module(self):
        """Mark the library final without adding it to the JIT engine."""
        self._finalize_dynamic_globals()
        self._verify_declare_only_symbols()
        self._finalized = True


class _HelperCompiler(Compiler):
    """Numba's compiler, lowering to LLVM IR only, into a :class:`_LinkedOnlyLibrary`."""

    def __init__(self, typingctx, targetctx, library, args, return_type, flags, locals):
        flags.no_compile = True
        if library is None:
            library = _LinkedOnlyLibrary(targetctx.codegen(), "fastbp_helper")
        super().__init__(typingctx, targetctx, library, args, return_type, flags, locals)


class _CallKey:
    """Key under which kernels find a helper's compiled code.

    Numba keys the code of a compiled function on its Python entry point,
    which a helper compiled to LLVM IR only does not have.
    """


class _InternalDispatcher(CPUDispatcher):
    """Dispatcher of a helper that kernels call: compiled to LLVM IR only, linked into them.

    The helper is not cached on disk on its own: the cached kernels contain
    its code. A call from Python goes to a twin compiled from the same source
    as an ordinary kernel (cached), on first use.
    """

    _python_twin = None

    def add_overload(self, cres):
        """Register the helper's IR for kernels to link in (there is no entry point to register)."""
        key = _CallKey()
        self.targetctx.insert_user_function(key, cres.fndesc, [cres.library])
        self.overloads[tuple(cres.signature.args)] = cres._replace(entry_point=key)

    def __call__(self, *args, **kwargs):
        if self._python_twin is None:
            self._python_twin = _dispatcher(self.py_func, self.targetoptions["fastmath"])
        return self._python_twin(*args, **kwargs)


def _dispatcher(func, fastmath):
    """An ordinary kernel: callable from Python, cached on disk when a location is writable."""
    dispatcher = numba.njit(**_JIT_OPTIONS, fastmath=fastmath)(func)
    if CACHE_DIR is not None:
        dispatcher._cache = _KernelCache(func)
    return dispatcher


def jit(func=None, *, fastmath=False, internal=False):
    """Compile ``func`` in nopython mode with the house options and cache.

    Use as ``@jit``, as ``@jit(fastmath=REASSOCIATE)`` for a reduction that
    should vectorise, or as ``@jit(internal=True)`` for a function that
    other kernels call.

    Parameters
    ----------
    func : callable
        A pure function on arrays and scalars.
    fastmath : bool or frozenset of str, default=False
        LLVM fast-math flags; only :data:`REASSOCIATE` is used here.
    internal : bool, default=False
        Compile the function to LLVM IR only, for the kernels that call it to
        link in and optimise with their own code (see
        :class:`_LinkedOnlyLibrary`); a call from Python compiles and runs
        a twin with a CPython wrapper. Numba would otherwise compile a
        CPython wrapper, an optimised module and machine code for every
        helper, none of which a kernel uses, and together they are a large
        share of a default fit's first compile.

    Returns
    -------
    dispatcher : numba Dispatcher
        The compiled function; kernels that are not internal are cached on
        disk when a location is writable.
    """
    if func is None:
        return lambda f: jit(f, fastmath=fastmath, internal=internal)
    fastmath = set(fastmath) if fastmath else False
    if not internal or numba.config.DISABLE_JIT:
        return _dispatcher(func, fastmath)
    options = dict(_JIT_OPTIONS, fastmath=fastmath, nopython=True, no_cpython_wrapper=True)
    return _InternalDispatcher(py_func=func, targetoptions=options, pipeline_class=_HelperCompiler)


def compile_time_dispatch(choose):
    """Make a function for kernels whose implementation is chosen from its argument types.

    ``choose(*types)`` receives the Numba types of the call's arguments
    (a code passed as a compile-time constant is a literal type) and
    returns ``(kernel, positions)``: the kernel to call and the positions of
    the arguments passed on to it. The call compiles to a direct call of
    that kernel and nothing else: unlike an ``@overload``, whose
    implementation Numba compiles to machine code of its own, the choice
    costs no compile of its own. Callable in kernels only.

    Parameters
    ----------
    choose : callable
        The choice, with the function's parameters and docstring.

    Returns
    -------
    function : numba intrinsic
    """

    def definition(typingctx, *args):
        kernel, positions = choose(*args)
        kernel_type = typingctx.resolve_value_type(kernel)
        signature = typingctx.resolve_function_type(kernel_type, tuple(args[p] for p in positions), {})
        if signature is None:
            raise numba.core.errors.TypingError(f"{choose.__name__}: {kernel} cannot take {args}")

        def codegen(context, builder, call_signature, values):
            call = context.get_function(kernel_type, signature)
            return call(builder, [values[p] for p in positions])

        return signature.return_type(*args), codegen

    definition.__name__ = definition.__qualname__ = choose.__name__
    definition.__doc__ = choose.__doc__
    # Numba folds the call's arguments by the definition's signature: choose's, after the typing context
    parameters = list(inspect.signature(choose).parameters.values())
    context = inspect.Parameter("typingctx", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    definition.__signature__ = inspect.Signature([context, *parameters])
    return intrinsic(prefer_literal=True)(definition)


class Specialised:
    """A kernel compiled once per combination of compile-time codes: ``kernel[codes]`` is its entry.

    ``make_entry(*codes)`` returns the kernel's Python function for those
    codes, a closure that passes them on to the functions it calls as
    literal arguments; each entry is compiled (and cached on disk, under
    its codes) on first use. Codes are integers or None.

    Parameters
    ----------
    make_entry : callable
        Function of the codes returning the kernel's Python function.
    """

    def __init__(self, make_entry):
        self._make_entry = make_entry
        self._entries = {}
        self._lock = threading.Lock()
        self.__name__ = make_entry.__name__
        self.__qualname__ = make_entry.__qualname__
        self.__doc__ = make_entry.__doc__
        self.__module__ = make_entry.__module__

    def __getitem__(self, codes):
        """The compiled entry of the kernel for ``codes`` (a tuple)."""
        entry = self._entries.get(codes)
        if entry is None:
            with self._lock:
                entry = self._entries.get(codes)
                if entry is None:
                    entry = self._entries[codes] = _dispatcher(self._make_entry(*codes), False)
        return entry

    def compiled(self):
        """The entries made so far, ``{codes: dispatcher}``."""
        return dict(self._entries)

    def __repr__(self):
        return f"<fastbp kernel {self.__qualname__}, compiled per codes>"


def specialised(make_entry):
    """Decorate ``make_entry(*codes)``, a factory of a kernel's Python function, as a :class:`Specialised` kernel."""
    return Specialised(make_entry)

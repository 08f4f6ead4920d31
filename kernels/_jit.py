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
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numba
from numba.core.caching import CompileResultCacheImpl, FunctionCache, _CacheLocator
from numba.core.registry import CPUDispatcher

_KERNEL_DIR = Path(__file__).resolve().parent

# Integer exceptions are never raised from kernels; "numpy" skips the
# division-by-zero checks and measured ~1.4x faster in a fused epoch loop.
_JIT_OPTIONS = {"nogil": True, "error_model": "numpy"}


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


class _InternalDispatcher(CPUDispatcher):
    """Dispatcher of a helper compiled without a CPython wrapper.

    Kernels call it as usual; a call from Python raises TypeError (Numba
    itself would jump into the missing wrapper and crash the interpreter).
    """

    def __call__(self, *args, **kwargs):
        raise TypeError(
            f"{self.py_func.__module__}.{self.py_func.__qualname__} is an internal kernel "
            "helper compiled without a Python entry point; only compiled kernels can call it"
        )


def jit(func=None, *, fastmath=False, internal=False, inline=False):
    """Compile ``func`` in nopython mode with the house options and cache.

    Use as ``@jit``, as ``@jit(fastmath=REASSOCIATE)`` for a reduction that
    should vectorise, or as ``@jit(internal=True)`` for a helper that only
    other kernels call.

    Parameters
    ----------
    func : callable
        A pure function on arrays and scalars.
    fastmath : bool or frozenset of str, default=False
        LLVM fast-math flags; only :data:`REASSOCIATE` is used here.
    internal : bool, default=False
        Compile no CPython wrapper, so the function cannot be called from
        Python (such a call raises TypeError); the wrappers of the helpers
        cost ~0.8 s of a default fit's first compile (measured 16.0 -> 14.6 s
        together with predict calling ``forward_recording`` directly).
    inline : bool, default=False
        Inline the helper into its callers in Numba's IR, with
        ``internal``. Each helper is otherwise optimised by LLVM in its
        own module and again, linked in, in every caller's: a chain of
        helpers above the forward pass cost ~0.6 s of compile per link.

    Returns
    -------
    dispatcher : numba Dispatcher
        The compiled function, cached on disk when a location is writable.
    """
    if func is None:
        return lambda f: jit(f, fastmath=fastmath, internal=internal, inline=inline)
    options = dict(_JIT_OPTIONS, fastmath=set(fastmath) if fastmath else False)
    if inline:
        options["inline"] = "always"
    if internal and not numba.config.DISABLE_JIT:
        dispatcher = _InternalDispatcher(
            py_func=func, targetoptions=dict(options, nopython=True, no_cpython_wrapper=True)
        )
    else:
        dispatcher = numba.njit(**options)(func)
    if CACHE_DIR is not None:
        dispatcher._cache = _KernelCache(func)
    return dispatcher

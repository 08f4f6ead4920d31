"""Run fastbp beyond one machine on Dask: per-worker thread limits and out-of-core training.

Two helpers, both optional (``pip install "fastbp[dask]"``; dask is imported
only when they are called):

- :func:`limit_worker_threads` (a :class:`ThreadLimitPlugin` registered on a
  ``distributed.Client``) caps the BLAS and Numba threads of every worker
  process, so that workers x task threads x library threads do not
  oversubscribe the cores;
- :func:`incremental_fit` trains an estimator over the row blocks of dask
  arrays with ``partial_fit``, one block at a time on the cluster (dask-ml's
  ``Incremental`` when it is installed, otherwise the same chain of tasks
  built with plain dask).

Hyper-parameter search needs no helper: scikit-learn's ``GridSearchCV``
spreads its fits over the cluster inside ``joblib.parallel_backend("dask")``.
"""

import copy
import numbers
import os
import sys
import warnings

import numpy as np
from sklearn.base import is_classifier
from sklearn.utils import check_random_state

__all__ = [
    "ThreadLimitPlugin",
    "incremental_fit",
    "limit_worker_threads",
    "worker_thread_info",
]

_INSTALL_HINT = (
    "fastbp.distributed needs dask and distributed; install them with "
    '`pip install "fastbp[dask]"`'
)

# Read by BLAS / OpenMP runtimes when they load: set in the worker so that a
# library loaded after the plugin (or a subprocess) starts limited too.
_LIBRARY_THREAD_ENV = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)

_PLUGIN_NAME = "fastbp-thread-limit"
_ENVIRON_PLUGIN_NAME = "fastbp-thread-environ"


def _import_distributed():
    """Import and return ``distributed``, or say which extra provides it."""
    try:
        import dask  # noqa: F401
        import distributed
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc
    return distributed


def _import_dask_array():
    """Import and return ``dask.array``, or say which extra provides it."""
    try:
        import dask  # noqa: F401
        import dask.array as da
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc
    return da


def _check_n_threads(n_threads):
    if isinstance(n_threads, bool) or not isinstance(n_threads, numbers.Integral):
        raise TypeError(f"n_threads must be an integer >= 1, got {n_threads!r}")
    if n_threads < 1:
        raise ValueError(f"n_threads must be an integer >= 1, got {n_threads}")
    return int(n_threads)


def _thread_environ(n_threads):
    """Environment that makes every library (Numba included) start with ``n_threads``."""
    environ = dict.fromkeys(_LIBRARY_THREAD_ENV, str(n_threads))
    environ["NUMBA_NUM_THREADS"] = str(n_threads)
    return environ


def _limit_process_threads(n_threads):
    """Limit the BLAS, OpenMP and Numba threads of the calling process.

    Parameters
    ----------
    n_threads : int
        Maximum number of threads each library may use in one call.

    Returns
    -------
    limiter : threadpoolctl.ThreadpoolLimiter
        The BLAS/OpenMP limits in force; ``limiter.restore_original_limits()``
        undoes them.

    Notes
    -----
    What a running process can change, and for which threads:

    - BLAS (OpenBLAS, MKL): process-wide, through threadpoolctl. Both NumPy's
      and SciPy's BLAS (the one Numba's ``np.dot`` calls) are loaded first,
      since threadpoolctl only sees loaded libraries.
    - Numba: :func:`numba.set_num_threads` is thread-local (numba issue
      10491): it limits the calling thread only, not the threads a Dask
      worker runs its tasks in. Every thread's default is the pool size,
      ``NUMBA_NUM_THREADS``, read once when Numba is imported (changing it
      afterwards is refused once the pool runs, and ignored by the pool
      before). So when Numba is not imported yet the limit goes through the
      environment and holds in every thread; when it is, the calling thread
      is limited and a warning says the others are not.
    - OpenMP: the limit threadpoolctl sets is the calling thread's too;
      ``OMP_NUM_THREADS`` applies to every thread only when set before the
      runtime loads.

    The environment variables are set in any case, for libraries loaded later
    and for subprocesses.
    """
    for name in _LIBRARY_THREAD_ENV:
        os.environ[name] = str(n_threads)

    if "numba" not in sys.modules:
        os.environ["NUMBA_NUM_THREADS"] = str(n_threads)
    else:
        import numba

        # NUMBA_NUM_THREADS is left alone here: Numba re-reads the environment
        # at each compile and raises on a new value once its pool runs.
        pool_size = numba.config.NUMBA_NUM_THREADS
        numba.set_num_threads(min(n_threads, pool_size))
        if pool_size > n_threads:
            warnings.warn(
                f"Numba was imported in process {os.getpid()} before its threads "
                f"were limited: only the calling thread now uses {n_threads} "
                f"thread(s), other threads keep Numba's default of {pool_size} "
                f"(numba.set_num_threads is thread-local). Start the process "
                f"with NUMBA_NUM_THREADS={n_threads}, e.g. with "
                f"limit_worker_threads(..., restart_workers=True).",
                stacklevel=2,
            )

    import numpy  # noqa: F401

    try:
        import scipy.linalg.cython_blas  # noqa: F401
    except ImportError:  # SciPy is optional for the limit itself
        pass
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=n_threads)


def worker_thread_info():
    """Report the thread limits in force in the calling process and thread.

    Meant to be run on Dask workers, as a task (``client.submit``) to see
    what a fit sees, or with ``client.run``.

    Returns
    -------
    info : dict
        ``pid`` and ``thread`` (the calling thread's name), ``numba_num_threads``
        (:func:`numba.get_num_threads` in this thread; this launches Numba's
        thread pool if it was not running), ``threadpools`` (the list from
        :func:`threadpoolctl.threadpool_info`: one dict per loaded BLAS/OpenMP
        library with its ``num_threads``) and ``environ`` (the thread-count
        environment variables, ``None`` when unset).
    """
    import threading

    import numba
    from threadpoolctl import threadpool_info

    return {
        "pid": os.getpid(),
        "thread": threading.current_thread().name,
        "numba_num_threads": numba.get_num_threads(),
        "threadpools": threadpool_info(),
        "environ": {
            name: os.environ.get(name)
            for name in (*_LIBRARY_THREAD_ENV, "NUMBA_NUM_THREADS")
        },
    }


def _make_thread_limit_plugin_class():
    from distributed import WorkerPlugin

    class ThreadLimitPlugin(WorkerPlugin):
        """Dask worker plugin limiting BLAS and Numba threads in each worker process.

        ``setup`` runs in every worker, present and future: it sets the
        thread-count environment variables, limits NumPy's and SciPy's BLAS
        with :func:`threadpoolctl.threadpool_limits` (process-wide) and calls
        :func:`numba.set_num_threads`, and warns when Numba's pool is larger
        than ``n_threads``: Numba's limit is per thread, and unpickling this
        plugin imports fastbp, hence Numba, so only a worker process started
        with ``NUMBA_NUM_THREADS`` has every task thread limited (see
        :func:`limit_worker_threads`). ``teardown`` (when the plugin is
        unregistered) restores the BLAS limits.

        Parameters
        ----------
        n_threads : int, default=1
            Threads each library may use per call. Choose it so that
            workers per machine x threads per worker x ``n_threads`` does
            not exceed the machine's cores.

        See Also
        --------
        limit_worker_threads : Register this plugin on a client.
        """

        name = _PLUGIN_NAME

        def __init__(self, n_threads=1):
            self.n_threads = _check_n_threads(n_threads)
            self._limiter = None

        def setup(self, worker):
            """Limit the threads of the worker's process; Dask calls it in every worker.

            Parameters
            ----------
            worker : distributed.Worker
                The worker the plugin is registered on.
            """
            self._limiter = _limit_process_threads(self.n_threads)

        def teardown(self, worker):
            """Restore the BLAS limits; Dask calls it when the plugin is removed.

            Parameters
            ----------
            worker : distributed.Worker
                The worker the plugin is registered on.
            """
            if self._limiter is not None:
                self._limiter.restore_original_limits()
                self._limiter = None

    # Importable as fastbp.distributed.ThreadLimitPlugin, so it pickles by reference.
    ThreadLimitPlugin.__module__ = __name__
    ThreadLimitPlugin.__qualname__ = "ThreadLimitPlugin"
    return ThreadLimitPlugin


def __getattr__(name):
    # The plugin subclasses distributed.WorkerPlugin, so it is built on first
    # access: importing this module does not import dask.
    if name == "ThreadLimitPlugin":
        _import_distributed()
        cls = _make_thread_limit_plugin_class()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | {"ThreadLimitPlugin"})


def limit_worker_threads(n_threads=1, client=None, restart_workers=True):
    """Limit BLAS and Numba threads in every worker process of a Dask cluster.

    Call it right after creating the client. It registers two plugins, which
    also apply to workers that join or restart later:

    1. with ``restart_workers=True``, distributed's ``Environ`` nanny plugin
       sets ``NUMBA_NUM_THREADS``, ``OMP_NUM_THREADS``,
       ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS`` (and the BLIS, vecLib
       and numexpr ones) to ``n_threads`` and restarts the workers, so that
       every library starts limited, in every thread;
    2. a :class:`ThreadLimitPlugin` limits, in each running worker process,
       the BLAS libraries (threadpoolctl) and the Numba threads of the
       calling thread (:func:`numba.set_num_threads`).

    The restart is what reaches Numba in the task threads: Numba's limit is
    thread-local and its default, ``NUMBA_NUM_THREADS``, is read when Numba is
    imported, which in a worker happens before any plugin runs.

    Parameters
    ----------
    n_threads : int, default=1
        Threads each library (BLAS, OpenMP, Numba) may use per call. Choose it
        so that workers per machine x threads per worker x ``n_threads`` does
        not exceed the machine's cores.
    client : distributed.Client, default=None
        The client of the cluster; the current default client when None.
    restart_workers : bool, default=True
        Set the environment in each worker's nanny and restart the workers
        (step 1). The restart discards the workers' in-memory data. Pass
        False when the workers were started with these environment variables
        already, or have no nanny (``dask worker --no-nanny``): then only the
        in-process limits apply, and each worker whose Numba pool is larger
        than ``n_threads`` logs a warning. A ``LocalCluster`` created by a
        script that imports Numba or fastbp at its top level re-imports that
        script in each new worker before the environment is applied; keep
        such imports under ``if __name__ == "__main__":`` there.

    Returns
    -------
    plugin : ThreadLimitPlugin
        The registered worker plugin (named ``"fastbp-thread-limit"``;
        registering again replaces it,
        ``client.unregister_worker_plugin(plugin.name)`` removes it and
        restores the BLAS limits).

    Raises
    ------
    ImportError
        If dask or distributed is not installed (the ``fastbp[dask]`` extra).
    ValueError
        If no client is given and there is no default client.

    See Also
    --------
    worker_thread_info : What a worker (or one of its tasks) sees.

    Examples
    --------
    >>> from distributed import Client  # doctest: +SKIP
    >>> from fastbp.distributed import limit_worker_threads, worker_thread_info  # doctest: +SKIP
    >>> client = Client("tcp://scheduler:8786")  # doctest: +SKIP
    >>> limit_worker_threads(1, client)  # doctest: +SKIP
    >>> info = client.submit(worker_thread_info, pure=False).result()  # doctest: +SKIP
    >>> info["numba_num_threads"]  # doctest: +SKIP
    1
    """
    distributed = _import_distributed()
    n_threads = _check_n_threads(n_threads)
    if client is None:
        client = distributed.get_client()
    if restart_workers:
        from distributed.diagnostics.plugin import Environ

        client.register_plugin(
            Environ(_thread_environ(n_threads)), name=_ENVIRON_PLUGIN_NAME
        )
    plugin = __getattr__("ThreadLimitPlugin")(n_threads)
    client.register_plugin(plugin, name=plugin.name)
    return plugin


def _dask_ml_incremental():
    """dask-ml's ``Incremental`` wrapper, or None when dask-ml cannot be used."""
    try:
        from dask_ml.wrappers import Incremental
    # Not only ImportError: a dask-ml built for another scikit-learn or dask
    # can fail at import with AttributeError/TypeError; fall back then.
    except Exception:
        return None
    if not hasattr(Incremental, "partial_fit"):
        return None
    return Incremental


def _partial_fit_block(estimator, X_block, y_block, fit_params):
    """One task of the chain: ``partial_fit`` on one block, return the estimator."""
    estimator.partial_fit(X_block, y_block, **fit_params)
    return estimator


def _as_row_blocks(X, y):
    """Dask arrays ``X`` (2-D) and ``y`` chunked along rows only, with equal row chunks."""
    da = _import_dask_array()
    import dask

    for name, array in (("X", X), ("y", y)):
        if dask.is_dask_collection(array) and not isinstance(array, da.Array):
            raise TypeError(
                f"{name} must be a dask array (or array-like), got "
                f"{type(array).__name__}; convert a dask DataFrame with "
                "`.to_dask_array(lengths=True)`"
            )
    X = da.asarray(X)
    y = da.asarray(y)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D, got an array of shape {X.shape}")
    if y.ndim not in (1, 2):
        raise ValueError(f"y must be 1-D or 2-D, got an array of shape {y.shape}")
    if X.numblocks[1] > 1:
        X = X.rechunk({1: -1})
    if y.ndim == 2 and y.numblocks[1] > 1:
        y = y.rechunk({1: -1})
    if np.isnan(X.chunks[0]).any() or np.isnan(y.chunks[0]).any():
        # Unknown chunk sizes (after filtering, or from a dask DataFrame):
        # blocks are paired in order, as dask-ml does.
        if X.numblocks[0] != y.numblocks[0]:
            raise ValueError(
                "X and y have unknown chunk sizes and a different number of row "
                f"blocks ({X.numblocks[0]} and {y.numblocks[0]}); compute the "
                "chunk sizes (`.compute_chunk_sizes()`) or chunk them alike"
            )
    elif X.chunks[0] != y.chunks[0]:
        if X.shape[0] != y.shape[0]:
            raise ValueError(
                "X and y must have the same number of rows, got "
                f"{X.shape[0]} and {y.shape[0]}"
            )
        y = y.rechunk({0: X.chunks[0]})
    return X, y


def incremental_fit(
    estimator,
    X,
    y,
    classes=None,
    n_epochs=1,
    shuffle_blocks=False,
    random_state=None,
):
    """Train an estimator out of core over the row blocks of dask arrays.

    Each epoch calls ``estimator.partial_fit`` once per row block of ``X``
    and ``y``, as a chain of tasks: each block is loaded where the data lives
    and the model travels from block to block, so the data is never gathered
    in one place (dask may load a few blocks ahead of the chain). With a
    ``distributed.Client`` the chain runs on the cluster, otherwise on dask's
    local scheduler. dask-ml's ``Incremental`` runs the chain when dask-ml is
    importable and ``y`` is 1-D (dask-ml fails on 2-D ``y`` blocks);
    otherwise the same chain is built with ``dask.delayed``. Both visit the
    blocks in the same order, so they give the same model.

    Parameters
    ----------
    estimator : estimator with ``partial_fit``
        E.g. :class:`fastbp.MLPClassifier` or :class:`fastbp.MLPRegressor`.
        It is not modified: a deep copy is trained, starting from the
        estimator's current state (a fitted estimator continues training).
    X : dask array of shape (n_samples, n_features)
        Training data. Chunks across columns are merged. An in-memory array
        is wrapped with ``dask.array.asarray``.
    y : dask array of shape (n_samples,) or (n_samples, n_outputs)
        Targets, rechunked to ``X``'s row chunks when they differ. With
        unknown chunk sizes (e.g. after boolean indexing) the i-th blocks of
        ``X`` and ``y`` are paired, and must hold the same rows.
    classes : array-like of shape (n_classes,), default=None
        All the classes of a classifier, passed to each ``partial_fit``
        call. Required when a classifier has not been fitted yet; must be
        None for a regressor.
    n_epochs : int, default=1
        Number of passes over all the blocks.
    shuffle_blocks : bool, default=False
        Visit the blocks in a new random order each epoch (the rows inside a
        block are shuffled by the estimator itself when its ``shuffle`` is
        True). Off, the order is ``X``'s and training is deterministic.
    random_state : int, RandomState instance or None, default=None
        Seeds the block order when ``shuffle_blocks`` is True: one
        ``RandomState`` shuffles ``range(n_blocks)`` once per epoch.

    Returns
    -------
    estimator : estimator
        The trained copy (with a cluster, a different object from the input
        in any case; always use the returned value).

    Raises
    ------
    ImportError
        If dask is not installed (the ``fastbp[dask]`` extra).
    ValueError
        If ``classes`` is missing for an unfitted classifier or given for a
        regressor, ``n_epochs`` < 1, or ``X`` and ``y`` do not match.

    See Also
    --------
    dask_ml.wrappers.Incremental : The wrapper used when dask-ml is present.

    Examples
    --------
    >>> import dask.array as da  # doctest: +SKIP
    >>> from fastbp import MLPClassifier  # doctest: +SKIP
    >>> from fastbp.distributed import incremental_fit  # doctest: +SKIP
    >>> X = da.random.random((1_000_000, 20), chunks=(100_000, 20))  # doctest: +SKIP
    >>> y = (X[:, 0] > 0.5).astype(int)  # doctest: +SKIP
    >>> clf = incremental_fit(MLPClassifier(), X, y, classes=[0, 1], n_epochs=3)  # doctest: +SKIP
    """
    _import_dask_array()
    import dask

    if not hasattr(estimator, "partial_fit"):
        raise TypeError(f"{type(estimator).__name__} has no partial_fit method")
    if (
        isinstance(n_epochs, bool)
        or not isinstance(n_epochs, numbers.Integral)
        or n_epochs < 1
    ):
        raise ValueError(f"n_epochs must be an integer >= 1, got {n_epochs!r}")
    fit_params = {}
    if is_classifier(estimator):
        if classes is None and not hasattr(estimator, "classes_"):
            raise ValueError(
                "classes must be given to train an unfitted classifier: a block "
                "may not contain every class"
            )
        if classes is not None:
            fit_params["classes"] = classes
    elif classes is not None:
        raise ValueError(
            f"classes is only for classifiers, {type(estimator).__name__} is not one"
        )
    X, y = _as_row_blocks(X, y)

    estimator = copy.deepcopy(estimator)
    rng = check_random_state(random_state)

    # dask-ml's chain addresses y's blocks as 1-D ones: 2-D y takes the plain one.
    Incremental = _dask_ml_incremental() if y.ndim == 1 else None
    if Incremental is not None:
        # dask-ml shuffles with check_random_state(random_state): passing the
        # RandomState instance (not an int) gives a new order each epoch.
        wrapper = Incremental(
            estimator, shuffle_blocks=shuffle_blocks, random_state=rng
        )
        # Incremental.partial_fit continues from estimator_ (fit would clone).
        wrapper.estimator_ = estimator
        for _ in range(n_epochs):
            wrapper.partial_fit(X, y, **fit_params)
        return wrapper.estimator_

    X_blocks = X.to_delayed().ravel()
    y_blocks = y.to_delayed().ravel()
    partial_fit_block = dask.delayed(_partial_fit_block, pure=False)
    for _ in range(n_epochs):
        # One computation per epoch, as dask-ml does: a block is released
        # after its task instead of being held for the next epoch.
        order = list(range(len(X_blocks)))
        if shuffle_blocks:
            rng.shuffle(order)
        model = estimator
        for i in order:
            model = partial_fit_block(model, X_blocks[i], y_blocks[i], fit_params)
        estimator = model.compute()
    return estimator

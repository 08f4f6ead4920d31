"""The on-disk kernel cache: reused across processes, never stale, optional.

Each test runs fastbp in a fresh Python process, as a user's second script
or an upgraded installation would.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

FIT_AND_REPORT = textwrap.dedent(
    """
    import json, time, warnings
    import numpy as np
    import fastbp
    from fastbp import kernels
    rng = np.random.RandomState(0)
    X = rng.rand(60, 5)
    y = (X[:, 0] > 0.5).astype(int)
    warnings.simplefilter("ignore")
    start = time.perf_counter()
    model = fastbp.MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0).fit(X, y)
    seconds = time.perf_counter() - start
    stats = [entry.stats for entry in kernels.train_epoch.compiled().values()]
    print(json.dumps({
        "file": fastbp.__file__,
        "cache_dir": kernels.CACHE_DIR,
        "hits": sum(sum(s.cache_hits.values()) for s in stats),
        "misses": sum(sum(s.cache_misses.values()) for s in stats),
        "seconds": seconds,
        "loss": model.loss_curve_[-1],
    }))
    """
)


def _run(code, env_overrides, cwd=None):
    env = dict(os.environ)
    env.update(env_overrides)
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    return result


def _report(code, env_overrides, cwd=None):
    result = _run(code, env_overrides, cwd)
    return json.loads(result.stdout.strip().splitlines()[-1]), result.stderr


def _copy_package(target):
    """Lay fastbp out in ``target`` as an installed wheel would (the kernels' symlink copied as files)."""
    package = target / "fastbp"
    shutil.copytree(REPO / "fastbp", package, ignore=shutil.ignore_patterns("__pycache__"))
    return package


def test_second_process_loads_kernels_from_cache(tmp_path):
    env = {"FASTBP_CACHE_DIR": str(tmp_path / "cache")}
    first, _ = _report(FIT_AND_REPORT, env)
    second, _ = _report(FIT_AND_REPORT, env)
    assert first["misses"] == 1 and first["hits"] == 0
    assert second["misses"] == 0 and second["hits"] == 1
    assert second["cache_dir"].startswith(str(tmp_path))
    assert second["loss"] == first["loss"]


def test_edited_kernel_file_never_runs_stale_code(tmp_path):
    # numba issue 1833: an edit to a callee in another file does not invalidate
    # the caller's cache. Here the callee (squared_sum, network.py) is
    # edited and the caller (loss_and_gradient, training.py) must see it.
    package = _copy_package(tmp_path / "site")
    env = {"FASTBP_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(tmp_path / "site")}
    code = textwrap.dedent(
        """
        import json
        import numpy as np
        import fastbp
        net = fastbp.Network((2, 1), out_activation="identity", loss="squared_error")
        net.set_weights([np.array([[3.0], [4.0]])])
        loss, _ = net.loss_and_gradient(np.zeros((1, 2)), np.zeros((1, 1)), alpha=2.0)
        print(json.dumps({"file": fastbp.__file__, "loss": loss}))
        """
    )
    before, _ = _report(code, env, cwd=tmp_path)
    assert before["file"].startswith(str(tmp_path))
    assert before["loss"] == pytest.approx(0.5 * 2.0 * 25.0)

    network_py = package / "kernels" / "network.py"
    source = network_py.read_text()
    edited = source.replace(
        "total += np.float64(values[k]) * values[k]",
        "total += 2.0 * np.float64(values[k]) * values[k]",
    )
    assert edited != source
    network_py.write_text(edited)
    after, _ = _report(code, env, cwd=tmp_path)
    assert after["loss"] == pytest.approx(0.5 * 2.0 * 50.0)


@pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0,
    reason="root can write to read-only directories",
)
def test_no_writable_cache_still_trains_with_one_warning_unprivileged(tmp_path):
    _check_no_writable_cache(tmp_path, chmod=True)


def test_no_writable_cache_still_trains_with_one_warning(tmp_path):
    _check_no_writable_cache(tmp_path, chmod=False)


def _check_no_writable_cache(tmp_path, chmod):
    package = _copy_package(tmp_path / "site")
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    # A path below a regular file can never be created, even by root.
    env = {
        "PYTHONPATH": str(tmp_path / "site"),
        "FASTBP_CACHE_DIR": str(blocker / "cache"),
        "HOME": str(blocker / "home"),
        "XDG_CACHE_HOME": str(blocker / "xdg"),
    }
    if chmod:
        for path in [package, *package.rglob("*")]:
            path.chmod(0o555 if path.is_dir() else 0o444)
    else:
        (package / "kernels" / "__pycache__").write_text("")
    try:
        report, stderr = _report(FIT_AND_REPORT.replace('warnings.simplefilter("ignore")', ""), env, cwd=tmp_path)
    finally:
        if chmod:
            for path in [package, *package.rglob("*")]:
                path.chmod(0o755 if path.is_dir() else 0o644)
    assert report["cache_dir"] is None
    assert report["file"].startswith(str(tmp_path))
    assert stderr.count("no writable cache directory") == 1
    assert report["hits"] == 0


COMPILED_HELPERS = textwrap.dedent(
    """
    import json, sys, warnings
    import numpy as np
    import scipy.sparse as sp
    import fastbp
    from fastbp import kernels
    from fastbp.kernels import network, optimizers
    rng = np.random.RandomState(0)
    X = rng.rand(60, 5)
    y = (X[:, 0] > 0.5).astype(int)
    warnings.simplefilter("ignore")
    solver, sparse = sys.argv[1], sys.argv[2] == "csr"
    fastbp.MLPClassifier(hidden_layer_sizes=(4,), solver=solver, max_iter=2, random_state=0).fit(
        sp.csr_matrix(X) if sparse else X, y
    )
    helpers = [network.csr_rows_dot, network.csr_rows_transpose_dot, optimizers.sgd_update,
               optimizers.adam_update]
    print(json.dumps({helper.py_func.__name__: len(helper.signatures) for helper in helpers}))
    """
)


@pytest.mark.parametrize("solver, layout", [("adam", "dense"), ("sgd", "csr")])
def test_a_fit_compiles_only_its_solver_and_input_layout(tmp_path, solver, layout):
    # the other solver's state and a dense input's CSR arrays are None: Numba
    # prunes their code (a default fit's first compile: 14.1 -> 11.8 s)
    env = {"FASTBP_CACHE_DIR": str(tmp_path / "cache")}
    result = subprocess.run(
        [sys.executable, "-c", COMPILED_HELPERS, solver, layout], env=dict(os.environ, **env),
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    compiled = json.loads(result.stdout.strip().splitlines()[-1])
    csr_compiled = int(layout == "csr")
    assert compiled["csr_rows_dot"] == compiled["csr_rows_transpose_dot"] == csr_compiled
    assert compiled["adam_update"] == int(solver == "adam")
    assert compiled["sgd_update"] == int(solver == "sgd")


CACHED_AND_LINKED = textwrap.dedent(
    """
    import json, warnings
    import numpy as np
    import fastbp
    from fastbp import kernels
    from fastbp.kernels import network, training
    from fastbp.kernels._jit import _LinkedOnlyLibrary
    rng = np.random.RandomState(0)
    X = rng.rand(60, 5)
    y = (X[:, 0] > 0.5).astype(int)
    warnings.simplefilter("ignore")
    fastbp.MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(X, y).predict(X)
    helpers = [network.forward_recording, network.backward_recording, training.raw_batch_gradient]
    print(json.dumps({
        "linked_only": [all(isinstance(c.library, _LinkedOnlyLibrary) for c in helper.overloads.values())
                        for helper in helpers],
        "compiled": [len(helper.overloads) for helper in helpers],
    }))
    """
)


def test_helpers_are_linked_into_the_cached_kernels_not_compiled_or_cached_alone(tmp_path):
    # a helper's own optimised module and machine code cost ~0.7 s per dtype
    # of a default fit's first compile, and no kernel used them
    cache = tmp_path / "cache"
    report, _ = _report(CACHED_AND_LINKED, {"FASTBP_CACHE_DIR": str(cache)})
    # forward_recording: once for the training kernel, once for predictions (which may skip the softmax)
    assert report["compiled"] == [2, 1, 1] and all(report["linked_only"])
    cached = {path.name.split("-")[0] for path in cache.rglob("*.nbi")}
    assert cached == {"training.train_epoch.locals.train_epoch", "prediction.predict.locals.predict"}
    second, _ = _report(CACHED_AND_LINKED, {"FASTBP_CACHE_DIR": str(cache)})
    assert second["compiled"] == [0, 0, 0]  # the cached kernels need no helper


def test_caches_of_other_kernel_sources_unused_for_30_days_are_deleted(tmp_path):
    base = tmp_path / "cache" / "fastbp"
    month_and_a_day = 31 * 24 * 3600
    stale, recent = base / "kernels-0000000000000000", base / "kernels-1111111111111111"
    unrelated = base / "notes"
    for directory in (stale, recent, unrelated):
        directory.mkdir(parents=True)
        (directory / "index.nbi").write_bytes(b"x")
    old = time.time() - month_and_a_day
    for directory in (stale, unrelated):
        os.utime(directory, (old, old))
    code = "import json; from fastbp import kernels; print(json.dumps({'cache_dir': kernels.CACHE_DIR}))"
    report, _ = _report(code, {"FASTBP_CACHE_DIR": str(tmp_path / "cache")})
    current = Path(report["cache_dir"])
    assert current.parent == base and current.is_dir()
    assert time.time() - current.stat().st_mtime < 3600  # marked as used
    assert not stale.exists()
    assert recent.exists() and unrelated.exists()

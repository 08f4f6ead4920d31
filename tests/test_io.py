"""Safe model files: exact round trips, continued training, and every kind of bad file.

What is checked here:

- round trips of classifiers (binary, multiclass with string labels,
  multilabel), regressors (single output, multi-output, Poisson), float32 and
  float64, every solver, early stopping, unfitted estimators and Networks
  (with and without biases): identical attributes (arrays equal with their
  dtype, the same Python / NumPy scalar types), bit-identical predictions,
  ``coefs_`` / ``intercepts_`` views of the rebuilt network's buffer;
- the loaded model's ``partial_fit`` and warm-started ``fit`` continue
  exactly as the original's (optimizer state, step counter, shared
  ``RandomState``);
- the file itself: a ZIP of ``header.json`` plus ``.npy`` members readable
  with ``allow_pickle=False``, deterministic bytes, saving leaves the model
  unchanged;
- every bad file raises ``ModelFileError`` (a ``ValueError``) saying why:
  truncated, not a ZIP, a flipped byte, an array re-packed with other values,
  an edited header number, wrong / newer format_version, unknown format or
  class, bad JSON, missing or extra members, unsupported values, an object
  (pickled) array member;
- unsupported values raise ``TypeError`` at save time, naming the attribute;
- pickle and joblib keep working;
- files written by fastbp 0.1.0 (``tests/data/model-files-0.1.0``) load,
  predict what they predicted then and keep training.
"""

import copy
import hashlib
import io
import json
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import joblib
import numpy as np
import pytest
import threadpoolctl
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import load_diabetes, load_digits
from sklearn.exceptions import InconsistentVersionWarning
from sklearn.neural_network import MLPClassifier as SkMLPClassifier
from sklearn.preprocessing import LabelBinarizer

from tasks import CLASSIFICATION, REGRESSION, make_data
from fastbp import MLPClassifier, MLPRegressor, Network
from fastbp._io import FORMAT_VERSION, ModelFileError, load, save

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


# ---------------------------------------------------------------------------
# Data, models and helpers
# ---------------------------------------------------------------------------


def make_model(task, solver="adam", dtype=np.float64, **params):
    params = {"hidden_layer_sizes": (5, 3), "solver": solver, "max_iter": 6,
              "random_state": 0, **params}
    if task in CLASSIFICATION:
        est = MLPClassifier(**params)
    else:
        est = MLPRegressor(loss="poisson" if task == "poisson" else "squared_error", **params)
    X, y = make_data(task)
    return est.fit(X.astype(dtype), y), X.astype(dtype), y


def round_trip(model, tmp_path, name="model.fbp"):
    path = tmp_path / name
    save(model, path)
    return load(path)


def assert_same(a, b, path="model"):
    """Recursive exact equality of two values, types and dtypes included."""
    assert type(a) is type(b), f"{path}: {type(a)} != {type(b)}"
    if isinstance(a, np.ndarray):
        assert (a.dtype, a.shape) == (b.dtype, b.shape), f"{path}: {a.dtype}{a.shape} != {b.dtype}{b.shape}"
        assert_array_equal(a, b, err_msg=path)
    elif isinstance(a, (float, np.floating)):
        assert (a == b) or (np.isnan(a) and np.isnan(b)), f"{path}: {a!r} != {b!r}"
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, dict):
        assert list(a) == list(b), f"{path}: keys {list(a)} != {list(b)}"
        for key in a:
            assert_same(a[key], b[key], f"{path}[{key!r}]")
    elif isinstance(a, np.random.RandomState):
        assert_same(a.get_state(), b.get_state(), f"{path}.get_state()")
    elif isinstance(a, Network):
        assert_same(network_config(a), network_config(b), path)
        assert_same(a.params, b.params, f"{path}.params")
        assert a.owns(a.coefs, a.intercepts) and b.owns(b.coefs, b.intercepts)
    elif hasattr(a, "__dict__"):
        assert_same(vars(a), vars(b), path)
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def network_config(net):
    return (net.layer_units, net.activations, net.loss, net.bias, net.dtype.str)


def assert_same_estimator(original, loaded):
    # (the order of __dict__ is not part of the state: params come first in a loaded model)
    state_a = {k: v for k, v in sorted(vars(original).items()) if k != "_network"}
    state_b = {k: v for k, v in sorted(vars(loaded).items()) if k != "_network"}
    assert_same(state_a, state_b)
    if "coefs_" in vars(original):
        network = loaded._network
        assert network.owns(loaded.coefs_, loaded.intercepts_)
        assert all(np.shares_memory(c, network.params) for c in loaded.coefs_ + loaded.intercepts_)
        assert_same(original._network, network, "_network")


def read_archive(path):
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def write_archive(path, members):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def checksum(header):
    body = {k: v for k, v in header.items() if k != "header_sha256"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def rewrite_header(path, edit, fix_checksum=True):
    """Apply ``edit`` to the parsed header and write the archive back (valid ZIP CRCs)."""
    members = read_archive(path)
    header = json.loads(members["header.json"])
    edit(header)
    if fix_checksum:
        header["header_sha256"] = checksum(header)
    members["header.json"] = json.dumps(header).encode()
    write_archive(path, members)


@pytest.fixture
def saved_classifier(tmp_path):
    clf, X, y = make_model("multiclass")
    path = tmp_path / "clf.fbp"
    save(clf, path)
    return path, clf, X


# ---------------------------------------------------------------------------
# Exact round trips
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
@pytest.mark.parametrize("task", CLASSIFICATION + REGRESSION)
def test_round_trip_is_exact(task, solver, dtype, tmp_path):
    model, X, y = make_model(task, solver, dtype)
    loaded = round_trip(model, tmp_path)
    assert type(loaded) is type(model)
    assert_same_estimator(model, loaded)
    assert loaded.coefs_[0].dtype == dtype
    assert_array_equal(loaded.predict(X), model.predict(X))
    if task in CLASSIFICATION:
        assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
        assert loaded.score(X, y) == model.score(X, y)


def test_round_trip_early_stopping_and_feature_names(tmp_path):
    pd = pytest.importorskip("pandas")
    X, y = make_data("multiclass", n_samples=60)
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    clf = MLPClassifier((5,), early_stopping=True, max_iter=8, random_state=0).fit(frame, y)
    loaded = round_trip(clf, tmp_path)
    assert_same_estimator(clf, loaded)
    assert loaded.feature_names_in_.dtype == object
    assert isinstance(loaded._best_params, np.ndarray)
    assert loaded.validation_scores_ == clf.validation_scores_
    assert_array_equal(loaded.predict_proba(frame), clf.predict_proba(frame))


def test_round_trip_unfitted_and_unusual_values(tmp_path):
    rng = np.random.RandomState(7)
    rng.normal()  # a cached Gaussian is part of the state
    est = MLPRegressor(hidden_layer_sizes=[4, np.int64(3)], random_state=rng, n_iter_no_change=np.inf,
                       batch_size=np.int32(8), learning_rate_init=np.float32(0.01))
    est.custom_ = {
        0: 1.5, "a": (1, np.float32(2.5), np.bool_(True)), (1, "k"): [None, np.nan, -np.inf, -0.0],
        "arrays": [np.arange(6, dtype=np.int16).reshape(2, 3), np.asfortranarray(np.eye(3)),
                   np.array(["x", "yz"]), np.array([b"q"]), np.array([1 + 2j]),
                   np.array(["2020-01-01"], dtype="datetime64[D]"), np.zeros((0, 3))],
        "scalars": [np.str_("s"), np.uint8(255), np.complex128(1j), np.datetime64("2020-01-02")],
        "object": np.array([None, "a", 1, 2.5], dtype=object), "dtype": np.dtype("float32"),
        "big": 2**70,
    }
    loaded = round_trip(est, tmp_path)
    assert_same_estimator(est, loaded)
    assert loaded.custom_["arrays"][1].flags.f_contiguous
    assert loaded.get_params()["hidden_layer_sizes"] == [4, 3]
    # fitting the loaded copy consumes the same random numbers
    X, y = make_data("single")
    assert_array_equal(est.set_params(max_iter=3).fit(X, y).predict(X),
                       loaded.set_params(max_iter=3).fit(X, y).predict(X))


@pytest.mark.parametrize("cls", [MLPClassifier, MLPRegressor])
def test_round_trip_default_unfitted(cls, tmp_path):
    est = cls()
    loaded = round_trip(est, tmp_path)
    assert_same_estimator(est, loaded)
    assert "coefs_" not in vars(loaded)


@pytest.mark.parametrize(
    "layer_units, activation, out_activation, loss, bias, dtype",
    [
        ((3, 4, 2), "tanh", "softmax", "log_loss", True, np.float64),
        ((3, 4, 5, 1), ["relu", "logistic"], "identity", "squared_error", False, np.float32),
        ((2, 1), "relu", "exp", "poisson", True, np.float64),
    ],
)
def test_round_trip_network(layer_units, activation, out_activation, loss, bias, dtype, tmp_path):
    net = Network(layer_units, activation=activation, out_activation=out_activation, loss=loss,
                  bias=bias, dtype=dtype).init_weights(0)
    loaded = round_trip(net, tmp_path)
    assert_same(net, loaded)
    assert loaded.params.dtype == dtype
    assert np.shares_memory(loaded.coefs[0], loaded.params)
    X = np.random.RandomState(1).normal(size=(5, layer_units[0]))
    assert_array_equal(loaded.predict(X), net.predict(X))
    if not bias:
        assert not loaded.intercepts[0].any()


@pytest.mark.parametrize("task, params", [
    ("multioutput", {"loss": "huber", "huber_delta": 0.3, "activation": ("gelu", "silu")}),
    ("single", {"loss": "absolute_error", "activation": "leaky_relu", "solver": "sgd"}),
    ("multiclass", {"activation": ("softplus", "tanh"), "solver": "lbfgs"}),
], ids=["huber-gelu-silu", "absolute_error-leaky_relu", "classifier-softplus-tanh"])
def test_round_trip_of_new_activations_and_losses_is_exact(task, params, tmp_path):
    cls = MLPClassifier if task in CLASSIFICATION else MLPRegressor
    X, y = make_data(task)
    model = cls(**{"hidden_layer_sizes": (5, 3), "max_iter": 6, "random_state": 0, **params}).fit(X, y)
    loaded = round_trip(model, tmp_path)
    assert_same_estimator(model, loaded)
    assert loaded.get_params() == model.get_params()
    assert_array_equal(loaded.predict(X), model.predict(X))
    if params.get("solver", "adam") != "lbfgs":  # training goes on exactly
        assert_array_equal(loaded.partial_fit(X, y).predict(X), model.partial_fit(X, y).predict(X))


def test_round_trip_network_with_new_activations_and_huber(tmp_path):
    net = Network((3, 4, 5, 2), activation=["gelu", "leaky_relu"], loss="huber", huber_delta=0.25).init_weights(0)
    loaded = round_trip(net, tmp_path)
    assert_same(net, loaded)
    assert (loaded.huber_delta, loaded.kernel_codes) == (0.25, net.kernel_codes)
    X = np.random.RandomState(1).normal(size=(5, 3))
    assert_array_equal(loaded.predict(X), net.predict(X))
    Y = np.random.RandomState(2).normal(size=(5, 2))
    assert loaded.loss_and_gradient(X, Y)[0] == net.loss_and_gradient(X, Y)[0]


def test_a_network_file_names_huber_delta_only_for_the_huber_loss(tmp_path):
    """The files of other networks are those earlier versions wrote, and they load."""
    for loss, expected in [("squared_error", None), ("huber", 0.5)]:
        path = tmp_path / f"{loss}.fbp"
        save(Network((2, 3, 1), loss=loss, huber_delta=0.5), path)
        header = json.loads(zipfile.ZipFile(path).read("header.json"))
        assert header["params"].get("huber_delta") == expected
        assert load(path).huber_delta == (0.5 if loss == "huber" else 1.0)


def test_network_extra_attributes_round_trip(tmp_path):
    net = Network((2, 3, 1)).init_weights(0)
    net.note = {"epochs": 3, "losses": [0.5, np.float32(0.25)]}
    assert_same(net, round_trip(net, tmp_path))
    assert round_trip(net, tmp_path).note == net.note


# ---------------------------------------------------------------------------
# Training continues exactly
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize("task", ["multiclass", "multioutput"])
def test_partial_fit_continues_exactly(task, solver, dtype, tmp_path):
    params = {"learning_rate": "invscaling"} if solver == "sgd" else {}
    model, X, y = make_model(task, solver, dtype, **params)
    reference = copy.deepcopy(model)  # the un-saved copy
    loaded = round_trip(model, tmp_path)
    for _ in range(3):
        reference.partial_fit(X, y)
        loaded.partial_fit(X, y)
    assert_same_estimator(reference, loaded)
    assert loaded._optimizer.step_counter[0] == reference._optimizer.step_counter[0]


def test_warm_start_with_shared_random_state_continues_exactly(tmp_path):
    X, y = make_data("binary")
    model = MLPClassifier((4,), random_state=np.random.RandomState(3), warm_start=True,
                          max_iter=4).fit(X, y)
    assert model.random_state is model._random_state
    reference = copy.deepcopy(model)
    loaded = round_trip(model, tmp_path)
    # one RandomState object, as in the original
    assert loaded.random_state is loaded._random_state
    reference.fit(X, y)
    loaded.fit(X, y)
    assert_same_estimator(reference, loaded)


# ---------------------------------------------------------------------------
# Files written by earlier versions
# ---------------------------------------------------------------------------

MODEL_FILES_0_1_0 = Path(__file__).resolve().parent / "data" / "model-files-0.1.0"
# Exact predictions hold for one BLAS kernel: (OpenBLAS version, CPU kernel) ->
# the file of what fastbp 0.1.0 predicted under it (see that folder's README).
EXPECTED_0_1_0 = {
    ("0.3.30", "Haswell"): "expected-v0.1.0.npz",
    ("0.3.30", "SkylakeX"): "expected-v0.1.0-skylakex.npz",
}


def scipy_openblas_kernel():
    """(version, CPU kernel) of SciPy's OpenBLAS, which Numba's np.dot calls; None for others."""
    import scipy.linalg  # noqa: F401  (loads SciPy's BLAS, so threadpoolctl lists it)

    for info in threadpoolctl.threadpool_info():
        in_scipy = Path(info["filepath"]).parent.name == "scipy.libs"
        if info.get("internal_api") == "openblas" and in_scipy:
            return info.get("version"), info.get("architecture")
    return None


def data_of_0_1_0(key):
    """The data each 0.1.0 model file was trained on, as its README says."""
    if key == "reg":
        return load_diabetes(return_X_y=True)
    X, y = load_digits(return_X_y=True)
    X = X / 16
    return (X[:500].astype(np.float32), y[:500]) if key == "sgd" else (X, y)


def load_0_1_0(key):
    name = {"clf": "clf-adam", "reg": "reg-lbfgs", "sgd": "clf-sgd-f32"}[key]
    return load(MODEL_FILES_0_1_0 / f"{name}-v0.1.0.fbp")


@pytest.mark.parametrize("key", ["clf", "reg", "sgd"])
def test_model_files_of_0_1_0_predict_what_they_did(key):
    model = load_0_1_0(key)
    X, _ = data_of_0_1_0(key)
    predicted = model.predict(X) if key == "reg" else model.predict_proba(X)
    kernel = scipy_openblas_kernel()
    if kernel in EXPECTED_0_1_0:
        expected = np.load(MODEL_FILES_0_1_0 / EXPECTED_0_1_0[kernel])[key]
        assert predicted.dtype == expected.dtype
        assert_array_equal(predicted, expected, err_msg=f"BLAS kernel {kernel}")
    else:  # another BLAS kernel: equal to rounding (2 ulps measured on three kernels)
        expected = np.load(MODEL_FILES_0_1_0 / "expected-v0.1.0.npz")[key]
        assert predicted.dtype == expected.dtype
        assert_allclose(predicted, expected, rtol=1e-5 if key == "sgd" else 1e-12, atol=0,
                        err_msg=f"BLAS kernel {kernel}")


def test_model_file_of_0_1_0_goes_on_with_partial_fit():
    model = load_0_1_0("sgd")
    X, y = data_of_0_1_0("sgd")
    coefs = [c.copy() for c in model.coefs_]
    velocity = model._optimizer.state_a.copy()
    curve, t = list(model.loss_curve_), model.t_
    model.partial_fit(X, y)
    assert model.t_ == t + X.shape[0]
    assert model.loss_curve_[:-1] == curve
    # it goes on from the saved weights (a fresh network starts near log(10) = 2.30)
    assert curve[-1] - 0.05 < model.loss_curve_[-1] < curve[-1]
    assert all(c.dtype == np.float32 for c in model.coefs_ + model.intercepts_)
    assert not np.array_equal(model.coefs_[0], coefs[0])
    assert not np.array_equal(model._optimizer.state_a, velocity)
    assert np.isfinite(model._network.params).all()


@pytest.mark.parametrize("key", ["clf", "reg"])
def test_model_files_of_0_1_0_go_on_with_a_warm_started_fit(key):
    model = load_0_1_0(key)
    X, y = data_of_0_1_0(key)
    coefs = [c.copy() for c in model.coefs_]
    loss, curve = model.loss_, list(getattr(model, "loss_curve_", []))
    model.set_params(warm_start=True, max_iter=5)
    model.fit(X, y)
    assert not np.array_equal(model.coefs_[0], coefs[0])
    assert np.isfinite(model._network.params).all()
    if key == "clf":  # adam: five more epochs recorded, going down from where it stopped
        assert model.loss_curve_[:-5] == curve and len(model.loss_curve_) == len(curve) + 5
        assert model.loss_curve_[-5] < curve[-1]
    else:  # L-BFGS starts from the saved weights and lowers their loss
        assert model.loss_ < loss


def test_save_leaves_model_unchanged_and_is_deterministic(tmp_path):
    model, X, _ = make_model("multiclass")
    before = copy.deepcopy(model)
    network = model._network
    save(model, tmp_path / "a.fbp")
    save(model, tmp_path / "b.fbp")
    assert model._network is network
    assert_same_estimator(before, model)
    assert (tmp_path / "a.fbp").read_bytes() == (tmp_path / "b.fbp").read_bytes()


def test_failed_save_leaves_the_existing_file_as_it_was(tmp_path, monkeypatch):
    """A write that fails midway (a full disk) replaces nothing and leaves no stray file."""
    model, X, _ = make_model("multiclass")
    path = tmp_path / "model.fbp"
    save(model, path)
    before = path.read_bytes()
    import fastbp._io

    def disk_full(f, header_bytes, members):
        f.write(b"PK partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fastbp._io, "_write_zip", disk_full)
    with pytest.raises(OSError, match="No space left"):
        save(model, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.fbp"]


def test_saved_file_has_the_permissions_open_gives_and_a_link_is_followed(tmp_path):
    model, X, _ = make_model("binary")
    plain = tmp_path / "plain"
    plain.write_bytes(b"")
    save(model, tmp_path / "model.fbp")
    assert (tmp_path / "model.fbp").stat().st_mode == plain.stat().st_mode
    (tmp_path / "link.fbp").symlink_to(tmp_path / "model.fbp")
    save(model, tmp_path / "link.fbp")
    assert (tmp_path / "link.fbp").is_symlink()
    assert_array_equal(load(tmp_path / "link.fbp").predict(X), model.predict(X))


# ---------------------------------------------------------------------------
# The file
# ---------------------------------------------------------------------------


def test_file_layout_is_documented_format(saved_classifier):
    path, clf, _ = saved_classifier
    members = read_archive(path)
    header = json.loads(members["header.json"])
    assert header["format"] == "fastbp-model"
    assert header["format_version"] == FORMAT_VERSION == 1
    assert header["class"] == "fastbp.MLPClassifier"
    assert header["params"]["hidden_layer_sizes"] == {"type": "tuple", "items": [5, 3]}
    assert header["header_sha256"] == checksum(header)
    assert set(members) == {"header.json", *header["arrays"]}
    for name, entry in header["arrays"].items():
        array = np.load(io.BytesIO(members[name]), allow_pickle=False)
        assert array.dtype.str == entry["dtype"] and list(array.shape) == entry["shape"]
        assert hashlib.sha256(members[name]).hexdigest() == entry["sha256"]
    weights = header["attributes"]["coefs_"][0]["member"]
    assert_array_equal(np.load(io.BytesIO(members[weights])), clf.coefs_[0])


def test_load_from_file_objects_and_str_paths(saved_classifier):
    path, clf, X = saved_classifier
    with open(path, "rb") as f:
        assert_array_equal(load(f).predict_proba(X), clf.predict_proba(X))
    buffer = io.BytesIO()
    save(clf, buffer)
    buffer.seek(0)
    assert_array_equal(load(buffer).predict_proba(X), clf.predict_proba(X))
    assert_array_equal(load(str(path)).predict(X), clf.predict(X))


class OneWayStream:
    """A binary stream that can only be read forwards, in short reads, like a pipe."""

    def __init__(self, data, max_read=7):
        self._data, self._position, self._max_read = bytes(data), 0, max_read
        self.bytes_read = 0

    def read(self, size=-1):
        size = self._max_read if size is None or size < 0 else min(size, self._max_read)
        chunk = self._data[self._position:self._position + size]
        self._position += len(chunk)
        self.bytes_read += len(chunk)
        return chunk

    def seekable(self):
        return False

    def seek(self, *args):
        raise io.UnsupportedOperation("seek")

    def tell(self):
        raise io.UnsupportedOperation("tell")


class EndlessStream(OneWayStream):
    """A stream that never ends (``cat /dev/zero``); it has read() and nothing else."""

    seekable = seek = tell = None

    def read(self, size=-1):
        size = 4096 if size is None or size < 0 else size
        self.bytes_read += size
        return b"\0" * size


def fastbp_env():
    """The environment for a subprocess that imports the same fastbp as this test."""
    import fastbp

    root = str(Path(fastbp.__file__).resolve().parents[1])
    return dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))


def test_load_and_save_through_real_pipes(saved_classifier):
    """``cat model.fbp | python -c "fastbp.load(sys.stdin.buffer)"``, and save to a pipe."""
    path, clf, X = saved_classifier
    code = (
        "import sys, fastbp\n"
        "model = fastbp.load(sys.stdin.buffer)\n"
        "fastbp.save(model, sys.stdout.buffer)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], input=path.read_bytes(),
                            capture_output=True, env=fastbp_env(), timeout=300)
    assert result.returncode == 0, result.stderr.decode()
    # the child's stdout was a pipe too: the file it wrote there loads
    loaded = load(OneWayStream(result.stdout, max_read=4096))
    assert_same_estimator(clf, loaded)
    assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))


@pytest.mark.parametrize("max_read", [1, 7, 1 << 20])
def test_load_from_a_stream_that_cannot_seek(saved_classifier, max_read):
    path, clf, X = saved_classifier
    stream = OneWayStream(path.read_bytes(), max_read)
    assert_same_estimator(clf, load(stream))
    assert stream.bytes_read == path.stat().st_size


def test_a_stream_longer_than_the_limit_is_refused_without_reading_it_all(saved_classifier,
                                                                          monkeypatch):
    import fastbp._io

    path, clf, _ = saved_classifier
    size = path.stat().st_size
    monkeypatch.setattr(fastbp._io, "_MAX_STREAM_BYTES", size)
    assert_same_estimator(clf, load(OneWayStream(path.read_bytes(), max_read=1000)))
    monkeypatch.setattr(fastbp._io, "_MAX_STREAM_BYTES", size - 1)
    with pytest.raises(ModelFileError, match=f"cannot seek and holds more than {size - 1} bytes"):
        load(OneWayStream(path.read_bytes(), max_read=1000))
    endless = EndlessStream(b"")
    monkeypatch.setattr(fastbp._io, "_MAX_STREAM_BYTES", 10_000)
    with pytest.raises(ModelFileError, match="save it to a file and load the file"):
        load(endless)
    assert endless.bytes_read == 10_001


def test_a_text_stream_is_refused_by_name(saved_classifier):
    path, clf, _ = saved_classifier
    with open(path, encoding="latin-1") as text:
        with pytest.raises(TypeError, match="binary file object, got a text stream"):
            load(text)
    text = OneWayStream(b"")
    text.read = lambda size=-1: "PK"
    with pytest.raises(TypeError, match="reads binary streams, and this one gives str"):
        load(text)
    with pytest.raises(TypeError, match="binary file object, got a text stream"):
        save(clf, io.StringIO())


class StrPathLike:
    def __init__(self, path):
        self._path = path

    def __fspath__(self):
        return self._path


@pytest.mark.parametrize("kind", [str, Path, os.fsencode, StrPathLike,
                                  lambda p: StrPathLike(os.fsencode(p))])
def test_save_and_load_take_every_kind_of_path_open_takes(kind, saved_classifier, tmp_path):
    _, clf, X = saved_classifier
    path = kind(str(tmp_path / "model.fbp"))
    save(clf, path)
    save(clf, path)  # over an existing file
    assert_array_equal(load(path).predict_proba(X), clf.predict_proba(X))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clf.fbp", "model.fbp"]


def test_a_bytes_path_that_is_not_utf8_works_as_open_takes_it(saved_classifier, tmp_path):
    _, clf, X = saved_classifier
    path = os.fsencode(str(tmp_path)) + b"/model-\xff.fbp"
    save(clf, path)
    with open(path, "rb") as f:
        assert_array_equal(load(f).predict(X), clf.predict(X))
    assert_array_equal(load(path).predict(X), clf.predict(X))


@pytest.mark.parametrize("kind", [str, Path, os.fsencode])
def test_a_failed_save_names_the_users_path_not_the_temporary_file(kind, saved_classifier,
                                                                   tmp_path):
    _, clf, _ = saved_classifier
    missing = str(tmp_path / "no_such_dir" / "model.fbp")
    with pytest.raises(FileNotFoundError) as error:
        save(clf, kind(missing))
    assert error.value.filename == missing
    assert str(error.value) == f"[Errno 2] No such file or directory: {missing!r}"
    # over a directory: the file cannot replace it
    (tmp_path / "folder").mkdir()
    with pytest.raises(IsADirectoryError) as error:
        save(clf, kind(str(tmp_path / "folder")))
    assert error.value.filename == str(tmp_path / "folder")
    assert ".tmp" not in str(error.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clf.fbp", "folder"]
    assert list((tmp_path / "folder").iterdir()) == []


@pytest.mark.parametrize("target", [3, 2.5, None, ["model.fbp"], object()])
def test_save_and_load_refuse_what_is_neither_a_path_nor_a_file(target, saved_classifier,
                                                                tmp_path, monkeypatch):
    _, clf, _ = saved_classifier
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TypeError, match=r"fastbp.save takes a path \(str, bytes or os.PathLike\) "
                                        r"or a binary file object with a write\(\) method, got"):
        save(clf, target)
    with pytest.raises(TypeError, match=r"fastbp.load takes a path .* with a read\(\) method"):
        load(target)
    assert [p.name for p in tmp_path.iterdir()] == ["clf.fbp"]


def test_pickle_and_joblib_still_work(saved_classifier, tmp_path):
    path, clf, X = saved_classifier
    loaded = load(path)
    for model in (clf, loaded):
        pickled = pickle.loads(pickle.dumps(model))
        joblib.dump(model, tmp_path / "model.joblib")
        dumped = joblib.load(tmp_path / "model.joblib")
        for other in (pickled, dumped):
            assert_array_equal(other.predict_proba(X), clf.predict_proba(X))
            assert other._network.owns(other.coefs_, other.intercepts_)


def test_file_from_another_scikit_learn_warns_as_unpickling_does(saved_classifier):
    path, clf, X = saved_classifier

    def edit(header):
        header["attributes"]["_label_binarizer"]["attributes"]["_sklearn_version"] = "0.1"

    rewrite_header(path, edit)
    with pytest.warns(InconsistentVersionWarning):
        loaded = load(path)
    assert_array_equal(loaded.predict(X), clf.predict(X))


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_round_trip_of_the_training_options_continues_exactly(solver, tmp_path):
    X, y = make_data("multiclass", n_samples=80)
    settings = dict(hidden_layer_sizes=(6, 5), solver=solver, batch_size=20, random_state=0,
                    dropout=(0.25, np.float64(0.1)), max_grad_norm=0.5, learning_rate="cosine", max_iter=4,
                    warmup_fraction=0.3)
    model = MLPClassifier(**settings).partial_fit(X, y, classes=np.unique(y))
    loaded = round_trip(model, tmp_path)
    assert_same_estimator(model, loaded)
    assert loaded.get_params()["dropout"] == (0.25, 0.1)
    assert (loaded.max_grad_norm, loaded.learning_rate, loaded.warmup_fraction) == (0.5, "cosine", 0.3)
    for estimator in (model, loaded):  # the cosine step count and the dropout epochs go on
        estimator.partial_fit(X, y)
    assert_same_estimator(model, loaded)
    assert loaded._optimizer.step_counter[0] == 8


@pytest.mark.parametrize("key", ["clf", "reg", "sgd"])
def test_model_files_of_0_1_0_get_the_training_options_defaults(key):
    model = load_0_1_0(key)
    assert (model.dropout, model.max_grad_norm, model.warmup_fraction) == (0.0, None, 0.0)
    assert model.learning_rate in ("constant", "invscaling", "adaptive")


def test_parameters_missing_from_an_older_file_get_defaults(saved_classifier):
    path, clf, X = saved_classifier

    def edit(header):
        del header["params"]["max_fun"]
        header["params"]["from_the_future"] = 1

    rewrite_header(path, edit)
    with pytest.warns(UserWarning, match="from_the_future"):
        loaded = load(path)
    assert loaded.max_fun == 15000
    assert "from_the_future" not in vars(loaded)
    assert_array_equal(loaded.predict(X), clf.predict(X))


# ---------------------------------------------------------------------------
# Bad files
# ---------------------------------------------------------------------------


def test_compressed_member_is_refused_before_it_is_expanded(saved_classifier):
    """A deflated member could expand far beyond the file (1 MB -> 1 GiB); fastbp writes none."""
    path, clf, X = saved_classifier
    with zipfile.ZipFile(path) as archive:
        members = [(info.filename, archive.read(info)) for info in archive.infolist()]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            archive.writestr(name, data)
    with pytest.raises(ModelFileError, match="is compressed, and fastbp stores members uncompressed"):
        load(path)


def test_truncated_file(saved_classifier):
    path, _, _ = saved_classifier
    data = path.read_bytes()
    for size in (len(data) - 1, len(data) // 2, 100, 3, 0):
        path.write_bytes(data[:size])
        with pytest.raises(ModelFileError, match="not a ZIP archive, or the file is truncated"):
            load(path)


@pytest.mark.parametrize("content", [b"", b"hello", b"PK\x03\x04garbage", pickle.dumps({"a": 1})])
def test_not_a_zip(content, tmp_path):
    path = tmp_path / "model.fbp"
    path.write_bytes(content)
    with pytest.raises(ModelFileError, match="not a ZIP archive"):
        load(path)


def test_flipped_byte_inside_an_array_member(saved_classifier):
    path, clf, _ = saved_classifier
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("arrays/2.npy")
    # local file header: 30 bytes + name + extra, then the stored .npy bytes
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    data[start + info.compress_size - 3] ^= 0x01  # inside the last weight
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="'arrays/2.npy' is corrupt"):
        load(path)


def test_array_member_repacked_with_other_values(saved_classifier):
    path, clf, _ = saved_classifier
    members = read_archive(path)
    buffer = io.BytesIO()
    np.save(buffer, clf.coefs_[0] + 1e-12)
    members["arrays/2.npy"] = buffer.getvalue()  # a valid ZIP with valid CRCs
    write_archive(path, members)
    with pytest.raises(ModelFileError, match="checksum mismatch for member 'arrays/2.npy'"):
        load(path)


def test_header_number_edited_without_fixing_the_checksum(saved_classifier):
    path, _, _ = saved_classifier
    members = read_archive(path)
    text = members["header.json"].decode()
    assert '"alpha": 0.0001' in text
    members["header.json"] = text.replace('"alpha": 0.0001', '"alpha": 0.0002').encode()
    write_archive(path, members)
    with pytest.raises(ModelFileError, match="header checksum mismatch"):
        load(path)


@pytest.mark.parametrize(
    "version, message",
    [(2, "format_version 2, newer than the 1 this fastbp reads"), (0, "unsupported format_version 0"),
     ("1", "unsupported format_version '1'"), (True, "unsupported format_version True"),
     (None, "unsupported format_version None")],
)
def test_wrong_format_version(saved_classifier, version, message):
    path, _, _ = saved_classifier
    rewrite_header(path, lambda header: header.update(format_version=version))
    with pytest.raises(ModelFileError, match=message):
        load(path)


def test_unknown_format_name(saved_classifier):
    path, _, _ = saved_classifier
    rewrite_header(path, lambda header: header.update(format="someone-elses-model"))
    with pytest.raises(ModelFileError, match="Not a fastbp model file: the header's format"):
        load(path)


@pytest.mark.parametrize("class_name", ["os.system", "builtins.eval", "numpy.random.RandomState", 3])
def test_unknown_top_level_class(saved_classifier, class_name):
    path, _, _ = saved_classifier
    rewrite_header(path, lambda header: header.update({"class": class_name}))
    with pytest.raises(ModelFileError, match="unknown class"):
        load(path)


def test_unknown_nested_class(saved_classifier):
    path, _, _ = saved_classifier

    def edit(header):
        header["attributes"]["_label_binarizer"]["class"] = "subprocess.Popen"

    rewrite_header(path, edit)
    message = "unknown class 'subprocess.Popen' at MLPClassifier._label_binarizer"
    with pytest.raises(ModelFileError, match=message):
        load(path)


@pytest.mark.parametrize("text", [b"{not json", b"\xff\xfe", b'{"format": NaN}', b"[1, 2]"])
def test_bad_json_header(saved_classifier, text):
    path, _, _ = saved_classifier
    members = read_archive(path)
    members["header.json"] = text
    write_archive(path, members)
    with pytest.raises(ModelFileError, match="header.json is not (valid JSON|a JSON object)"):
        load(path)


@pytest.mark.parametrize("member", ["header.json", "arrays/0.npy", "arrays/5.npy"])
def test_missing_member(saved_classifier, member):
    path, _, _ = saved_classifier
    members = read_archive(path)
    del members[member]
    write_archive(path, members)
    with pytest.raises(ModelFileError, match=f"missing member '{member}'"):
        load(path)


def test_unexpected_member(saved_classifier):
    path, _, _ = saved_classifier
    members = read_archive(path)
    members["payload.pkl"] = pickle.dumps(1)
    write_archive(path, members)
    with pytest.raises(ModelFileError, match=r"unexpected members \['payload.pkl'\]"):
        load(path)


@pytest.mark.parametrize(
    "node, message",
    [
        ({"type": "pickle", "data": "gASVAAAAAAAAAAB9lC4="}, "node of type 'pickle'"),
        ({"type": "float", "value": "1e3"}, "float '1e3'"),
        ({"type": "scalar", "dtype": "|O", "value": 1}, "unsupported dtype '|O'"),
        ({"type": "scalar", "dtype": "<i1", "value": 1000}, "scalar 1000 of dtype int8"),
        ({"type": "ndarray", "member": "arrays/99.npy"}, "does not list"),
        ({"type": "ref", "id": 42}, "undefined object 42"),
        ({"type": "dict", "items": [[[1], 2]]}, "unhashable dict key"),
        ({"type": "object_array", "shape": [1], "items": [[1, 2]]}, "object array item of type list"),
    ],
)
def test_unsupported_values(saved_classifier, node, message):
    path, _, _ = saved_classifier
    rewrite_header(path, lambda header: header["attributes"].update(extra_=node))
    with pytest.raises(ModelFileError, match=message):
        load(path)


def test_inconsistent_state_is_rejected(saved_classifier):
    path, _, _ = saved_classifier

    def edit(header):  # two intercept vectors swapped: they no longer fit the layers
        intercepts = header["attributes"]["intercepts_"]
        intercepts[0], intercepts[1] = intercepts[1], intercepts[0]

    rewrite_header(path, edit)
    with pytest.raises(ModelFileError, match="invalid state for fastbp.MLPClassifier"):
        load(path)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda h: h["attributes"].update(n_features_in_=1000), "n_features_in_ is 1000 but coefs_"),
        (lambda h: h["attributes"].update(n_outputs_=1), "n_outputs_ is 1 but coefs_"),
        (lambda h: h["attributes"]["_optimizer"]["attributes"].update(state_a=[]), "optimizer state"),
        (lambda h: h["attributes"]["_optimizer"]["attributes"].update(
            state_b=h["attributes"]["_optimizer"]["attributes"]["step_counter"]), "optimizer state"),
        (lambda h: [h["attributes"].pop(k) for k in ("coefs_", "intercepts_")], "no weights"),
    ],
)
def test_states_the_kernels_cannot_use_safely_are_rejected(saved_classifier, edit, message):
    # sizes the kernels rely on without checking (they would read or write out of bounds)
    path, _, _ = saved_classifier
    rewrite_header(path, edit)
    with pytest.raises(ModelFileError, match=f"inconsistent fastbp.MLPClassifier state: .*{message}"):
        load(path)


def test_inconsistent_model_is_not_saved(tmp_path):
    model, _, _ = make_model("binary", "sgd")
    model._optimizer.state_a = model._optimizer.state_a[:-1]
    with pytest.raises(ValueError, match=r"optimizer state .* does not fit the 47 parameters"):
        save(model, tmp_path / "model.fbp")
    assert not (tmp_path / "model.fbp").exists()


def test_pickled_object_array_member_is_never_unpickled(saved_classifier):
    path, _, _ = saved_classifier
    members = read_archive(path)
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    members["arrays/0.npy"] = buffer.getvalue()

    def edit(header):
        header["arrays"]["arrays/0.npy"].update(
            dtype="|O", sha256=hashlib.sha256(members["arrays/0.npy"]).hexdigest())

    header = json.loads(members["header.json"])
    edit(header)
    header["header_sha256"] = checksum(header)
    members["header.json"] = json.dumps(header).encode()
    write_archive(path, members)
    with pytest.raises(ModelFileError, match="'arrays/0.npy' cannot be read"):
        load(path)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda h: h["params"].update(layer_units=[2, 4, 1]), "needs 'params' of shape"),
        (lambda h: h["params"].update(dtype="object"), "dtype must be"),
        # the layer table the kernels index with is always rebuilt, never read
        (lambda h: h["attributes"].update(layers=[[2, 3, 0, 9, 0]]), "no attribute among"),
    ],
)
def test_bad_network_state(edit, message, tmp_path):
    path = tmp_path / "net.fbp"
    save(Network((2, 3, 1), dtype=np.float32), path)
    rewrite_header(path, edit)
    with pytest.raises(ModelFileError, match=f"invalid state for fastbp.Network at Network .*{message}"):
        load(path)


# ---------------------------------------------------------------------------
# Unsupported values at save time
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, where",
    [
        (object(), r"MLPClassifier\.extra_:"),
        ([1, {"k": lambda: 0}], r"MLPClassifier\.extra_\[1\]\['k'\]"),
        (np.array([{}], dtype=object), r"MLPClassifier\.extra_: object arrays may only hold"),
        (np.zeros(2, dtype=[("a", "f8")]), r"MLPClassifier\.extra_: arrays of dtype"),
        (np.ma.masked_array([1.0]), r"MLPClassifier\.extra_: values of type numpy.ma"),
        (SkMLPClassifier(), r"MLPClassifier\.extra_: values of type sklearn"),
    ],
)
def test_unsupported_value_raises_type_error_naming_it(value, where, tmp_path):
    clf = MLPClassifier()
    clf.extra_ = value
    path = tmp_path / "model.fbp"
    with pytest.raises(TypeError, match=where):
        save(clf, path)
    assert not path.exists()


def test_cycles_are_refused(tmp_path):
    clf = MLPClassifier()
    clf.extra_ = []
    clf.extra_.append(clf.extra_)
    with pytest.raises(TypeError, match="nested deeper"):
        save(clf, tmp_path / "model.fbp")


@pytest.mark.parametrize(
    "model", [LabelBinarizer(), SkMLPClassifier(), "model", type("Sub", (MLPClassifier,), {})()]
)
def test_only_fastbp_models_are_saved(model, tmp_path):
    with pytest.raises(TypeError, match="fastbp.save saves"):
        save(model, tmp_path / "model.fbp")

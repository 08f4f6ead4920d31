"""Safe model files: save and load fastbp models as arrays plus a JSON header, never pickle.

:func:`save` writes a fitted or unfitted :class:`~fastbp.MLPClassifier`,
:class:`~fastbp.MLPRegressor` or :class:`~fastbp.Network` to a file that
:func:`load` reads back exactly (bit-identical weights and predictions, the
same dtypes, the optimizer state so ``partial_fit`` continues as it would
have) using only :mod:`json` and ``np.load(..., allow_pickle=False)``: loading
a file never executes code from it and never imports a name it contains.
Classes are looked up in a fixed allow-list.

File format "fastbp-model", format_version 1
--------------------------------------------
A ZIP archive (members stored uncompressed, with fixed timestamps, so the same
model always gives the same bytes) of exactly these members:

``header.json``
    A UTF-8 JSON object (strict JSON: no NaN or Infinity literals) with

    - ``"format"``: ``"fastbp-model"``;
    - ``"format_version"``: ``1``, an integer raised on every incompatible
      change; a reader rejects versions it does not know;
    - ``"fastbp_version"``: the version of fastbp that wrote the file;
    - ``"created_with"``: versions of Python, NumPy and scikit-learn
      (informational only);
    - ``"class"``: the model's class, ``"fastbp.MLPClassifier"``,
      ``"fastbp.MLPRegressor"`` or ``"fastbp.Network"``;
    - ``"params"``: the constructor parameters, ``{name: value}``;
    - ``"attributes"``: every other attribute of the model's state (for an
      estimator, what it gives to pickle: fitted attributes and private
      state such as the optimizer's buffers), ``{name: value}``;
    - ``"arrays"``: ``{member: {"dtype": str, "shape": [int, ...],
      "sha256": hex}}`` for every array member, with the SHA-256 of the
      member's bytes;
    - ``"header_sha256"``: SHA-256 (hex) of the canonical form of the header
      without this field: ``json.dumps(body, sort_keys=True,
      separators=(",", ":"), ensure_ascii=True, allow_nan=False)`` encoded as
      ASCII.

``arrays/<n>.npy``
    One NumPy ``.npy`` file per array (never of object dtype).

Values in ``params`` and ``attributes``: JSON ``null``, booleans, integers,
finite numbers with a fraction or exponent, strings and arrays are Python
``None``, ``bool``, ``int``, ``float``, ``str`` and ``list``. Every JSON
object is a node tagged by its ``"type"``::

    {"type": "float", "value": "nan" | "inf" | "-inf"}
    {"type": "tuple", "items": [value, ...]}
    {"type": "dict", "items": [[key, value], ...]}   keys: any hashable value
    {"type": "scalar", "dtype": "<f4", "value": v}   NumPy bool/int/float/str scalar
    {"type": "scalar", "member": "arrays/3.npy"}     other NumPy scalar, as a 0-d array
    {"type": "ndarray", "member": "arrays/0.npy"}    bool, numeric, str, bytes or
                                                     datetime array; nodes naming the
                                                     same member are one array object
    {"type": "object_array", "shape": [...], "items": [...]}
                                                     object array of None, bool, int,
                                                     float and str (C order), e.g.
                                                     feature_names_in_
    {"type": "dtype", "dtype": "<f8"}                a NumPy dtype
    {"type": "object", "class": name, "id": n,       an instance of a known class
     "params": {...}, "attributes": {...}}
    {"type": "ref", "id": n}                         the same instance as the object
                                                     node with that id

Known classes: the three model classes above (an estimator is rebuilt from
its state as unpickling does, so its ``coefs_`` / ``intercepts_`` become views
of a new network's flat buffer; a Network is rebuilt by its constructor and
its ``params`` buffer filled), ``sklearn.preprocessing.LabelBinarizer``
(through its own ``__getstate__`` / ``__setstate__``, which warns when the
scikit-learn version differs, as unpickling does), the optimizer state
``fastbp.StochasticOptimizer`` and ``numpy.random.RandomState`` (through
``get_state`` / ``set_state``). Saving any other type raises a ``TypeError``
naming the attribute. Callbacks set with ``set_callbacks`` are run-time hooks,
not model state, and are not saved. Sizes the compiled kernels rely on without
checking are verified on both sides: an estimator whose weights do not fit
``n_features_in_`` / ``n_outputs_``, or whose optimizer buffers do not have
one entry per parameter, is neither saved (``ValueError``) nor loaded, and a
Network's layer table is always rebuilt from its constructor arguments.

The checksums detect corruption and edits made without recomputing them;
they are not a signature: anyone can write a valid file, so a file is only as
trustworthy as its source -- but even a crafted file can only produce values
of the types above, never run code.
"""

import contextlib
import hashlib
import inspect
import io
import json
import math
import os
import platform
import re
import secrets
import warnings
import zipfile
import zlib

import numpy as np
import sklearn
from sklearn.preprocessing import LabelBinarizer

from ._multilayer_perceptron import MLPClassifier, MLPRegressor
from ._network import Network
from ._solvers import StochasticOptimizer

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "ModelFileError", "load", "save"]

FORMAT_NAME = "fastbp-model"
FORMAT_VERSION = 1
HEADER_MEMBER = "header.json"

_ARRAY_MEMBER = re.compile(r"arrays/(0|[1-9][0-9]*)\.npy")
_NPY_MAGIC = b"\x93NUMPY"
_SHA256 = re.compile(r"[0-9a-f]{64}")
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
# Array dtype kinds stored as .npy members: bool, integers, floats, complex,
# str, bytes, datetime, timedelta -- never object ("O") or structured ("V").
_ARRAY_KINDS = frozenset("biufcUSMm")
# Deeper nesting than this is refused on both sides (it also stops cycles).
_MAX_DEPTH = 64
# A stream that cannot seek (a pipe) is read into memory, in chunks, up to this size.
_MAX_STREAM_BYTES = 1 << 30
_STREAM_CHUNK = 1 << 20
# Attributes that are run-time hooks rather than model state.
_TRANSIENT_ATTRIBUTES = frozenset(
    {"_skl_callbacks", "_skl_callbacks_to_teardown", "_callback_fit_ctx"}
)


class ModelFileError(ValueError):
    """A file that is not a valid fastbp model file: corrupt, truncated, tampered or unsupported."""


# ---------------------------------------------------------------------------
# Known classes: how each is split into (params, attributes) and rebuilt


def _state_problem(state):
    """Why a fastbp estimator's state could make the kernels index out of bounds, or None.

    The kernels do not check sizes: the weights must fit ``n_features_in_`` /
    ``n_outputs_`` and the optimizer's flat buffers must have one entry per
    parameter (scikit-learn's own checks cover the rest).
    """
    coefs, intercepts = state.get("coefs_"), state.get("intercepts_")
    if coefs is None:
        if state.get("_optimizer") is not None:
            return "it has optimizer state (_optimizer) but no weights"
        return None
    try:
        units = [coefs[0].shape[0]] + [c.shape[1] for c in coefs]
        n_params = sum(c.size for c in coefs) + sum(b.size for b in intercepts)
    except (TypeError, IndexError, AttributeError):
        return None  # malformed weights are refused when the network is rebuilt
    n_features, n_outputs = state.get("n_features_in_"), state.get("n_outputs_")
    if n_features is not None and n_features != units[0]:
        return f"n_features_in_ is {n_features} but coefs_[0] has {units[0]} rows"
    if n_outputs is not None and n_outputs != units[-1]:
        return f"n_outputs_ is {n_outputs} but coefs_[-1] has {units[-1]} columns"
    optimizer = state.get("_optimizer")
    if optimizer is not None:
        size_b = n_params if getattr(optimizer, "solver", None) == "adam" else 0
        shapes = [(getattr(optimizer, name, None), shape) for name, shape in
                  [("state_a", (n_params,)), ("state_b", (size_b,)), ("step_counter", (1,))]]
        if not all(isinstance(a, np.ndarray) and a.shape == shape for a, shape in shapes):
            return (
                f"the optimizer state (_optimizer) does not fit the {n_params} parameters of "
                "coefs_ / intercepts_"
            )
    return None


class _EstimatorCodec:
    """A scikit-learn estimator: constructor params and the rest of its pickle state."""

    def __init__(self, name, cls, check_state=False):
        self.name, self.cls = name, cls
        self.check_state = check_state

    def dump(self, obj):
        state = obj.__getstate__()
        names = set(obj._get_param_names())
        params = {k: v for k, v in state.items() if k in names}
        attributes = {
            k: v for k, v in state.items() if k not in names and k not in _TRANSIENT_ATTRIBUTES
        }
        return params, attributes

    def load(self, params, attributes):
        names = self.cls._get_param_names()
        unknown = sorted(set(params) - set(names))
        if unknown:
            warnings.warn(
                f"The model file sets {self.name} parameters unknown to this version of "
                f"the class: {unknown}; they are ignored.",
                UserWarning,
            )
        signature = inspect.signature(self.cls.__init__)
        state = {name: value for name, value in params.items() if name in names}
        for name in names:
            # a file from before a parameter existed gets the parameter's default
            if name not in state:
                state[name] = signature.parameters[name].default
        state.update(attributes)
        if self.check_state:
            problem = _state_problem(state)
            if problem:
                raise ModelFileError(
                    f"Invalid fastbp model file: inconsistent {self.name} state: {problem}."
                )
        obj = self.cls.__new__(self.cls)
        obj.__setstate__(state)
        return obj


class _DictCodec:
    """A plain class whose ``__dict__`` is its whole state."""

    def __init__(self, name, cls):
        self.name, self.cls = name, cls

    def dump(self, obj):
        return None, dict(obj.__dict__)

    def load(self, params, attributes):
        obj = self.cls.__new__(self.cls)
        obj.__dict__.update(attributes)
        return obj


class _RandomStateCodec:
    name, cls = "numpy.random.RandomState", np.random.RandomState

    def dump(self, obj):
        return None, {"state": obj.get_state(legacy=True)}

    def load(self, params, attributes):
        if set(attributes) != {"state"}:
            raise ValueError(
                f"a RandomState needs exactly the attribute 'state', got {sorted(attributes)}"
            )
        rng = np.random.RandomState(0)
        rng.set_state(attributes["state"])
        return rng


class _NetworkCodec:
    """A Network: constructor arguments plus the flat ``params`` buffer (views are rebuilt)."""

    name, cls = "fastbp.Network", Network
    _DERIVED = frozenset(
        {"layer_units", "activations", "loss", "huber_delta", "bias", "dtype", "layers", "n_params",
         "kernel_codes", "slope_units", "coefs", "intercepts", "_views", "version"}
    )

    def dump(self, obj):
        params = {
            "layer_units": list(obj.layer_units),
            "activation": list(obj.activations[:-1]),
            "out_activation": obj.activations[-1],
            "loss": obj.loss,
            "bias": obj.bias,
            "dtype": obj.dtype.name,
        }
        if obj.loss == "huber":  # the files of other networks stay those of earlier versions
            params["huber_delta"] = obj.huber_delta
        attributes = {k: v for k, v in obj.__dict__.items() if k not in self._DERIVED}
        return params, attributes

    def load(self, params, attributes):
        expected = {"layer_units", "activation", "out_activation", "loss", "bias", "dtype"}
        if set(params) - {"huber_delta"} != expected or set(attributes) & self._DERIVED:
            raise ValueError(
                f"a Network needs the params {sorted(expected)} (and huber_delta for the huber loss) "
                f"and no attribute among {sorted(self._DERIVED)}, got {sorted(params)} and "
                f"{sorted(attributes)}"
            )
        dtype = params["dtype"]
        if dtype not in ("float32", "float64"):
            raise ValueError(f"a Network's dtype must be 'float32' or 'float64', got {dtype!r}")
        network = Network(
            params["layer_units"],
            activation=params["activation"],
            out_activation=params["out_activation"],
            loss=params["loss"],
            bias=params["bias"],
            dtype=np.dtype(dtype),
            huber_delta=params.get("huber_delta", 1.0),
        )
        attributes = dict(attributes)
        flat = attributes.pop("params", None)
        if (
            type(flat) is not np.ndarray
            or flat.dtype != network.dtype
            or flat.shape != network.params.shape
        ):
            raise ValueError(
                f"a Network of layer units {network.layer_units} needs 'params' of shape "
                f"{network.params.shape} and dtype {network.dtype}, got "
                f"{getattr(flat, 'shape', type(flat).__name__)} {getattr(flat, 'dtype', '')}"
            )
        network.params[:] = flat
        network.__dict__.update(attributes)
        return network


_MODEL_CODECS = [
    _EstimatorCodec("fastbp.MLPClassifier", MLPClassifier, check_state=True),
    _EstimatorCodec("fastbp.MLPRegressor", MLPRegressor, check_state=True),
    _NetworkCodec(),
]
_CODECS = _MODEL_CODECS + [
    _EstimatorCodec("sklearn.preprocessing.LabelBinarizer", LabelBinarizer),
    _DictCodec("fastbp.StochasticOptimizer", StochasticOptimizer),
    _RandomStateCodec(),
]
_CODEC_BY_TYPE = {codec.cls: codec for codec in _CODECS}
_CODEC_BY_NAME = {codec.name: codec for codec in _CODECS}
_MODEL_CLASSES = frozenset(codec.name for codec in _MODEL_CODECS)


# ---------------------------------------------------------------------------
# Encoding: Python values -> JSON nodes plus .npy members


def _plain_dtype(dtype):
    """Whether arrays of ``dtype`` are stored as .npy members (no object, no structure)."""
    return dtype.kind in _ARRAY_KINDS and dtype.fields is None and dtype.subdtype is None


def _non_finite(value):
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")


class _Encoder:
    def __init__(self):
        self.members = {}  # member name -> .npy bytes
        self.table = {}  # member name -> {"dtype", "shape", "sha256"}
        self._array_members = {}  # id(array) -> member name
        self._object_ids = {}  # id(instance) -> node id
        self._in_progress = set()
        self._keep = []  # keeps encoded objects alive so their id() stays unique

    def object(self, obj, codec, path, depth=0):
        key = id(obj)
        if key in self._object_ids:
            if key in self._in_progress:
                raise TypeError(
                    f"Cannot save {path}: it refers back to an object that contains it."
                )
            return {"type": "ref", "id": self._object_ids[key]}
        node_id = len(self._object_ids)
        self._object_ids[key] = node_id
        self._keep.append(obj)
        self._in_progress.add(key)
        params, attributes = codec.dump(obj)
        node = {"type": "object", "class": codec.name, "id": node_id}
        if params is not None:
            node["params"] = self.mapping(params, path, depth + 1)
        node["attributes"] = self.mapping(attributes, path, depth + 1)
        self._in_progress.discard(key)
        return node

    def mapping(self, values, path, depth):
        out = {}
        for name, value in values.items():
            if type(name) is not str:
                raise TypeError(f"Cannot save {path}: attribute name {name!r} is not a str.")
            out[name] = self.value(value, f"{path}.{name}", depth)
        return out

    def value(self, value, path, depth=0):
        if depth > _MAX_DEPTH:
            raise TypeError(
                f"Cannot save {path}: values nested deeper than {_MAX_DEPTH} levels (or cyclic)."
            )
        kind = type(value)
        if value is None or kind in (bool, int, str):
            return value
        if kind is float:
            return value if math.isfinite(value) else {"type": "float", "value": _non_finite(value)}
        if kind is list:
            return [self.value(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value)]
        if kind is tuple:
            items = [self.value(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value)]
            return {"type": "tuple", "items": items}
        if kind is dict:
            items = [
                [
                    self.value(k, f"{path} (key {k!r})", depth + 1),
                    self.value(v, f"{path}[{k!r}]", depth + 1),
                ]
                for k, v in value.items()
            ]
            return {"type": "dict", "items": items}
        if isinstance(value, np.generic):
            return self.scalar(value, path)
        if kind is np.ndarray:
            return self.array(value, path)
        if isinstance(value, np.dtype):
            if not _plain_dtype(value):
                raise TypeError(f"Cannot save {path}: dtype {value} is not supported.")
            return {"type": "dtype", "dtype": value.str}
        codec = _CODEC_BY_TYPE.get(kind)
        if codec is not None:
            return self.object(value, codec, path, depth)
        raise TypeError(
            f"Cannot save {path}: values of type {kind.__module__}.{kind.__qualname__} are not "
            "supported by the fastbp model format (supported: None, bool, int, float, str, list, "
            "tuple, dict, NumPy scalars and non-object arrays, LabelBinarizer, RandomState, "
            "Network, StochasticOptimizer)."
        )

    def scalar(self, value, path):
        dtype = value.dtype
        if dtype.kind == "b":
            return {"type": "scalar", "dtype": dtype.str, "value": bool(value)}
        if dtype.kind in "iu":
            return {"type": "scalar", "dtype": dtype.str, "value": int(value)}
        if dtype.kind == "f" and dtype.itemsize <= 8:
            return {"type": "scalar", "dtype": dtype.str, "value": self.value(float(value), path)}
        if dtype.kind == "U":
            return {"type": "scalar", "dtype": dtype.str, "value": str(value)}
        zero_d = np.asarray(value)
        self._keep.append(zero_d)
        return {"type": "scalar", "member": self.array(zero_d, path)["member"]}

    def array(self, array, path):
        if id(array) in self._array_members:
            return {"type": "ndarray", "member": self._array_members[id(array)]}
        dtype = array.dtype
        if dtype.kind == "O":
            items = [self._object_item(v, path) for v in array.reshape(-1)]
            return {"type": "object_array", "shape": list(array.shape), "items": items}
        if not _plain_dtype(dtype):
            raise TypeError(f"Cannot save {path}: arrays of dtype {dtype} are not supported.")
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        data = buffer.getvalue()
        name = f"arrays/{len(self.members)}.npy"
        self.members[name] = data
        self.table[name] = {
            "dtype": dtype.str,
            "shape": list(array.shape),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        self._array_members[id(array)] = name
        self._keep.append(array)
        return {"type": "ndarray", "member": name}

    def _object_item(self, value, path):
        if value is None or type(value) in (bool, int, str, float):
            return self.value(value, path)
        raise TypeError(
            f"Cannot save {path}: object arrays may only hold None, bool, int, float and str, "
            f"not {type(value).__module__}.{type(value).__qualname__}."
        )


def _canonical(body):
    text = json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )
    return text.encode("ascii")


def _model_codec(model):
    codec = _CODEC_BY_TYPE.get(type(model))
    if codec is None or codec.name not in _MODEL_CLASSES:
        raise TypeError(
            f"fastbp.save saves fastbp.MLPClassifier, fastbp.MLPRegressor and fastbp.Network "
            f"instances (not subclasses), got {type(model).__module__}.{type(model).__qualname__}."
        )
    return codec


def _path_name(path):
    """``path`` as a str if it is a path (str, bytes or os.PathLike, as open() takes), else None."""
    if isinstance(path, (str, bytes, os.PathLike)):
        return os.fsdecode(path)
    return None


def _check_file_object(f, function, method):
    """Raise TypeError unless ``f`` is a binary file object with the method ``method``."""
    if isinstance(f, io.TextIOBase):
        raise TypeError(
            f"fastbp.{function} needs a binary file object, got a text stream "
            f"({type(f).__name__}): open the file in binary mode"
            + (" (for standard input, pass sys.stdin.buffer)." if method == "read" else ".")
        )
    if not callable(getattr(f, method, None)):
        raise TypeError(
            f"fastbp.{function} takes a path (str, bytes or os.PathLike) or a binary file "
            f"object with a {method}() method, got {type(f).__module__}.{type(f).__qualname__}."
        )


def save(model, path):
    """Save a fastbp model to a file that :func:`load` reads without pickle.

    The file is a ZIP archive of a JSON header and one ``.npy`` member per
    array (format "fastbp-model", described in the module docstring).

    Parameters
    ----------
    model : MLPClassifier, MLPRegressor or Network
        The model, fitted or not. The model is not modified.
    path : str, bytes, path-like or binary file object
        Where to write. An existing file is replaced once the new one is
        complete (written beside it, then moved over it): a failed write
        leaves it as it was.

    Raises
    ------
    TypeError
        If ``model`` is of another class, or one of its attributes holds a
        value the format does not support (the message names it), or if
        ``path`` is neither a path nor a binary file object.
    OSError
        If the file cannot be written (the message names ``path``).
    ValueError
        If the model's state is inconsistent in a way that would make the
        kernels index out of bounds (weights that do not fit
        ``n_features_in_``, optimizer buffers of the wrong size); such a file
        would be refused by :func:`load`.
    """
    from . import __version__

    codec = _model_codec(model)
    name = _path_name(path)
    if name is None:
        _check_file_object(path, "save", "write")
    if getattr(codec, "check_state", False):
        problem = _state_problem(model.__getstate__())
        if problem:
            raise ValueError(f"Cannot save this {type(model).__name__}: {problem}.")
    encoder = _Encoder()
    node = encoder.object(model, codec, type(model).__name__)
    header = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "fastbp_version": __version__,
        "created_with": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "scikit-learn": sklearn.__version__,
        },
        "class": node["class"],
        "params": node.get("params", {}),
        "attributes": node["attributes"],
        "arrays": encoder.table,
    }
    header["header_sha256"] = hashlib.sha256(_canonical(header)).hexdigest()
    header_bytes = json.dumps(header, indent=1, ensure_ascii=True, allow_nan=False).encode("ascii")
    # everything is encoded before the file is opened, and a path gets a
    # complete file or none: a failed write leaves an existing file as it was
    if name is not None:
        _write_replacing(name, header_bytes, encoder.members)
    else:
        _write_zip(path, header_bytes, encoder.members)


def _write_replacing(path, header_bytes, members):
    """Write the archive to a new file beside ``path`` (through links), then move it over ``path``.

    An error opening or replacing the file names ``path``, as ``open(path,
    "wb")`` would, not the temporary file.
    """
    target = os.path.realpath(path)
    directory, name = os.path.split(target)
    temporary = os.path.join(directory, f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        # mode 0o666 as open() would give, less the umask
        fd = os.open(
            temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666
        )
    except OSError as exc:
        raise type(exc)(exc.errno, exc.strerror, path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            _write_zip(f, header_bytes, members)
        try:
            os.replace(temporary, target)
        except OSError as exc:
            raise type(exc)(exc.errno, exc.strerror, path) from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        raise


def _write_zip(f, header_bytes, members):
    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in [(HEADER_MEMBER, header_bytes), *members.items()]:
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)


# ---------------------------------------------------------------------------
# Decoding: checks first, then JSON nodes -> Python values


def _read_member(archive, name):
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise ModelFileError(f"Invalid fastbp model file: missing member {name!r}.") from None
    if info.compress_type != zipfile.ZIP_STORED:
        # a stored member is no larger than the file; a compressed one may expand without bound
        raise ModelFileError(
            f"Invalid fastbp model file: member {name!r} is compressed, and fastbp stores "
            "members uncompressed."
        )
    try:
        return archive.read(info)
    except (
        zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError
    ) as exc:
        raise ModelFileError(
            f"Invalid fastbp model file: member {name!r} is corrupt or truncated ({exc})."
        ) from exc


def _reject_constant(name):
    raise ValueError(f"non-standard JSON constant {name}")


def _parse_header(data):
    try:
        header = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ModelFileError(
            f"Invalid fastbp model file: {HEADER_MEMBER} is not valid JSON ({exc})."
        ) from exc
    if not isinstance(header, dict):
        raise ModelFileError(f"Invalid fastbp model file: {HEADER_MEMBER} is not a JSON object.")
    if header.get("format") != FORMAT_NAME:
        raise ModelFileError(
            f"Not a fastbp model file: the header's format is {header.get('format')!r}, "
            f"expected {FORMAT_NAME!r}."
        )
    version = header.get("format_version")
    if type(version) is not int or version < 1:
        raise ModelFileError(f"Invalid fastbp model file: unsupported format_version {version!r}.")
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"The model file has format_version {version}, newer than the {FORMAT_VERSION} "
            f"this fastbp reads (it was written by fastbp {header.get('fastbp_version')!r}); "
            "upgrade fastbp to load it."
        )
    if version != FORMAT_VERSION:
        raise ModelFileError(f"Invalid fastbp model file: unsupported format_version {version!r}.")
    stored = header.pop("header_sha256", None)
    try:
        actual = hashlib.sha256(_canonical(header)).hexdigest()
    except (ValueError, TypeError) as exc:
        raise ModelFileError(
            f"Invalid fastbp model file: header cannot be canonicalised ({exc})."
        ) from exc
    if stored != actual:
        raise ModelFileError(
            "Invalid fastbp model file: header checksum mismatch (the header was modified or "
            "corrupted after it was written)."
        )
    for field, kind in [("fastbp_version", str), ("params", dict),
                        ("attributes", dict), ("arrays", dict)]:
        if not isinstance(header.get(field), kind):
            raise ModelFileError(
                f"Invalid fastbp model file: header field {field!r} is missing or not a "
                f"{kind.__name__}."
            )
    return header


def _check_array_entry(name, entry):
    if not _ARRAY_MEMBER.fullmatch(name):
        raise ModelFileError(f"Invalid fastbp model file: bad array member name {name!r}.")
    ok = (
        isinstance(entry, dict)
        and isinstance(entry.get("sha256"), str)
        and _SHA256.fullmatch(entry["sha256"])
        and isinstance(entry.get("dtype"), str)
        and isinstance(entry.get("shape"), list)
        and all(type(n) is int and n >= 0 for n in entry["shape"])
    )
    if not ok:
        raise ModelFileError(f"Invalid fastbp model file: bad entry for array member {name!r}.")


def _load_array(archive, name, entry):
    data = _read_member(archive, name)
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise ModelFileError(
            f"Invalid fastbp model file: checksum mismatch for member {name!r} (the file was "
            "modified or corrupted after it was written)."
        )
    if not data.startswith(_NPY_MAGIC):
        raise ModelFileError(f"Invalid fastbp model file: member {name!r} is not a .npy file.")
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as exc:  # any failure to parse is a bad member
        raise ModelFileError(
            f"Invalid fastbp model file: member {name!r} cannot be read ({exc})."
        ) from exc
    if array.dtype.str != entry["dtype"] or list(array.shape) != entry["shape"]:
        raise ModelFileError(
            f"Invalid fastbp model file: member {name!r} holds {array.dtype.str} "
            f"{list(array.shape)}, the header says {entry['dtype']} {entry['shape']}."
        )
    if not _plain_dtype(array.dtype):
        raise ModelFileError(
            f"Invalid fastbp model file: member {name!r} has unsupported dtype {array.dtype}."
        )
    if not array.flags.writeable:
        array = array.copy()
    return array


def _safe_dtype(text, path):
    if not isinstance(text, str):
        raise ModelFileError(f"Invalid fastbp model file: unsupported dtype {text!r} at {path}.")
    try:
        dtype = np.dtype(text)
    except (TypeError, ValueError, SyntaxError) as exc:
        raise ModelFileError(
            f"Invalid fastbp model file: unsupported dtype {text!r} at {path}."
        ) from exc
    if not _plain_dtype(dtype):
        raise ModelFileError(f"Invalid fastbp model file: unsupported dtype {text!r} at {path}.")
    return dtype


class _Decoder:
    def __init__(self, arrays):
        self.arrays = arrays
        self.definitions = {}  # node id -> (object node, path)
        self.built = {}
        self._building = set()

    def _bad(self, path, what):
        return ModelFileError(f"Invalid fastbp model file: unsupported value at {path}: {what}.")

    def index(self, node, path, depth=0):
        """Find every object node with an id, so a ref may come before its definition."""
        if depth > _MAX_DEPTH:
            raise self._bad(path, f"nested deeper than {_MAX_DEPTH} levels")
        if isinstance(node, list):
            for i, item in enumerate(node):
                self.index(item, f"{path}[{i}]", depth + 1)
        elif isinstance(node, dict):
            if node.get("type") == "object" and "id" in node:
                node_id = node["id"]
                if type(node_id) is not int:
                    raise self._bad(path, f"object id {node_id!r}")
                if node_id in self.definitions:
                    raise self._bad(path, f"object id {node_id} defined twice")
                self.definitions[node_id] = (node, path)
            for key, item in node.items():
                self.index(item, f"{path}.{key}", depth + 1)

    def value(self, node, path):
        if node is None or type(node) in (bool, int, float, str):
            return node
        if isinstance(node, list):
            return [self.value(item, f"{path}[{i}]") for i, item in enumerate(node)]
        if not isinstance(node, dict):
            raise self._bad(path, repr(node))
        kind = node.get("type")
        if kind == "float":
            text = node.get("value")
            if text not in ("nan", "inf", "-inf"):
                raise self._bad(path, f"float {text!r}")
            return float(text)
        if kind == "tuple":
            items = self._list(node, "items", path)
            return tuple(self.value(item, f"{path}[{i}]") for i, item in enumerate(items))
        if kind == "dict":
            out = {}
            for i, pair in enumerate(self._list(node, "items", path)):
                if not isinstance(pair, list) or len(pair) != 2:
                    raise self._bad(path, "dict item that is not a [key, value] pair")
                key = self.value(pair[0], f"{path} (key {i})")
                try:
                    out[key] = self.value(pair[1], f"{path}[{key!r}]")
                except TypeError:
                    raise self._bad(path, f"unhashable dict key {key!r}") from None
            return out
        if kind == "scalar":
            return self.scalar(node, path)
        if kind == "ndarray":
            return self.array(node.get("member"), path)
        if kind == "object_array":
            return self.object_array(node, path)
        if kind == "dtype":
            return _safe_dtype(node.get("dtype"), path)
        if kind == "object":
            node_id = node.get("id")
            if node_id in self.built:
                return self.built[node_id]
            return self.build(node, path)
        if kind == "ref":
            node_id = node.get("id")
            if type(node_id) is not int or node_id not in self.definitions:
                raise self._bad(path, f"reference to an undefined object {node_id!r}")
            if node_id in self.built:
                return self.built[node_id]
            return self.build(*self.definitions[node_id])
        raise self._bad(path, f"node of type {kind!r}")

    def _list(self, node, field, path):
        items = node.get(field)
        if not isinstance(items, list):
            raise self._bad(path, f"{node.get('type')} without a list {field!r}")
        return items

    def array(self, member, path):
        if member not in self.arrays:
            raise self._bad(
                path, f"reference to an array member {member!r} the header does not list"
            )
        return self.arrays[member]

    def scalar(self, node, path):
        if "member" in node:
            array = self.array(node["member"], path)
            if array.ndim != 0:
                raise self._bad(path, "scalar member that is not a 0-d array")
            return array[()]
        dtype = _safe_dtype(node.get("dtype"), path)
        value = self.value(node.get("value"), path)
        expected = {"b": bool, "i": int, "u": int, "f": float, "U": str}.get(dtype.kind)
        if expected is None or type(value) is not expected:
            raise self._bad(path, f"scalar of dtype {dtype} with value {value!r}")
        try:
            if dtype.kind in "iu" and not np.iinfo(dtype).min <= value <= np.iinfo(dtype).max:
                # NumPy 1.x wraps such a value around with only a warning
                raise OverflowError(f"Python integer {value} out of bounds for {dtype}")
            return dtype.type(value)
        except (OverflowError, ValueError) as exc:
            raise self._bad(path, f"scalar {value!r} of dtype {dtype} ({exc})") from exc

    def object_array(self, node, path):
        shape = node.get("shape")
        if not isinstance(shape, list) or not all(type(n) is int and n >= 0 for n in shape):
            raise self._bad(path, f"object array of shape {shape!r}")
        items = [self.value(item, path) for item in self._list(node, "items", path)]
        if len(items) != math.prod(shape):
            raise self._bad(path, f"object array of shape {shape} with {len(items)} items")
        for item in items:
            if not (item is None or type(item) in (bool, int, float, str)):
                raise self._bad(path, f"object array item of type {type(item).__name__}")
        array = np.empty(len(items), dtype=object)
        for i, item in enumerate(items):
            array[i] = item
        return array.reshape(shape)

    def build(self, node, path):
        name = node.get("class")
        codec = _CODEC_BY_NAME.get(name) if isinstance(name, str) else None
        if codec is None:
            raise ModelFileError(
                f"Invalid fastbp model file: unknown class {name!r} at {path}; known classes are "
                f"{sorted(_CODEC_BY_NAME)}."
            )
        node_id = node.get("id")
        if node_id in self._building:
            raise self._bad(path, "object that contains itself")
        self._building.add(node_id)
        params = self.mapping(node.get("params", {}), f"{path}.params")
        attributes = self.mapping(node.get("attributes"), path)
        try:
            obj = codec.load(params, attributes)
        except ModelFileError:
            raise
        except Exception as exc:  # the codecs' own checks: a state they cannot hold
            raise ModelFileError(
                f"Invalid fastbp model file: invalid state for {name} at {path} ({exc})."
            ) from exc
        self._building.discard(node_id)
        if node_id is not None:
            self.built[node_id] = obj
        return obj

    def mapping(self, node, path):
        if not isinstance(node, dict):
            raise self._bad(path, "attributes that are not a JSON object")
        return {name: self.value(item, f"{path}.{name}") for name, item in node.items()}


def load(path):
    """Load a model saved by :func:`save`, without pickle and without running code from the file.

    Parameters
    ----------
    path : str, bytes, path-like or binary file object
        The model file. A stream that cannot seek (a pipe such as
        ``sys.stdin.buffer``) is read into memory first, up to 1 GiB.

    Returns
    -------
    model : MLPClassifier, MLPRegressor or Network
        The model, exactly as saved: same parameters, attributes, dtypes and
        optimizer state; an estimator's ``coefs_`` / ``intercepts_`` are views
        of its network's flat buffer.

    Raises
    ------
    ModelFileError
        (a ``ValueError``) if the file is not a ZIP archive or is truncated,
        lacks a member, has a header that is not valid JSON, is not of format
        "fastbp-model", has an unknown or newer ``format_version``, fails a
        checksum (modified or corrupted), names an unknown class or holds an
        unsupported value, or if a stream that cannot seek holds more than
        1 GiB (save it to a file and load the file).
    TypeError
        If ``path`` is neither a path nor a binary file object.
    """
    name = _path_name(path)
    if name is not None:
        with open(name, "rb") as f:
            return _load(f)
    _check_file_object(path, "load", "read")
    if not _seekable(path):
        path = _read_stream(path)
    return _load(path)


def _seekable(f):
    """Whether zipfile can seek in the binary file object ``f``."""
    seekable = getattr(f, "seekable", None)
    if seekable is None:
        return callable(getattr(f, "seek", None)) and callable(getattr(f, "tell", None))
    return bool(seekable())


def _read_stream(f):
    """The bytes of a stream that cannot seek, as a BytesIO; refused beyond _MAX_STREAM_BYTES."""
    data = io.BytesIO()
    while True:
        # at most one byte past the limit is ever read
        chunk = f.read(min(_STREAM_CHUNK, _MAX_STREAM_BYTES + 1 - data.tell()))
        if not chunk:
            break
        if isinstance(chunk, str):
            raise TypeError(
                "fastbp.load reads binary streams, and this one gives str: open it in binary "
                "mode (for standard input, pass sys.stdin.buffer)."
            )
        data.write(chunk)
        if data.tell() > _MAX_STREAM_BYTES:
            raise ModelFileError(
                f"The stream cannot seek and holds more than {_MAX_STREAM_BYTES} bytes, the "
                "most fastbp.load reads into memory from such a stream: save it to a file "
                "and load the file."
            )
    data.seek(0)
    return data


def _load(f):
    try:
        archive = zipfile.ZipFile(f)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError) as exc:
        raise ModelFileError(
            f"Not a fastbp model file: not a ZIP archive, or the file is truncated ({exc})."
        ) from exc
    with archive:
        names = archive.namelist()
        if len(set(names)) != len(names):
            raise ModelFileError("Invalid fastbp model file: the archive has duplicate members.")
        header = _parse_header(_read_member(archive, HEADER_MEMBER))
        class_name = header.get("class")
        if not isinstance(class_name, str) or class_name not in _MODEL_CLASSES:
            raise ModelFileError(
                f"Invalid fastbp model file: unknown class {class_name!r}; a model file holds "
                f"one of {sorted(_MODEL_CLASSES)}."
            )
        table = header["arrays"]
        for name, entry in table.items():
            _check_array_entry(name, entry)
        unexpected = sorted(set(names) - set(table) - {HEADER_MEMBER})
        if unexpected:
            raise ModelFileError(f"Invalid fastbp model file: unexpected members {unexpected}.")
        arrays = {name: _load_array(archive, name, entry) for name, entry in table.items()}
    decoder = _Decoder(arrays)
    codec = _CODEC_BY_NAME[class_name]
    top = {
        "type": "object",
        "class": class_name,
        "params": header["params"],
        "attributes": header["attributes"],
    }
    decoder.index(top, codec.cls.__name__)
    return decoder.build(top, codec.cls.__name__)

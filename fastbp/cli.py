"""The ``fastbp`` command: train, predict and evaluate from the shell.

    fastbp train [DATA] [--target COL] [--task auto] [--sep SEP] [--config FILE]
                 [--<parameter> VALUE ...] [--model-out PATH | --no-model-out]
                 [--metrics-out PATH] [--plot-out PATH.png]
    fastbp predict MODEL DATA --out PATH.csv [--proba] [--sep SEP]
    fastbp evaluate MODEL DATA [--target COL] [--sep SEP] [--metrics-out PATH]

Also ``python -m fastbp.cli``. DATA is a CSV file (header row required),
a Parquet file (needs pyarrow) or an ``.npz`` file holding arrays ``X`` and
``y``; the format is chosen by the extension (and the file's first bytes when
the extension is unknown). A CSV file's separator (comma, semicolon, tab or
``|``) is detected from its first lines unless ``--sep`` gives it. Without
DATA, ``train`` fits scikit-learn's digits (pixels divided by 16), the
README's main job.

``train DATA`` writes the fitted model to ``model.fbp`` beside DATA,
replacing that file if it exists, unless ``--model-out PATH`` names another
file or ``--no-model-out`` asks for none; on the bundled digits it writes a
model only with ``--model-out``.

Every parameter of scikit-learn's ``MLPClassifier`` / ``MLPRegressor`` is a
flag of ``train`` (generated from the estimators' ``get_params()`` and
``_parameter_constraints``), a ``--param NAME=VALUE`` or a key of a JSON/TOML
config file. Precedence, lowest first: the estimator's defaults (except
``random_state``, whose CLI default is 0 so runs are reproducible), the config
file, ``--param`` values, the parameter flags.

Exit codes: 0 success; 1 unexpected error (message only; ``--debug`` shows
the traceback); 2 usage error (bad option, parameter name or value); 3 a data
or config file is missing, unreadable or in an unknown format, or an output
file cannot be written; 4 the data are unusable (missing target or feature
columns, non-numeric or missing values); 5 the model file is missing,
corrupt, of another format version or not a fastbp estimator.
"""

import argparse
import contextlib
import difflib
import importlib.util
import inspect
import io
import json
import math
import os
import re
import sys
import time
import traceback
import warnings
from numbers import Integral
from pathlib import Path

import numpy as np

EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_DATA = 4
EXIT_MODEL = 5

PROG = "fastbp"
CLI_DEFAULT_RANDOM_STATE = 0
MAX_CLASSES_INFERRED = 20
BUNDLED_NAME = "digits (bundled with scikit-learn; pixels / 16)"

__all__ = ["main"]


class CLIError(Exception):
    """A failure with a message for the user and the exit code that names its kind."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def _say(message):
    print(f"{PROG}: {message}", file=sys.stderr)


# ----------------------------------------------------------------------
# Estimator parameters as flags


_FAIL = object()
_NONE_WORDS = {"none", "null"}
_TRUE_WORDS = {"true", "yes", "on", "1"}
_FALSE_WORDS = {"false", "no", "off", "0"}


def _parse_number(text):
    """An int for a whole-number literal, a float for another number (inf too), else _FAIL."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return _FAIL


def parse_value(text):
    """The value a command-line string stands for.

    'none' / 'null' is None; a number is an int or a float; a JSON object or
    list is read as JSON (lists become tuples); a comma-separated list,
    with or without parentheses, is a tuple of such values; anything else
    is the string itself. Whether the value suits its parameter is the
    estimator's to say (:func:`fastbp._multilayer_perceptron.check_parameters`).
    """
    word = text.strip()
    if word.lower() in _NONE_WORDS:
        return None
    if word[:1] in "{[":
        try:
            value = json.loads(word)
        except ValueError:
            pass
        else:
            return tuple(value) if isinstance(value, list) else value
    number = _parse_number(word)
    if number is not _FAIL:
        return number
    inner = word[1:-1] if word[:1] == "(" and word[-1:] == ")" else word
    if "," in inner or inner is not word:
        return tuple(parse_value(item) for item in inner.split(",") if item.strip())
    return word


class ParamSpec:
    """One estimator parameter: its defaults (per task), its type line and help from the docstring."""

    def __init__(self, name):
        self.name = name
        self.defaults = {}  # task -> default value
        self.type_line = ""
        self.doc = ""

    @property
    def tasks(self):
        return set(self.defaults)

    @property
    def default(self):
        return next(iter(self.defaults.values()))

    @property
    def flag(self):
        return "--" + self.name.replace("_", "-")

    def is_boolean(self):
        return isinstance(self.default, bool)

    def parse(self, text):
        """The value a command-line string stands for (see :func:`parse_value`)."""
        if self.is_boolean():
            word = text.strip().lower()
            if word in _TRUE_WORDS | _FALSE_WORDS:
                return word in _TRUE_WORDS
            raise ValueError(f"invalid value {text!r} for {self.name}: expected true or false")
        return self._shaped(parse_value(text))

    def coerce(self, value):
        """A value from a JSON/TOML config: a string as on the command line, anything else shaped.

        A list becomes a tuple and, where the default is a tuple, one value a
        one-element tuple; true/false is refused where the default is not a
        boolean (scikit-learn would take it for 1 or 0).
        """
        return self.parse(value) if isinstance(value, str) else self._shaped(value)

    def _shaped(self, value):
        if isinstance(value, bool) and not self.is_boolean():
            raise ValueError(f"{self.name} takes {self.type_line or 'a value'}, not {str(value).lower()}")
        if isinstance(value, list):
            value = tuple(value)
        if isinstance(self.default, tuple) and not isinstance(value, (tuple, type(None))):
            value = (value,)
        return value

    def help(self):
        text = self.doc or self.name
        if self.type_line:
            text += f" [{self.type_line}]"
        if self.name == "random_state":
            text += f" (CLI default: {CLI_DEFAULT_RANDOM_STATE}; 'none' for scikit-learn's None)"
        if len(self.tasks) == 1:
            text += f" [{next(iter(self.tasks))} only]"
        return text.replace("%", "%%")


def _estimator_classes():
    from fastbp import MLPClassifier, MLPRegressor

    return {"classification": MLPClassifier, "regression": MLPRegressor}


def parameter_docs(cls):
    """``{name: (type line, first sentence)}`` from the Parameters section of ``cls``'s numpydoc docstring.

    fastbp's own docstrings follow numpydoc: a line ``name : type`` at the
    section's indentation, then the description indented below it, up to
    the next section's underlined title.
    """
    lines = (inspect.getdoc(cls) or "").splitlines()
    docs, name, type_line, description = {}, None, "", []
    in_section = False
    for line, underline in zip(lines, lines[1:] + [""]):
        if underline and set(underline) == {"-"} and len(underline) == len(line):
            if name:
                docs[name] = (type_line, description)
            in_section, name = line == "Parameters", None
            continue
        if not in_section or set(line) == {"-"}:
            continue
        if line and not line[0].isspace() and " : " in line:
            if name:
                docs[name] = (type_line, description)
            name, _, type_line = line.partition(" : ")
            description = []
        elif name and line.strip():
            description.append(line.strip())
    if name and in_section:
        docs[name] = (type_line, description)
    return {k: (kind, _first_sentence(" ".join(words))) for k, (kind, words) in docs.items()}


def _first_sentence(text):
    end = text.find(". ")
    return (text if end < 0 else text[: end + 1]).replace("``", "'")


def _param_specs():
    """Every parameter of the classifier and the regressor, in signature order."""
    specs = {}
    for task, cls in _estimator_classes().items():
        docs = parameter_docs(cls)
        params = cls().get_params(deep=False)
        for name in inspect.signature(cls).parameters:
            spec = specs.setdefault(name, ParamSpec(name))
            spec.defaults[task] = params[name]
            spec.type_line, spec.doc = docs.get(name, (spec.type_line, spec.doc))
    return specs


class _ParamType:
    """argparse ``type=`` for one parameter (its name shows in argparse's error)."""

    def __init__(self, spec):
        self.spec = spec
        self.__name__ = spec.name

    def __call__(self, text):
        try:
            return self.spec.parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None


# ----------------------------------------------------------------------
# Parser


def _fraction(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {value}")
    return value


def _separator(text):
    """``--sep``: one character; ``\\t`` (backslash, t) and ``tab`` mean a tab."""
    sep = "\t" if text in ("\\t", "tab") else text
    if len(sep) != 1 or sep in "\"\r\n":
        raise argparse.ArgumentTypeError(f"must be one character other than a quote or a line "
                                         f"break (\\t or tab for a tab), got {text!r}")
    return sep


SEP_HELP = ("CSV field separator, one character (\\t or tab for a tab; default: detected "
            "from the file's first lines among , ; tab |)")


def build_parser(specs=None):
    """The argument parser; ``specs`` (from :func:`_param_specs`) makes the train flags."""
    if specs is None:
        specs = _param_specs()
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the traceback of unexpected errors")

    parser = argparse.ArgumentParser(
        prog=PROG, parents=[common], allow_abbrev=False,
        description="Train, apply and score fastbp multilayer perceptrons (Numba-accelerated "
                    "drop-ins for scikit-learn's MLPClassifier / MLPRegressor).",
        epilog="exit codes: 0 ok; 1 unexpected error; 2 usage error; 3 data/config file missing, "
               "unreadable or unknown format, or output not writable; 4 unusable data (missing "
               "target/feature columns, non-numeric or missing values); 5 model file missing, "
               "corrupt or of another version.",
    )
    sub = parser.add_subparsers(dest="command", metavar="{train,predict,evaluate}")
    sub.required = True

    train = sub.add_parser(
        "train", parents=[common], allow_abbrev=False,
        help="fit a model on DATA (or on the bundled digits) and write model, metrics and plot",
        description="Fit an MLPClassifier or MLPRegressor on DATA, hold out --test-size of the rows "
                    "for scoring, and write the model (fastbp.save; by default model.fbp beside "
                    "DATA), and on request a metrics JSON and a learning-curve PNG. Without DATA, "
                    "fits scikit-learn's digits (pixels / 16) and writes a model only with "
                    "--model-out.",
        epilog="auto task: classification when the target is not numeric (strings, booleans, "
               f"categories) or all its values are whole numbers with at most {MAX_CLASSES_INFERRED} "
               "distinct ones; regression otherwise. Parameter precedence, lowest first: estimator "
               f"defaults (random_state: {CLI_DEFAULT_RANDOM_STATE}), --config, --param, parameter "
               "flags. The progress bar reads the estimator's own per-epoch verbose lines (verbose "
               "is switched on for the fit and restored before saving), so it does not change the "
               "trained model.",
    )
    train.add_argument("data", nargs="?", metavar="DATA",
                       help="CSV, Parquet or .npz (arrays X and y); default: the bundled digits")
    train.add_argument("--target", metavar="COL",
                       help="target column (CSV/Parquet; default: the last column) or array "
                            "name (.npz; default: y)")
    train.add_argument("--task", choices=["auto", "classification", "regression"], default="auto",
                       help="estimator to fit (default: auto, see below)")
    train.add_argument("--sep", type=_separator, metavar="SEP", help=SEP_HELP)
    train.add_argument("--config", metavar="FILE", help="JSON or TOML file of estimator parameters")
    train.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                       help="set an estimator parameter (repeatable)")
    model_out = train.add_mutually_exclusive_group()
    model_out.add_argument("--model-out", metavar="PATH",
                           help="write the fitted model here (fastbp.save; default: model.fbp beside "
                                "DATA, replaced if it exists; none for the bundled digits)")
    model_out.add_argument("--no-model-out", action="store_true",
                           help="write no model file")
    train.add_argument("--metrics-out", metavar="PATH", help="write the metrics JSON here")
    train.add_argument("--plot-out", metavar="PATH.png",
                       help="write the learning curve here (needs matplotlib)")
    train.add_argument("--test-size", type=_fraction, default=0.25, metavar="F",
                       help="fraction of rows held out for the test scores, 0 for none (default: 0.25)")
    train.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                       help="per-epoch progress bar on stderr (default: when stderr is a terminal)")
    group = train.add_argument_group(
        "estimator parameters",
        "scikit-learn's MLPClassifier / MLPRegressor parameters; also --param NAME=VALUE or a "
        "--config key. Booleans are --name / --no-name; 'none' gives None.",
    )
    taken = {a.dest for a in train._actions}
    for spec in specs.values():
        dest = "param__" + spec.name
        if spec.name in taken or dest in taken:
            continue
        if spec.is_boolean():
            group.add_argument(spec.flag, dest=dest, action=argparse.BooleanOptionalAction,
                               default=argparse.SUPPRESS, help=spec.help())
        else:
            group.add_argument(spec.flag, dest=dest, type=_ParamType(spec), metavar="VALUE",
                               default=argparse.SUPPRESS, help=spec.help())
    train.set_defaults(func=_cmd_train, specs=specs)

    predict = sub.add_parser(
        "predict", parents=[common], allow_abbrev=False,
        help="write a model's predictions for DATA to a CSV",
        description="Predict DATA with a saved model and write one row per sample: column "
                    "'prediction' (or prediction_0, prediction_1, ... for several outputs) and, "
                    "with --proba, one column proba_<class> per class. Feature columns are picked "
                    "by the names the model was trained with; other columns are ignored.",
    )
    predict.add_argument("model", metavar="MODEL", help="model file written by fastbp train / fastbp.save")
    predict.add_argument("data", metavar="DATA", help="CSV, Parquet or .npz (array X)")
    predict.add_argument("--out", required=True, metavar="PATH.csv", help="predictions CSV to write")
    predict.add_argument("--proba", action="store_true", help="add class probabilities (classifiers)")
    predict.add_argument("--sep", type=_separator, metavar="SEP", help=SEP_HELP)
    predict.set_defaults(func=_cmd_predict)

    evaluate = sub.add_parser(
        "evaluate", parents=[common], allow_abbrev=False,
        help="score a model on labelled DATA",
        description="Score a saved model on DATA: accuracy and log-loss (classifier) or R^2 and "
                    "mean squared error (regressor).",
    )
    evaluate.add_argument("model", metavar="MODEL", help="model file written by fastbp train / fastbp.save")
    evaluate.add_argument("data", metavar="DATA", help="CSV, Parquet or .npz (arrays X and y)")
    evaluate.add_argument("--target", metavar="COL",
                          help="target column (default: the one column that is not a feature of "
                               "the model, else the last) or .npz array name (default: y)")
    evaluate.add_argument("--sep", type=_separator, metavar="SEP", help=SEP_HELP)
    evaluate.add_argument("--metrics-out", metavar="PATH", help="write the scores as JSON here")
    evaluate.set_defaults(func=_cmd_evaluate)
    return parser


# ----------------------------------------------------------------------
# Reading data


class Dataset:
    """Features, target and provenance of one data file."""

    def __init__(self, X, y, *, source, fmt, target=None, feature_names=None):
        self.X = X
        self.y = y
        self.source = source
        self.fmt = fmt
        self.target = target
        self.feature_names = feature_names

    @property
    def n_samples(self):
        return self.X.shape[0]

    @property
    def n_features(self):
        return self.X.shape[1]


_COMPRESSION = {".gz", ".bz2", ".zip", ".xz", ".zst"}


def _detect_format(path):
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSION and len(suffixes) > 1 and suffixes[-2] in (".csv", ".tsv"):
        return suffixes[-2].lstrip(".")
    last = suffixes[-1] if suffixes else ""
    if last == ".npz":
        return "npz"
    if last in (".parquet", ".pq", ".parq"):
        return "parquet"
    if last in (".csv", ".tsv"):
        return last.lstrip(".")
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic == b"PK\x03\x04":
        return "npz"
    if magic == b"PAR1":
        return "parquet"
    return "csv"


def _open_checks(path_text, what="data file"):
    path = Path(path_text)
    if not path.exists():
        raise CLIError(EXIT_INPUT, f"{what} not found: {path_text}")
    if path.is_dir():
        raise CLIError(EXIT_INPUT, f"{what} is a directory, not a file: {path_text}")
    return path


def csv_float_options():
    """Keyword arguments for ``pandas.read_csv`` that parse every float to the nearest double.

    pandas before 3.0 does so only with ``float_precision="round_trip"``
    (its default parser is off by an ulp for about a third of 17-digit
    values); pandas 3.0 always does and deprecates the option.
    """
    import pandas as pd

    return {"float_precision": "round_trip"} if int(pd.__version__.split(".")[0]) < 3 else {}


SEPARATORS = (",", ";", "\t", "|")
SNIFF_LINES = 20


def detect_separator(path, fmt):
    """The separator of a CSV file, from its first lines; the format's default when unclear.

    A candidate fits when it splits the header and every sampled row into the
    same number of fields (quotes respected); of those, the one giving the
    most fields (more than one) wins, the format's default first on a tie.
    The header has no decimal commas, so a semicolon-separated file with
    decimal commas still gets ``;``.
    """
    import csv

    import pandas as pd

    default = "\t" if fmt == "tsv" else ","
    try:
        # one field per line: the raw lines, decompressed and decoded as the real read will
        lines = pd.read_csv(path, sep="\x1f", header=None, nrows=SNIFF_LINES, dtype=str,
                            quoting=csv.QUOTE_NONE, na_filter=False)[0].tolist()
    except (ValueError, OSError):  # unreadable here too: the real read says why
        return default
    best, best_fields = default, 1
    for sep in sorted(SEPARATORS, key=lambda c: c != default):
        counts = {len(row) for row in csv.reader(lines, delimiter=sep)}
        if len(counts) == 1 and (fields := counts.pop()) > best_fields:
            best, best_fields = sep, fields
    return best


def _read_frame(path, fmt, sep=None):
    import pandas as pd

    if fmt == "parquet":
        if not any(importlib.util.find_spec(m) for m in ("pyarrow", "fastparquet")):
            raise CLIError(EXIT_INPUT, f"cannot read {path}: reading Parquet needs pyarrow "
                                       "(pip install pyarrow), which is not installed")
        try:
            df = pd.read_parquet(path)
        except Exception as exc:  # the engines raise many types for a bad file
            raise CLIError(EXIT_INPUT, f"cannot read {path} as Parquet: {exc}") from exc
    else:
        try:
            sep = ("\t" if fmt == "tsv" else ",") if sep is None else sep
            df = pd.read_csv(path, sep=sep, **csv_float_options())
        except pd.errors.EmptyDataError as exc:
            raise CLIError(EXIT_INPUT, f"cannot read {path} as CSV: the file is empty") from exc
        except UnicodeDecodeError as exc:
            raise CLIError(EXIT_INPUT, f"cannot read {path} as CSV: not UTF-8 text ({exc.reason} "
                                       f"at byte {exc.start})") from exc
        except (pd.errors.ParserError, ValueError, OSError) as exc:
            raise CLIError(EXIT_INPUT, f"cannot read {path} as CSV: {str(exc).strip()}") from exc
    if df.shape[0] == 0:
        raise CLIError(EXIT_INPUT, f"{path} has no data rows")
    df.columns = [str(c) for c in df.columns]
    return df


def _read_npz(path):
    import zipfile

    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise CLIError(EXIT_INPUT, f"cannot read {path} as .npz: {exc}") from exc


def _check_numeric_frame(df, path):
    import pandas as pd

    bad = []
    for column in df.columns:
        series = df[column]
        if not pd.api.types.is_numeric_dtype(series.dtype):
            converted = pd.to_numeric(series, errors="coerce")
            offending = series[converted.isna() & series.notna()]
            example = f" (e.g. {offending.iloc[0]!r})" if len(offending) else ""
            bad.append(f"{column!r}{example}")
    if bad:
        raise CLIError(EXIT_DATA, f"non-numeric feature column{'s' if len(bad) > 1 else ''} in {path}: "
                                  f"{', '.join(bad)}; fastbp needs numbers: encode or drop "
                                  f"{'them' if len(bad) > 1 else 'it'}")
    values = df.to_numpy(dtype=np.float64)
    bad_rows = ~np.isfinite(values)
    if bad_rows.any():
        counts = bad_rows.sum(axis=0)
        described = [f"{c!r} ({n} row{'s' if n > 1 else ''})" for c, n in zip(df.columns, counts) if n]
        raise CLIError(EXIT_DATA, f"missing or infinite values in feature columns of {path}: "
                                  f"{', '.join(described)}")


def _check_numeric_array(X, name, path):
    if X.ndim != 2:
        raise CLIError(EXIT_DATA, f"array {name!r} in {path} must be 2-D (samples x features), "
                                  f"got shape {X.shape}")
    if X.dtype.kind not in "biuf":
        raise CLIError(EXIT_DATA, f"array {name!r} in {path} is not numeric (dtype {X.dtype})")
    if X.dtype.kind == "f" and not np.isfinite(X).all():
        raise CLIError(EXIT_DATA, f"array {name!r} in {path} has missing or infinite values")


def _target_array(y, name, path):
    """The target as a NumPy array fit for an estimator (strings as str, not object)."""
    import pandas as pd

    if isinstance(y, pd.Series):
        if y.isna().any():
            raise CLIError(EXIT_DATA, f"target {name!r} in {path} has {int(y.isna().sum())} "
                                      "missing values")
        if pd.api.types.is_bool_dtype(y.dtype):
            return y.to_numpy(dtype=bool)
        if pd.api.types.is_numeric_dtype(y.dtype):
            return y.to_numpy()
        return y.astype(str).to_numpy(dtype=str)
    y = np.asarray(y)
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        what = "missing" if np.isnan(y).any() else "infinite"
        raise CLIError(EXIT_DATA, f"target {name!r} in {path} has {what} values")
    return y


def read_dataset(path_text, *, target=None, need_target=True, model=None, sep=None):
    """Load DATA; features are the model's (by name) when ``model`` is given.

    ``sep`` is a CSV file's separator (detected when None); it is refused
    for the other formats.
    """
    path = _open_checks(path_text)
    fmt = _detect_format(path)
    if sep is not None and fmt not in ("csv", "tsv"):
        raise CLIError(EXIT_USAGE, f"--sep applies to CSV files; {path_text} is read as {fmt}")
    model_names = None if model is None else getattr(model, "feature_names_in_", None)
    model_names = None if model_names is None else [str(n) for n in model_names]
    if fmt == "npz":
        arrays = _read_npz(path)
        if "X" not in arrays:
            raise CLIError(EXIT_INPUT, f"{path} has no array named 'X' (arrays: "
                                       f"{', '.join(arrays) or 'none'})")
        X = arrays["X"]
        _check_numeric_array(X, "X", path)
        y = None
        target = target or "y"
        if need_target:
            if target not in arrays:
                raise CLIError(EXIT_DATA, f"{path} has no target array {target!r} (arrays: "
                                          f"{', '.join(arrays)}); pass --target NAME")
            y = _target_array(arrays[target], target, path)
            if y.shape[0] != X.shape[0]:
                raise CLIError(EXIT_DATA, f"{path}: X has {X.shape[0]} rows but {target!r} has "
                                          f"{y.shape[0]}")
        return Dataset(X, y, source=str(path_text), fmt="npz", target=target if need_target else None)

    how = "from --sep" if sep is not None else "detected"
    if sep is None and fmt != "parquet":
        sep = detect_separator(path, fmt)
    df = _read_frame(path, fmt, sep)
    columns = list(df.columns)
    # a file read as a single column most likely has another separator: say so in every data error
    hint = (f"; with separator {sep!r} ({how}) the file reads as a single column: if it uses "
            f"another separator, pass it with --sep" if fmt != "parquet" and len(columns) == 1 else "")
    if need_target:
        if target is None and model_names is not None:
            # the one column that is not a feature of the model, else the last such column
            extra = [c for c in columns if c not in model_names]
            if len(extra) == 1 or (extra and columns[-1] in extra):
                target = extra[0] if len(extra) == 1 else columns[-1]
            else:
                found = (f"columns {', '.join(map(repr, extra))} are not" if extra
                         else "every column is one of")
                raise CLIError(EXIT_DATA, f"which column of {path} is the target? {found} the "
                                          f"model's features; pass --target NAME{hint}")
        elif target is None:
            target = columns[-1]
        if target not in columns:
            close = difflib.get_close_matches(target, columns, n=1)
            raise CLIError(EXIT_DATA, f"target column {target!r} not found in {path}"
                                      f"{f' (did you mean {close[0]!r}?)' if close else ''}; "
                                      f"columns: {', '.join(map(repr, columns))}{hint}")
    if model_names is not None:
        missing = [c for c in model_names if c not in columns]
        if missing:
            raise CLIError(EXIT_DATA, f"{path} lacks feature column{'s' if len(missing) > 1 else ''} "
                                      f"the model was trained on: {', '.join(map(repr, missing))}"
                                      f"{hint}")
        features = model_names
    else:
        features = [c for c in columns if c != target]
    if not features:
        raise CLIError(EXIT_DATA, f"{path} has no feature columns (only "
                                  f"{', '.join(map(repr, columns))}){hint}")
    X = df[features]
    _check_numeric_frame(X, path)
    all_float32 = all(dtype == np.float32 for dtype in X.dtypes)
    X = X.astype(np.float32 if all_float32 else np.float64)
    y = _target_array(df[target], target, path) if need_target else None
    return Dataset(X, y, source=str(path_text), fmt=fmt, target=target if need_target else None,
                   feature_names=features)


def bundled_dataset():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return Dataset(X / 16.0, y, source=BUNDLED_NAME, fmt="bundled", target="digit")


def infer_task(y):
    """``(task, reason)`` for --task auto: see the train epilog for the rule."""
    kind = y.dtype.kind
    if kind == "b":
        return "classification", "the target is boolean"
    if kind not in "iuf":
        return "classification", "the target is not numeric"
    n_unique = np.unique(y).shape[0]
    whole = kind in "iu" or bool(np.all(np.mod(y, 1) == 0))
    if not whole:
        return "regression", "the target has fractional values"
    if n_unique <= MAX_CLASSES_INFERRED:
        return "classification", f"the target has {n_unique} distinct whole-number values"
    return "regression", (f"the target has {n_unique} distinct whole-number values "
                          f"(more than {MAX_CLASSES_INFERRED})")


# ----------------------------------------------------------------------
# Parameters from config, --param and flags


def _read_config(path_text):
    path = _open_checks(path_text, "config file")
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CLIError(EXIT_INPUT, f"cannot read config file {path}: {exc}") from exc
    if suffix == ".toml":
        try:
            import tomllib
        except ImportError:  # Python 3.10
            try:
                import tomli as tomllib
            except ImportError:
                raise CLIError(EXIT_INPUT, f"cannot read {path}: TOML needs Python 3.11+ or the "
                                           "tomli package (pip install tomli); or use JSON") from None
        try:
            config = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise CLIError(EXIT_INPUT, f"cannot read config file {path} as TOML: {exc}") from exc
    elif suffix == ".json":
        try:
            config = json.loads(text)
        except ValueError as exc:
            raise CLIError(EXIT_INPUT, f"cannot read config file {path} as JSON: {exc}") from exc
    else:
        raise CLIError(EXIT_INPUT, f"config file {path} must end in .json or .toml")
    if not isinstance(config, dict):
        raise CLIError(EXIT_INPUT, f"config file {path} must hold a table/object of parameters")
    if "fastbp_version" in config and isinstance(config.get("parameters"), dict):
        return config["parameters"]  # the metrics JSON of a fastbp train run
    return config


def _unknown_param(name, specs, where):
    hint = difflib.get_close_matches(name, list(specs), n=1)
    return CLIError(EXIT_USAGE, f"unknown estimator parameter {name!r} {where}"
                                f"{f' (did you mean {hint[0]!r}?)' if hint else ''}; parameters: "
                                f"{', '.join(specs)}")


def resolve_params(args, specs):
    """``(params, sources)``: the parameters set on the command line and where each came from."""
    params, sources = {"random_state": CLI_DEFAULT_RANDOM_STATE}, {"random_state": "cli default"}
    if args.config:
        for name, value in _read_config(args.config).items():
            key = name.replace("-", "_")
            if key not in specs:
                raise _unknown_param(name, specs, f"in config file {args.config}")
            try:
                params[key] = specs[key].coerce(value)
            except ValueError as exc:
                raise CLIError(EXIT_USAGE, f"config file {args.config}: {exc}") from exc
            sources[key] = "config"
    for item in args.param:
        name, sep, text = item.partition("=")
        key = name.strip().replace("-", "_")
        if not sep:
            raise CLIError(EXIT_USAGE, f"--param needs NAME=VALUE, got {item!r}")
        if key not in specs:
            raise _unknown_param(name, specs, "in --param")
        try:
            params[key] = specs[key].parse(text)
        except ValueError as exc:
            raise CLIError(EXIT_USAGE, f"--param {item}: {exc}") from exc
        sources[key] = "--param"
    for dest, value in vars(args).items():
        if dest.startswith("param__"):
            params[dest[len("param__"):]] = value
            sources[dest[len("param__"):]] = "flag"
    return params, sources


# ----------------------------------------------------------------------
# Training, progress and outputs


class EpochProgress(io.TextIOBase):
    """Stands in for stdout during a fit and turns the estimator's verbose lines into a bar.

    With ``verbose=True`` the estimator prints ``Iteration N, loss = L`` after
    every epoch (and ``Validation score: S`` with early stopping); this stream
    parses those lines. In a terminal it redraws one stderr line per epoch;
    elsewhere (a log file) it writes a line at each tenth of ``max_iter`` and
    at the last epoch. Lines are passed on to ``echo`` when the user asked
    for verbose output.
    """

    _ITERATION = re.compile(r"^Iteration (\d+), loss = ([^\s,]+)")
    _VALIDATION = re.compile(r"^Validation score: (\S+)")

    def __init__(self, total, stream, echo=None, width=24):
        super().__init__()
        self.total, self.stream, self.echo, self.width = total, stream, echo, width
        self.epoch, self.loss, self.score = 0, None, None
        self.interactive = bool(getattr(stream, "isatty", lambda: False)())
        self._pending = ""
        self._shown = ""  # the bar's current text, to blank what a shorter one leaves
        self._logged = None  # (tenth, epoch) of the last line written to a log

    def writable(self):
        return True

    def write(self, text):
        self._pending += text
        while "\n" in self._pending:
            line, self._pending = self._pending.split("\n", 1)
            self._line(line)
        return len(text)

    def _line(self, line):
        iteration = self._ITERATION.match(line)
        validation = self._VALIDATION.match(line)
        if iteration:
            if self.epoch:
                self._log_epoch()
            self.epoch, self.loss, self.score = int(iteration.group(1)), float(iteration.group(2)), None
        elif validation:
            self.score = float(validation.group(1))
        if self.echo is not None:
            self.echo.write(line + "\n")
            self.echo.flush()
        if (iteration or validation) and self.interactive:
            text = self.text()
            self.stream.write("\r" + text + " " * max(0, len(self._shown) - len(text)))
            self.stream.flush()
            self._shown = text

    def text(self):
        done = min(self.width, self.width * self.epoch // max(self.total, 1))
        text = f"training [{'#' * done}{'-' * (self.width - done)}] epoch {self.epoch}/{self.total}"
        if self.loss is not None:
            text += f"  loss {self.loss:.6f}"
        if self.score is not None:
            text += f"  validation score {self.score:.4f}"
        return text

    def _log_epoch(self, last=False):
        """In a log, write the finished epoch's line if it starts a new tenth or is the last."""
        if self.interactive:
            return
        tenth = 10 * self.epoch // max(self.total, 1)
        if self._logged is None or tenth != self._logged[0] or (last and self._logged[1] != self.epoch):
            self.stream.write(self.text() + "\n")
            self.stream.flush()
            self._logged = (tenth, self.epoch)

    def finish(self):
        """End the bar: a newline in a terminal, the final epoch's line in a log."""
        if self._pending:
            self._line(self._pending)
            self._pending = ""
        if self.epoch:
            self._log_epoch(last=True)
            if self.interactive:
                self.stream.write("\n")
                self.stream.flush()


def _fit(model, X, y, progress):
    """Fit, with a progress bar that leaves the model exactly as a quiet fit would."""
    user_verbose = model.verbose
    caught = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        if not progress:
            model.fit(X, y)
        elif model.solver == "lbfgs":
            # L-BFGS runs inside SciPy and reports no epochs: a start/end line only.
            print(f"training (lbfgs, at most {model.max_iter} iterations) ...", end="",
                  file=sys.stderr, flush=True)
            model.fit(X, y)
            print(" done", file=sys.stderr)
        else:
            bar = EpochProgress(model.max_iter, sys.stderr, echo=sys.stdout if user_verbose else None)
            model.set_params(verbose=True)
            try:
                with contextlib.redirect_stdout(bar):
                    model.fit(X, y)
            finally:
                bar.finish()
                model.set_params(verbose=user_verbose)
        seconds = time.perf_counter() - start
    return seconds, [f"{w.category.__name__}: {w.message}" for w in caught]


def _scores(model, X, y, classification):
    """Scores of ``model`` on ``(X, y)`` and the seconds ``predict`` took."""
    from sklearn.metrics import accuracy_score, log_loss, mean_squared_error, r2_score

    start = time.perf_counter()
    prediction = model.predict(X)
    seconds = time.perf_counter() - start
    if classification:
        y = _match_label_type(y, model)
        scores = {"accuracy": float(accuracy_score(y, prediction)), "log_loss": None}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                scores["log_loss"] = float(log_loss(y, model.predict_proba(X), labels=model.classes_))
        except ValueError:  # labels the model never saw, or multilabel targets
            pass
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # R^2 of a single sample is undefined
            scores = {"r2": float(r2_score(y, prediction)),
                      "mse": float(mean_squared_error(y, prediction))}
    scores["n_samples"] = int(X.shape[0])
    return _finite(scores), seconds


def _match_label_type(y, model):
    """Targets read as numbers but labelled by strings in the model (or the reverse) compare as str."""
    classes = getattr(model, "classes_", None)
    if isinstance(classes, np.ndarray) and classes.dtype.kind in "US" and y.dtype.kind not in "US":
        return y.astype(str)
    return y


def _finite(value):
    """A JSON-safe copy: NumPy types to Python, tuples to lists, NaN/inf to None."""
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_finite(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _json_params(params):
    """Parameters as JSON that --config reads back (inf as "inf", objects as their repr)."""
    out = {}
    for name, value in params.items():
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, tuple):
            value = list(value)
        if isinstance(value, float) and not math.isfinite(value):
            value = str(value)
        elif not isinstance(value, (str, int, float, bool, list, dict, type(None))):
            value = repr(value)
        out[name] = value
    return out


def _prepare_output(path_text):
    path = Path(path_text)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CLIError(EXIT_INPUT, f"cannot create the directory of {path_text}: {exc}") from exc
    if path.is_dir():
        raise CLIError(EXIT_INPUT, f"output path is a directory: {path_text}")
    return path


def _write_text(path, text, what):
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CLIError(EXIT_INPUT, f"cannot write {what} {path}: {exc}") from exc


def _import_save():
    try:
        from fastbp._io import save
    except ImportError as exc:
        raise CLIError(EXIT_UNEXPECTED, f"model files need fastbp._io (fastbp.save), which this "
                                        f"installation lacks: {exc}") from exc
    return save


def _check_plotting(path):
    """Refuse --plot-out before training when matplotlib is missing or cannot write ``path``'s format."""
    if importlib.util.find_spec("matplotlib") is None:
        raise CLIError(EXIT_USAGE, '--plot-out needs matplotlib, which is not installed: '
                                   'pip install "fastbp[plot]"')
    from matplotlib.backend_bases import FigureCanvasBase

    formats = FigureCanvasBase.get_supported_filetypes()
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in formats:
        raise CLIError(EXIT_USAGE, f"--plot-out {path}: the file name must end in the image format, "
                                   f"one of {', '.join('.' + f for f in sorted(formats))}")


def _plot(model, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fastbp.plotting import plot_loss_curve, plot_validation_curve

    scores = getattr(model, "validation_scores_", None)
    if scores:
        fig, (ax_loss, ax_score) = plt.subplots(1, 2, figsize=(10, 4))
        plot_validation_curve(model, ax=ax_score)
    else:
        fig, ax_loss = plt.subplots(figsize=(6, 4))
    plot_loss_curve(model, ax=ax_loss)
    validation_loss = getattr(model, "validation_loss_curve_", None)
    if validation_loss:
        ax_loss.plot(np.arange(1, len(validation_loss) + 1), validation_loss, label="validation loss")
        ax_loss.legend()
    fig.suptitle(title)
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=100)
    except OSError as exc:
        raise CLIError(EXIT_INPUT, f"cannot write plot {path}: {exc}") from exc
    finally:
        plt.close(fig)


def _split(data, classification, test_size, seed):
    from sklearn.model_selection import train_test_split

    if test_size == 0:
        return data.X, None, data.y, None
    stratify = data.y if classification and data.y.ndim == 1 else None
    try:
        return train_test_split(data.X, data.y, test_size=test_size, random_state=seed, stratify=stratify)
    except ValueError as exc:
        if stratify is None:
            raise CLIError(EXIT_DATA, f"cannot hold out --test-size {test_size} of "
                                      f"{data.n_samples} rows: {exc}") from exc
    try:  # too few members in some class to stratify
        return train_test_split(data.X, data.y, test_size=test_size, random_state=seed)
    except ValueError as exc:
        raise CLIError(EXIT_DATA, f"cannot hold out --test-size {test_size} of "
                                  f"{data.n_samples} rows: {exc}") from exc


def _align_class_weight(value, y):
    """JSON/TOML object keys are strings: turn them into numbers when the class labels are."""
    if not isinstance(value, dict) or y.dtype.kind not in "iuf":
        return value
    aligned = {}
    for key, weight in value.items():
        if isinstance(key, str):
            number = _parse_number(key)
            if number is not _FAIL:
                key = int(number) if y.dtype.kind in "iu" and float(number).is_integer() else number
        aligned[key] = weight
    return aligned


def _architecture(model, n_features):
    sizes = model.hidden_layer_sizes
    sizes = [sizes] if isinstance(sizes, Integral) else list(sizes)
    return "-".join(str(s) for s in [n_features, *sizes, model.n_outputs_])


def _cmd_train(args):
    import fastbp
    from fastbp._multilayer_perceptron import check_parameters

    specs = args.specs
    if args.model_out == "":
        raise CLIError(EXIT_USAGE, "--model-out needs a path (--no-model-out writes no model)")
    params, sources = resolve_params(args, specs)

    if args.data is None:
        if args.target:
            raise CLIError(EXIT_USAGE, "--target needs a DATA file (the bundled digits have their own)")
        if args.sep:
            raise CLIError(EXIT_USAGE, "--sep needs a DATA file (the bundled digits are not a CSV file)")
        data = bundled_dataset()
    else:
        data = read_dataset(args.data, target=args.target, need_target=True, sep=args.sep)
    if args.model_out is not None:
        model_out = args.model_out
    elif args.data is not None and not args.no_model_out:
        model_out = str(Path(args.data).with_name("model.fbp"))
    else:
        model_out = None
    save = _import_save() if model_out else None

    if args.task == "auto":
        task, reason = infer_task(data.y)
        reason = f"auto: {reason}"
    else:
        task, reason = args.task, "--task"
    classification = task == "classification"
    if classification and np.unique(data.y).shape[0] < 2 and data.y.ndim == 1:
        raise CLIError(EXIT_DATA, f"target {data.target!r} has a single class; nothing to classify")
    if not classification and data.y.dtype.kind not in "biuf":
        raise CLIError(EXIT_DATA, f"--task regression needs a numeric target; {data.target!r} "
                                  "is not numeric")
    for name in params:
        if task not in specs[name].tasks:
            if sources[name] == "cli default":
                continue
            raise CLIError(EXIT_USAGE, f"parameter {name!r} applies to "
                                       f"{'/'.join(sorted(specs[name].tasks))} only, and the task is "
                                       f"{task} ({reason})")

    if "class_weight" in params:
        params["class_weight"] = _align_class_weight(params["class_weight"], data.y)
    cls = _estimator_classes()[task]
    model = cls(**{k: v for k, v in params.items() if task in specs[k].tasks})
    try:
        check_parameters(model)
    except (ValueError, TypeError) as exc:
        raise CLIError(EXIT_USAGE, f"invalid estimator parameter: {exc}") from exc
    if args.plot_out:
        _check_plotting(args.plot_out)
        if model.solver == "lbfgs":
            raise CLIError(EXIT_USAGE, "--plot-out draws the loss curve, which solver='lbfgs' "
                                       "does not record; use solver adam or sgd")
    outputs = [p for p in (model_out, args.metrics_out, args.plot_out) if p]
    for path in outputs:
        _prepare_output(path)
        if args.data is not None and Path(path).resolve() == Path(args.data).resolve():
            raise CLIError(EXIT_USAGE, f"output {path} is the data file; choose another path")
    if model_out and args.model_out is None and not os.access(Path(model_out).parent, os.W_OK):
        raise CLIError(EXIT_INPUT, f"cannot write the model beside the data: the directory of "
                                   f"{model_out} is not writable; pass --model-out PATH or "
                                   f"--no-model-out")
    replaced = bool(model_out) and Path(model_out).exists()

    seed = model.random_state if isinstance(model.random_state, Integral) else None
    X_train, X_test, y_train, y_test = _split(data, classification, args.test_size, seed)
    _say(f"{cls.__name__} ({reason}) on {data.source}: {X_train.shape[0]} train / "
         f"{0 if X_test is None else X_test.shape[0]} test rows, {data.n_features} features")

    progress = sys.stderr.isatty() if args.progress is None else args.progress
    try:
        fit_seconds, caught = _fit(model, X_train, y_train, progress)
    except (ValueError, MemoryError) as exc:  # the estimator's own checks of the data and parameters
        raise CLIError(EXIT_DATA, f"cannot train on {data.source}: {exc}") from exc
    for message in caught:
        _say(f"warning: {message.splitlines()[0]}")

    train_scores, _ = _scores(model, X_train, y_train, classification)
    test_scores, predict_seconds = (None, None)
    if X_test is not None:
        test_scores, predict_seconds = _scores(model, X_test, y_test, classification)

    if model_out:
        try:
            save(model, model_out)
        except OSError as exc:
            raise CLIError(EXIT_INPUT, f"cannot write model file {model_out}: {exc}") from exc

    metrics = {
        "fastbp_version": fastbp.__version__,
        "command": "train",
        "task": task,
        "task_reason": reason,
        "estimator": cls.__name__,
        "parameters": _json_params(model.get_params(deep=False)),
        "parameter_sources": {k: sources[k] for k in sorted(sources) if k in model.get_params()},
        "data": {"source": data.source, "format": data.fmt, "target": data.target,
                 "feature_names": data.feature_names},
        "n_samples": int(data.n_samples),
        "n_features": int(data.n_features),
        "n_train": int(X_train.shape[0]),
        "n_test": 0 if X_test is None else int(X_test.shape[0]),
        "test_size": args.test_size,
        "classes": _finite(model.classes_) if classification else None,
        "scores": {"train": train_scores, "test": test_scores},
        "n_iter_": int(model.n_iter_),
        "loss_": _finite(getattr(model, "loss_", None)),
        "loss_curve_": _finite(getattr(model, "loss_curve_", None)),
        "validation_scores_": _finite(getattr(model, "validation_scores_", None)),
        "best_validation_score_": _finite(getattr(model, "best_validation_score_", None)),
        "fit_seconds": fit_seconds,
        "predict_seconds": predict_seconds,
        "warnings": caught,
        "model_path": model_out,
    }
    if hasattr(model, "validation_loss_curve_"):
        metrics["validation_loss_curve_"] = _finite(model.validation_loss_curve_)
    if args.metrics_out:
        _write_text(args.metrics_out, json.dumps(_finite(metrics), indent=2, allow_nan=False) + "\n",
                    "metrics file")
    if args.plot_out:
        _plot(model, args.plot_out, f"{cls.__name__} {_architecture(model, data.n_features)} "
                                    f"on {Path(data.source).name if data.fmt != 'bundled' else 'digits'}")

    name = "accuracy" if classification else "R^2"
    key = "accuracy" if classification else "r2"
    line = f"train {name} {train_scores[key]:.4f}"
    if test_scores is not None and test_scores[key] is not None:
        line = f"test {name} {test_scores[key]:.4f}   " + line
    print(f"{cls.__name__} {_architecture(model, data.n_features)}, solver={model.solver}, "
          f"{model.n_iter_} iterations (max_iter={model.max_iter}), random_state={model.random_state}")
    print(f"{line}   fit {fit_seconds:.2f} s")
    model_note = " (replaced the existing file)" if replaced else ""
    written = [f"{what} {path}{note}" for what, path, note in
               (("model", model_out, model_note), ("metrics", args.metrics_out, ""),
                ("plot", args.plot_out, "")) if path]
    if written:
        print("wrote " + ", ".join(written))
    return EXIT_OK


# ----------------------------------------------------------------------
# Predict and evaluate


def load_model(path_text):
    path = Path(path_text)
    if not path.exists():
        raise CLIError(EXIT_MODEL, f"model file not found: {path_text}")
    if path.is_dir():
        raise CLIError(EXIT_MODEL, f"model file is a directory: {path_text}")
    try:
        from fastbp._io import load
    except ImportError as exc:
        raise CLIError(EXIT_UNEXPECTED, f"model files need fastbp._io (fastbp.load), which this "
                                        f"installation lacks: {exc}") from exc
    try:
        model = load(path)
    except Exception as exc:  # the loader's ValueError, and whatever a damaged file provokes
        detail = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
        raise CLIError(EXIT_MODEL, f"cannot load model file {path_text}: {detail}") from exc
    if not (hasattr(model, "predict") and hasattr(model, "n_features_in_")):
        raise CLIError(EXIT_MODEL, f"model file {path_text} holds a {type(model).__name__}, not a "
                                   "fitted MLPClassifier / MLPRegressor")
    return model


def _model_input(model, data):
    """Features as the model expects them, with a clear error on a width mismatch."""
    X = data.X
    expected = int(model.n_features_in_)
    if X.shape[1] != expected:
        raise CLIError(EXIT_DATA, f"the model expects {expected} features, {data.source} has "
                                  f"{X.shape[1]} feature columns")
    if getattr(model, "feature_names_in_", None) is None and hasattr(X, "to_numpy"):
        X = X.to_numpy()
    return X


def _cmd_predict(args):
    import pandas as pd
    from sklearn.base import is_classifier

    model = load_model(args.model)
    if args.proba and not (is_classifier(model) and hasattr(model, "predict_proba")):
        raise CLIError(EXIT_USAGE, f"--proba needs a classifier; {args.model} holds a "
                                   f"{type(model).__name__}")
    out = _prepare_output(args.out)
    data = read_dataset(args.data, need_target=False, model=model, sep=args.sep)
    X = _model_input(model, data)
    start = time.perf_counter()
    prediction = np.asarray(model.predict(X))
    seconds = time.perf_counter() - start
    if prediction.ndim == 1:
        frame = pd.DataFrame({"prediction": prediction})
    else:
        frame = pd.DataFrame(prediction, columns=[f"prediction_{i}" for i in range(prediction.shape[1])])
    if args.proba:
        proba = model.predict_proba(X)
        classes = model.classes_ if prediction.ndim == 1 else range(proba.shape[1])
        for i, label in enumerate(classes):
            frame[f"proba_{label}"] = proba[:, i]
    try:
        frame.to_csv(out, index=False)
    except OSError as exc:
        raise CLIError(EXIT_INPUT, f"cannot write predictions {args.out}: {exc}") from exc
    print(f"wrote {frame.shape[0]} predictions to {args.out} (predict {seconds:.3f} s)")
    return EXIT_OK


def _cmd_evaluate(args):
    import fastbp
    from sklearn.base import is_classifier

    model = load_model(args.model)
    if args.metrics_out:
        _prepare_output(args.metrics_out)
    data = read_dataset(args.data, target=args.target, need_target=True, model=model, sep=args.sep)
    X = _model_input(model, data)
    classification = is_classifier(model)
    try:
        scores, seconds = _scores(model, X, data.y, classification)
    except ValueError as exc:  # targets the metrics cannot compare with the predictions
        raise CLIError(EXIT_DATA, f"cannot score {args.model} on {data.source}: {exc}") from exc
    metrics = {
        "fastbp_version": fastbp.__version__,
        "command": "evaluate",
        "task": "classification" if classification else "regression",
        "estimator": type(model).__name__,
        "model_path": args.model,
        "data": {"source": data.source, "format": data.fmt, "target": data.target,
                 "feature_names": data.feature_names},
        "n_samples": int(data.n_samples),
        "n_features": int(data.n_features),
        "scores": scores,
        "predict_seconds": seconds,
    }
    if args.metrics_out:
        _write_text(args.metrics_out, json.dumps(_finite(metrics), indent=2, allow_nan=False) + "\n",
                    "metrics file")
    shown = [f"{k} {v:.4f}" for k, v in scores.items() if k != "n_samples" and v is not None]
    print(f"{type(model).__name__} on {data.source} ({data.n_samples} rows): {'   '.join(shown)}")
    return EXIT_OK


# ----------------------------------------------------------------------
# Entry point


def main(argv=None):
    """Run the ``fastbp`` command with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
            return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else EXIT_USAGE)
        debug = getattr(args, "debug", False)
        return args.func(args)
    except CLIError as exc:
        if debug:
            traceback.print_exc()
        _say(f"error: {exc.message}")
        return exc.code
    except KeyboardInterrupt:
        _say("interrupted")
        return 130
    except Exception as exc:
        if debug:
            traceback.print_exc()
        hint = "" if debug else " (rerun with --debug for the traceback)"
        _say(f"unexpected error: {type(exc).__name__}: {exc}{hint}")
        return EXIT_UNEXPECTED


if __name__ == "__main__":
    sys.exit(main())

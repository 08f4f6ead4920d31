"""The ``fastbp`` command end to end: train / predict / evaluate in subprocesses.

Every run is ``python -m fastbp.cli ...`` in a fresh interpreter, on a small
CSV with a string target and on an ``.npz``; outputs are parsed and checked
against ``fastbp.load`` and in-process fits. Error cases run concurrently
(each subprocess spends most of its time importing NumPy, scikit-learn and
Numba) and are checked for their exit code and message. A few pure-Python
pieces (value parsing, the task rule, the unexpected-error path) are tested
in-process.
"""

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

import fastbp
from fastbp import MLPClassifier, MLPRegressor, cli

FEATURES = ["x1", "x2", "x3"]
TRAIN_METRIC_KEYS = {
    "fastbp_version", "task", "estimator", "parameters", "n_samples", "n_features", "scores",
    "loss_curve_", "validation_scores_", "n_iter_", "fit_seconds", "predict_seconds",
}


def run_cli(*args, cwd):
    """Run ``python -m fastbp.cli ARGS`` in ``cwd``; the CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-m", "fastbp.cli", *map(str, args)],
        cwd=cwd, capture_output=True, text=True, timeout=300,
    )


def _check_ok(result):
    assert result.returncode == 0, (
        f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )


def _load(path):
    from fastbp._io import load  # also fastbp.load

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean file from the same versions loads silently
        return load(path)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """Data files: a CSV with a string target (last column) and a regression .npz."""
    root = tmp_path_factory.mktemp("cli")
    rng = np.random.RandomState(0)
    X = rng.randn(80, 3)
    label = np.array(["bird", "cat", "dog"])[(X[:, 0] > 0).astype(int) + (X[:, 1] > 0.3).astype(int)]
    frame = pd.DataFrame(X, columns=FEATURES)
    frame["label"] = label
    frame.to_csv(root / "animals.csv", index=False)

    Xr = rng.randn(60, 4)
    yr = Xr @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.1 * rng.randn(60)
    np.savez(root / "reg.npz", X=Xr, y=yr)

    (root / "config.json").write_text(json.dumps({
        "hidden_layer_sizes": [6], "activation": "tanh", "max_iter": 40, "alpha": 0.01,
        "learning_rate_init": 0.02, "n_iter_no_change": "inf",
    }))
    (root / "config.toml").write_text(
        "hidden_layer_sizes = [16, 8]\nlearning_rate_init = 0.01\nmax_iter = 100\n"
    )
    return root


@pytest.fixture(scope="module")
def csv_run(workdir):
    """Train on the CSV with a JSON config, --param and flags overriding it, a plot and a progress bar."""
    result = run_cli(
        "train", "animals.csv", "--config", "config.json", "--param", "alpha=0.002",
        "--max-iter", "25", "--no-shuffle", "--early-stopping", "--validation-fraction", "0.25",
        "--batch-size", "16", "--progress", "--model-out", "out/animals.fbp",
        "--metrics-out", "out/animals.json", "--plot-out", "out/animals.png",
        cwd=workdir,
    )
    _check_ok(result)
    return result


@pytest.fixture(scope="module")
def npz_run(workdir):
    """Train a regressor on the .npz with a TOML config; --max-iter overrides it."""
    result = run_cli(
        "train", "reg.npz", "--config", "config.toml", "--max-iter", "30", "--random-state", "3",
        "--progress", "--model-out", "out/reg.fbp", "--metrics-out", "out/reg.json", cwd=workdir,
    )
    _check_ok(result)
    return result


# ----------------------------------------------------------------------
# train / predict / evaluate on a CSV


def test_train_csv_writes_model_and_metrics(workdir, csv_run):
    metrics = json.loads((workdir / "out/animals.json").read_text())
    assert TRAIN_METRIC_KEYS <= set(metrics)
    assert metrics["task"] == "classification"
    assert metrics["estimator"] == "MLPClassifier"
    assert metrics["fastbp_version"] == fastbp.__version__
    assert metrics["classes"] == ["bird", "cat", "dog"]
    assert metrics["data"]["target"] == "label" and metrics["data"]["feature_names"] == FEATURES
    assert (metrics["n_samples"], metrics["n_features"]) == (80, 3)
    assert metrics["n_train"] + metrics["n_test"] == 80 and metrics["n_test"] == 20
    for part in ("train", "test"):
        scores = metrics["scores"][part]
        assert 0.0 <= scores["accuracy"] <= 1.0 and scores["log_loss"] > 0
    assert len(metrics["loss_curve_"]) == metrics["n_iter_"] <= 25
    assert len(metrics["validation_scores_"]) == metrics["n_iter_"]
    assert metrics["fit_seconds"] > 0 and metrics["predict_seconds"] >= 0
    assert "test accuracy" in csv_run.stdout


def test_config_and_flags_reach_the_estimator(workdir, csv_run):
    """Precedence: config < --param < flags, read back from the saved model."""
    model = _load(workdir / "out/animals.fbp")
    assert isinstance(model, MLPClassifier)
    params = model.get_params()
    assert params["hidden_layer_sizes"] == (6,)          # config
    assert params["activation"] == "tanh"                # config
    assert params["learning_rate_init"] == 0.02          # config
    assert params["n_iter_no_change"] == np.inf          # config, the string "inf"
    assert params["alpha"] == 0.002                      # --param over config's 0.01
    assert params["max_iter"] == 25                      # flag over config's 40
    assert params["shuffle"] is False and params["early_stopping"] is True
    assert params["validation_fraction"] == 0.25 and params["batch_size"] == 16
    assert params["random_state"] == 0                   # the CLI's default
    assert params["verbose"] is False                    # switched on for the bar only
    metrics = json.loads((workdir / "out/animals.json").read_text())
    assert metrics["parameters"]["alpha"] == 0.002
    assert metrics["parameter_sources"]["alpha"] == "--param"
    assert metrics["parameter_sources"]["max_iter"] == "flag"
    assert metrics["parameter_sources"]["activation"] == "config"
    assert metrics["n_iter_"] == model.n_iter_
    assert metrics["loss_curve_"] == pytest.approx(model.loss_curve_, rel=0, abs=0)


def test_metrics_json_passed_back_as_config_trains_the_same_model(workdir, csv_run):
    result = run_cli("train", "animals.csv", "--config", "out/animals.json", "--model-out", "out/again.fbp",
                     cwd=workdir)
    _check_ok(result)
    first, again = _load(workdir / "out/animals.fbp"), _load(workdir / "out/again.fbp")
    assert again.get_params() == first.get_params()
    for ours, theirs in zip(again.coefs_ + again.intercepts_, first.coefs_ + first.intercepts_):
        np.testing.assert_array_equal(ours, theirs)


def test_progress_bar_reports_epochs(workdir, csv_run):
    metrics = json.loads((workdir / "out/animals.json").read_text())
    n_iter = metrics["n_iter_"]
    assert f"epoch {n_iter}/25" in csv_run.stderr
    assert "epoch 1/25" in csv_run.stderr and "validation score" in csv_run.stderr
    assert "Iteration" not in csv_run.stdout  # the verbose lines were consumed, not echoed


def test_plot_is_a_png(workdir, csv_run):
    pytest.importorskip("matplotlib")
    data = (workdir / "out/animals.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    Image = pytest.importorskip("PIL.Image")
    with Image.open(workdir / "out/animals.png") as image:
        image.verify()
        assert image.size[0] > 100 and image.size[1] > 100


def test_predict_csv_matches_the_loaded_model(workdir, csv_run):
    result = run_cli("predict", "out/animals.fbp", "animals.csv", "--out", "out/pred.csv", "--proba",
                     cwd=workdir)
    _check_ok(result)
    predictions = pd.read_csv(workdir / "out/pred.csv", **cli.csv_float_options())
    assert list(predictions.columns) == ["prediction", "proba_bird", "proba_cat", "proba_dog"]
    assert len(predictions) == 80
    model = _load(workdir / "out/animals.fbp")
    # the target column is ignored by the CLI
    X = pd.read_csv(workdir / "animals.csv", **cli.csv_float_options())[FEATURES]
    np.testing.assert_array_equal(predictions["prediction"].to_numpy(), model.predict(X))
    np.testing.assert_array_equal(predictions.iloc[:, 1:].to_numpy(), model.predict_proba(X))


@pytest.mark.parametrize("name, separator", [
    ("table.csv", ","), ("table.csv", ";"), ("table.csv", "\t"), ("table.csv", "|"),
    ("table.tsv", "\t"), ("table.tsv", ","), ("table.csv.gz", ";"),
])
def test_text_tables_are_read_to_the_nearest_double(tmp_path, name, separator):
    """The separator is detected, and every float written with 17 digits reads back bitwise.

    pandas 2's default parser is off by an ulp for a third of such values.
    """
    values = np.random.RandomState(0).standard_normal((2000, 3)) * 10.0 ** np.arange(-3, 6, 3)
    path = tmp_path / name
    np.savetxt(path, values, fmt="%.17g", delimiter=separator, header=separator.join("abc"), comments="")
    data = cli.read_dataset(path)
    assert data.feature_names == ["a", "b"] and data.target == "c"
    np.testing.assert_array_equal(data.X.to_numpy(), values[:, :2])
    np.testing.assert_array_equal(data.y, values[:, 2])


@pytest.mark.parametrize("text, separator", [
    ('a;b;label\n1,5;2;x\n3;4,25;y\n', ";"),          # decimal commas beside semicolons
    ('"x;1",b,label\n1,2,"p;q"\n3,4,"r;s"\n', ","),   # separators inside quotes do not count
    ('a,b;c\n1,2;3\n', ","),                          # a tie: the format's default
    ('a,b,label\n1,2,x\n3,4,y,5,6\n', ","),            # ragged: nothing fits, the read says why
    ('a:b:label\n1:2:x\n', ","),                      # not a candidate
    ('y\n1\n2\n', ","),
    ('', ","),
])
def test_separator_detection(tmp_path, text, separator):
    path = tmp_path / "data.csv"
    path.write_text(text)
    assert cli.detect_separator(path, "csv") == separator


@pytest.mark.parametrize("text, separator", [
    (";", ";"), (":", ":"), ("\t", "\t"), ("\\t", "\t"), ("tab", "\t"), (" ", " "),
])
def test_sep_option_values(text, separator):
    assert cli._separator(text) == separator


@pytest.mark.parametrize("text", ["", ";;", '"', "\n", "\\s"])
def test_sep_option_refuses_what_is_not_one_separator(text):
    with pytest.raises(argparse.ArgumentTypeError, match="must be one character"):
        cli._separator(text)


def _rewrite_csv(source, target, sep):
    pd.read_csv(source, **cli.csv_float_options()).to_csv(target, sep=sep, index=False)


def test_semicolon_and_tab_csv_train_predict_and_evaluate_as_the_comma_one(workdir, csv_run, tmp_path,
                                                                           monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _rewrite_csv(workdir / "animals.csv", "comma.csv", ",")
    _rewrite_csv(workdir / "animals.csv", "semi.csv", ";")
    _rewrite_csv(workdir / "animals.csv", "tab.csv", "\t")
    models = {}
    for name in ("comma", "semi", "tab"):
        assert cli.main(["train", f"{name}.csv", "--max-iter", "5", "--hidden-layer-sizes", "6",
                         "--model-out", f"{name}.fbp"]) == 0
        models[name] = _load(tmp_path / f"{name}.fbp")
        assert list(models[name].feature_names_in_) == FEATURES
    for name in ("semi", "tab"):
        for ours, theirs in zip(models[name].coefs_, models["comma"].coefs_):
            np.testing.assert_array_equal(ours, theirs)

    trained = workdir / "out/animals.fbp"
    capsys.readouterr()
    for name in ("comma", "semi", "tab"):
        assert cli.main(["predict", str(trained), f"{name}.csv", "--out", f"{name}_pred.csv"]) == 0
        assert cli.main(["evaluate", str(trained), f"{name}.csv"]) == 0
    scores = [line for line in capsys.readouterr().out.splitlines() if "accuracy" in line]
    assert len(scores) == 3 and len({line.split(":", 1)[1] for line in scores}) == 1
    expected = _load(trained).predict(pd.read_csv("comma.csv", **cli.csv_float_options())[FEATURES])
    for name in ("comma", "semi", "tab"):
        np.testing.assert_array_equal(pd.read_csv(f"{name}_pred.csv")["prediction"].to_numpy(), expected)


def test_sep_reads_a_separator_detection_does_not_know(workdir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _rewrite_csv(workdir / "animals.csv", "colon.csv", ":")
    assert cli.main(["train", "colon.csv", "--max-iter", "3", "--no-model-out"]) == 4
    assert ("colon.csv has no feature columns (only 'x1:x2:x3:label'); with separator ',' (detected) "
            "the file reads as a single column: if it uses another separator, pass it with --sep"
            ) in capsys.readouterr().err
    assert cli.main(["train", "colon.csv", "--sep", ":", "--max-iter", "3", "--model-out", "m.fbp"]) == 0
    assert list(_load(tmp_path / "m.fbp").feature_names_in_) == FEATURES


def test_evaluate_csv(workdir, csv_run):
    result = run_cli("evaluate", "out/animals.fbp", "animals.csv", "--metrics-out", "out/eval.json",
                     cwd=workdir)
    _check_ok(result)
    metrics = json.loads((workdir / "out/eval.json").read_text())
    frame = pd.read_csv(workdir / "animals.csv", **cli.csv_float_options())
    model = _load(workdir / "out/animals.fbp")
    assert metrics["task"] == "classification" and metrics["n_samples"] == 80
    assert metrics["data"]["target"] == "label"
    assert metrics["scores"]["accuracy"] == pytest.approx(model.score(frame[FEATURES], frame["label"]))
    assert metrics["scores"]["log_loss"] > 0
    assert "accuracy" in result.stdout


# ----------------------------------------------------------------------
# train / predict / evaluate on an .npz


def test_train_npz_equals_an_in_process_fit(workdir, npz_run):
    """The progress bar (verbose capture) leaves the model exactly as a quiet fit does."""
    metrics = json.loads((workdir / "out/reg.json").read_text())
    assert metrics["task"] == "regression" and metrics["estimator"] == "MLPRegressor"
    assert TRAIN_METRIC_KEYS <= set(metrics)
    assert set(metrics["scores"]["test"]) >= {"r2", "mse"}
    assert metrics["validation_scores_"] is None
    assert "epoch 30/30" in npz_run.stderr

    saved = _load(workdir / "out/reg.fbp")
    assert isinstance(saved, MLPRegressor)
    assert saved.get_params()["hidden_layer_sizes"] == (16, 8)   # TOML list -> tuple
    assert saved.max_iter == 30 and saved.learning_rate_init == 0.01

    data = np.load(workdir / "reg.npz")
    X_train, _, y_train, _ = train_test_split(data["X"], data["y"], test_size=0.25, random_state=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        quiet = MLPRegressor(hidden_layer_sizes=(16, 8), learning_rate_init=0.01, max_iter=30,
                             random_state=3).fit(X_train, y_train)
    assert saved.loss_curve_ == quiet.loss_curve_
    for saved_w, quiet_w in zip(saved.coefs_ + saved.intercepts_, quiet.coefs_ + quiet.intercepts_):
        np.testing.assert_array_equal(saved_w, quiet_w)
    assert metrics["loss_curve_"] == quiet.loss_curve_


def test_predict_and_evaluate_npz(workdir, npz_run):
    result = run_cli("predict", "out/reg.fbp", "reg.npz", "--out", "out/reg_pred.csv", cwd=workdir)
    _check_ok(result)
    predictions = pd.read_csv(workdir / "out/reg_pred.csv", **cli.csv_float_options())
    data = np.load(workdir / "reg.npz")
    model = _load(workdir / "out/reg.fbp")
    assert list(predictions.columns) == ["prediction"] and len(predictions) == 60
    np.testing.assert_array_equal(predictions["prediction"].to_numpy(), model.predict(data["X"]))

    result = run_cli("evaluate", "out/reg.fbp", "reg.npz", "--metrics-out", "out/reg_eval.json",
                     cwd=workdir)
    _check_ok(result)
    scores = json.loads((workdir / "out/reg_eval.json").read_text())["scores"]
    assert scores["r2"] == pytest.approx(model.score(data["X"], data["y"]))
    assert scores["mse"] == pytest.approx(np.mean((model.predict(data["X"]) - data["y"]) ** 2))


def test_train_without_data_uses_bundled_digits(tmp_path):
    result = run_cli("train", "--max-iter", "3", "--hidden-layer-sizes", "16",
                     "--metrics-out", "digits.json", cwd=tmp_path)
    _check_ok(result)
    assert "test accuracy" in result.stdout and "fit" in result.stdout
    metrics = json.loads((tmp_path / "digits.json").read_text())
    assert (metrics["n_samples"], metrics["n_features"], metrics["n_iter_"]) == (1797, 64, 3)
    assert metrics["data"]["format"] == "bundled" and metrics["classes"] == list(range(10))
    assert any("ConvergenceWarning" in w for w in metrics["warnings"])
    assert [p.name for p in tmp_path.iterdir()] == ["digits.json"]  # no model file unless asked
    assert metrics["model_path"] is None and "wrote metrics digits.json" in result.stdout


# ----------------------------------------------------------------------
# The model file of train DATA


def test_train_data_writes_model_beside_the_data_and_replaces_it(workdir, tmp_path, monkeypatch, capsys):
    (tmp_path / "data").mkdir()
    shutil.copy(workdir / "animals.csv", tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["train", "data/animals.csv", "--max-iter", "3"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == f"wrote model {Path('data', 'model.fbp')}"
    first = _load(tmp_path / "data/model.fbp")
    assert isinstance(first, MLPClassifier) and first.n_iter_ == 3
    assert list(first.feature_names_in_) == FEATURES

    assert cli.main(["train", "data/animals.csv", "--max-iter", "4", "--metrics-out", "m.json"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == (f"wrote model {Path('data', 'model.fbp')} (replaced the existing "
                                    "file), metrics m.json")
    assert _load(tmp_path / "data/model.fbp").n_iter_ == 4
    assert json.loads((tmp_path / "m.json").read_text())["model_path"] == str(Path("data", "model.fbp"))
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["animals.csv", "model.fbp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "m.json"]


def test_no_model_out_writes_no_model(workdir, tmp_path, monkeypatch, capsys):
    shutil.copy(workdir / "animals.csv", tmp_path)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["train", "animals.csv", "--max-iter", "3", "--no-model-out"]) == 0
    assert "wrote" not in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir()] == ["animals.csv"]


def test_default_model_file_in_a_directory_that_is_not_writable(workdir, tmp_path, monkeypatch, capsys):
    """Refused before training, with the two ways out."""
    shutil.copy(workdir / "animals.csv", tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli.os, "access", lambda path, mode: mode != os.W_OK)
    assert cli.main(["train", "animals.csv", "--max-iter", "3"]) == 3
    out, err = capsys.readouterr()
    assert ("cannot write the model beside the data: the directory of model.fbp is not writable; "
            "pass --model-out PATH or --no-model-out") in err
    assert "train /" not in err and out == ""


# ----------------------------------------------------------------------
# Errors: exit code and message


ERROR_CASES = {
    "missing data file": (["train", "nowhere.csv"], 3, "not found: nowhere.csv"),
    "ragged CSV": (["train", "ragged.csv"], 3, "cannot read ragged.csv as CSV"),
    "empty CSV": (["train", "empty.csv"], 3, "empty"),
    "missing config": (["train", "animals.csv", "--config", "nope.toml"], 3, "config file not found"),
    "bad JSON config": (["train", "animals.csv", "--config", "bad.json"], 3, "as JSON"),
    "Parquet": (["train", "data.parquet"], 3, None),  # message depends on pyarrow, below
    "missing target column": (["train", "animals.csv", "--target", "lable"], 4,
                              "target column 'lable' not found"),
    "non-numeric column": (["train", "colors.csv"], 4,
                           "non-numeric feature column in colors.csv: 'color'"),
    "npz without y": (["train", "noy.npz"], 4, "no target array 'y'"),
    "infinite target": (["train", "infy.npz"], 4, "target 'y' in infy.npz has infinite values"),
    "missing feature columns": (["predict", "out/animals.fbp", "colors.csv", "--out", "p.csv"], 4,
                                "lacks feature columns the model was trained on: 'x2', 'x3'"),
    "no target column to evaluate": (["evaluate", "out/animals.fbp", "features.csv"], 4,
                                     "which column of features.csv is the target? every column is one of "
                                     "the model's features"),
    "missing model file": (["predict", "nope.fbp", "animals.csv", "--out", "p.csv"], 5,
                           "model file not found"),
    "corrupt model file": (["evaluate", "garbage.fbp", "animals.csv"], 5,
                           "cannot load model file garbage.fbp"),
    "truncated model file": (["predict", "truncated.fbp", "animals.csv", "--out", "p.csv"], 5,
                             "cannot load model file truncated.fbp"),
    "--proba on a regressor": (["predict", "out/reg.fbp", "reg.npz", "--out", "p.csv", "--proba"], 2,
                               "--proba needs a classifier"),
    "plot file without an image format": (["train", "animals.csv", "--plot-out", "out/curve.xyz"], 2,
                                          "--plot-out out/curve.xyz: the file name must end in the image "
                                          "format, one of "),
    "estimator refuses the parameters": (["train", "animals.csv", "--hidden-layer-sizes", "0"], 2,
                                         "invalid estimator parameter: hidden_layer_sizes must be > 0"),
    "continuous target for a classifier": (["evaluate", "out/ints.fbp", "continuous.csv"], 4,
                                           "cannot score out/ints.fbp on continuous.csv: "),
    "unknown --param": (["train", "animals.csv", "--param", "hiden_layer_sizes=3"], 2,
                        "unknown estimator parameter 'hiden_layer_sizes'"),
    "unparsable flag value": (["train", "animals.csv", "--max-iter", "many"], 2,
                              "The 'max_iter' parameter of MLPClassifier must be an int in the "
                              "range [1, inf). Got 'many' instead."),
    "value out of range": (["train", "animals.csv", "--alpha", "-1"], 2, "invalid estimator parameter"),
    "parameter of the other task": (["train", "animals.csv", "--loss", "poisson"], 2,
                                    "'loss' applies to regression only"),
    "--model-out with --no-model-out": (["train", "animals.csv", "--model-out", "m.fbp", "--no-model-out"],
                                        2, "argument --no-model-out: not allowed with argument --model-out"),
    "empty --model-out": (["train", "animals.csv", "--model-out", ""], 2, "--model-out needs a path"),
    "output over the data file": (["train", "animals.csv", "--metrics-out", "animals.csv"], 2,
                                  "output animals.csv is the data file"),
    "single-column CSV": (["train", "colons.tsv"], 4,
                          "colons.tsv has no feature columns (only 'x1:x2:label'); with separator '\\t' "
                          "(detected) the file reads as a single column: if it uses another separator, "
                          "pass it with --sep"),
    "--sep that splits nothing": (["evaluate", "out/animals.fbp", "animals.csv", "--sep", ";"], 4,
                                  "with separator ';' (from --sep) the file reads as a single column"),
    "two-character --sep": (["train", "animals.csv", "--sep", ";;"], 2,
                            "argument --sep: must be one character"),
    "--sep on an .npz": (["train", "reg.npz", "--sep", ";"], 2, "--sep applies to CSV files; reg.npz is read "
                                                              "as npz"),
    "--sep without DATA": (["train", "--sep", ";"], 2, "--sep needs a DATA file"),
}


def _expected(case):
    argv, code, text = ERROR_CASES[case]
    if case == "Parquet":
        if importlib.util.find_spec("pyarrow") is None:
            text = "reading Parquet needs pyarrow"
        else:
            text = "cannot read data.parquet as Parquet"
    return argv, code, text


@pytest.fixture(scope="module")
def bad_files(workdir, csv_run, npz_run):
    """The broken inputs of ERROR_CASES, next to the good ones and the trained models."""
    (workdir / "ragged.csv").write_text("a,b,label\n1,2,x\n3,4,y,5,6\n")
    (workdir / "empty.csv").write_text("")
    (workdir / "colors.csv").write_text(
        "x1,color,label\n" + "".join(f"{i},{'red' if i % 2 else 'blue'},{i % 2}\n" for i in range(10))
    )
    np.savez(workdir / "noy.npz", X=np.ones((5, 2)))
    np.savez(workdir / "infy.npz", X=np.ones((5, 2)), y=[1.0, 2.0, np.inf, 0.5, 1.5])
    (workdir / "garbage.fbp").write_bytes(b"this is not a model file at all")
    model_bytes = (workdir / "out/animals.fbp").read_bytes()
    (workdir / "truncated.fbp").write_bytes(model_bytes[: len(model_bytes) // 2])
    (workdir / "data.parquet").write_bytes(b"PAR1 not really")
    (workdir / "bad.json").write_text("{not json")
    (workdir / "colons.tsv").write_text("x1:x2:label\n1:2:a\n")
    pd.read_csv(workdir / "animals.csv")[FEATURES].to_csv(workdir / "features.csv", index=False)
    frame = pd.read_csv(workdir / "animals.csv")[FEATURES]
    frame["label"] = np.arange(len(frame)) % 2
    frame.to_csv(workdir / "ints.csv", index=False)
    _check_ok(run_cli("train", "ints.csv", "--max-iter", "2", "--model-out", "out/ints.fbp", cwd=workdir))
    frame["label"] = np.linspace(0.1, 0.9, len(frame))
    frame.to_csv(workdir / "continuous.csv", index=False)
    return workdir


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_error_exit_code_and_message(bad_files, case, monkeypatch, capsys):
    """Every error case through cli.main (the code path of the command, without a new interpreter)."""
    argv, code, text = _expected(case)
    monkeypatch.chdir(bad_files)
    assert cli.main(argv) == code
    out, err = capsys.readouterr()
    assert text in err
    assert "Traceback" not in err and out == ""


def test_error_exit_codes_in_subprocesses(bad_files):
    """One case per exit code through the real command: the code reaches the shell."""
    cases = ["unknown --param", "ragged CSV", "non-numeric column", "corrupt model file"]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda c: run_cli(*_expected(c)[0], cwd=bad_files), cases))
    for case, result in zip(cases, results):
        _, code, text = _expected(case)
        assert (result.returncode, case) == (code, case), result.stderr
        assert text in result.stderr and "Traceback" not in result.stderr


def test_unexpected_error_exit_1_and_debug_traceback(monkeypatch, capsys):
    def boom(*args, **kwargs):
        raise RuntimeError("something broke")

    monkeypatch.setattr(cli, "read_dataset", boom)
    assert cli.main(["train", "whatever.csv"]) == 1
    err = capsys.readouterr().err
    assert "unexpected error: RuntimeError: something broke" in err and "--debug" in err
    assert "Traceback" not in err
    assert cli.main(["train", "whatever.csv", "--debug"]) == 1
    assert "Traceback" in capsys.readouterr().err


# ----------------------------------------------------------------------
# Pieces, in-process


def test_every_estimator_parameter_is_a_flag():
    parser = cli.build_parser()
    train = next(a for a in parser._actions if a.dest == "command").choices["train"]
    flags = {option for action in train._actions for option in action.option_strings}
    for cls in (MLPClassifier, MLPRegressor):
        for name in cls().get_params():
            assert "--" + name.replace("_", "-") in flags, name


@pytest.mark.parametrize("name, text, expected", [
    ("hidden_layer_sizes", "100,50", (100, 50)),
    ("hidden_layer_sizes", "(64, 32)", (64, 32)),
    ("hidden_layer_sizes", "7", (7,)),
    ("batch_size", "auto", "auto"),
    ("batch_size", "32", 32),
    ("n_iter_no_change", "inf", np.inf),
    ("n_iter_no_change", "5", 5),
    ("random_state", "none", None),
    ("random_state", "42", 42),
    ("alpha", "1e-3", 1e-3),
    ("early_stopping", "false", False),
    ("solver", "lbfgs", "lbfgs"),
])
def test_parameter_values_parse(name, text, expected):
    value = cli._param_specs()[name].parse(text)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize("name, value, expected", [
    ("hidden_layer_sizes", [16, 8], (16, 8)),
    ("hidden_layer_sizes", 5, (5,)),
    ("shuffle", False, False),
    ("verbose", True, True),
    ("max_iter", 30, 30),
])
def test_config_values_coerce(name, value, expected):
    coerced = cli._param_specs()[name].coerce(value)
    assert coerced == expected and type(coerced) is type(expected)


@pytest.mark.parametrize("name, value, message", [
    ("max_iter", True, "max_iter takes int, default=200, not true"),
    ("alpha", False, "alpha takes"),
])
def test_config_booleans_for_other_parameters_are_rejected(name, value, message):
    with pytest.raises(ValueError, match=message):
        cli._param_specs()[name].coerce(value)


@pytest.mark.parametrize("args, name", [
    (["--solver", "newton"], "solver"),
    (["--max-iter", "1.5"], "max_iter"),
    (["--batch-size", "big"], "batch_size"),
    (["--hidden-layer-sizes", "1.5"], "hidden_layer_sizes"),
    (["--param", "hidden_layer_sizes=[true]"], "hidden_layer_sizes"),
    (["--param", 'hidden_layer_sizes={"a": 1}'], "hidden_layer_sizes"),
    (["--activation", "swish2"], "activation"),
])
def test_bad_parameter_values_are_refused_by_the_estimator_before_training(args, name, capsys):
    assert cli.main(["train", "--no-progress", *args]) == 2
    err = capsys.readouterr().err
    assert "invalid estimator parameter" in err and name in err


def test_the_options_beyond_scikit_learn_are_flags_that_reach_the_model(workdir, tmp_path, monkeypatch):
    for name in ("animals.csv", "reg.npz"):
        shutil.copy(workdir / name, tmp_path)
    monkeypatch.chdir(tmp_path)
    assert cli.main([
        "train", "animals.csv", "--no-progress", "--max-iter", "3", "--hidden-layer-sizes", "8,4",
        "--activation", "gelu,leaky_relu", "--dropout", "0.2,0.1", "--max-grad-norm", "1.5",
        "--learning-rate", "cosine", "--warmup-fraction", "0.25", "--model-out", "clf.fbp",
    ]) == 0
    model = _load(tmp_path / "clf.fbp")
    assert model.get_params()["activation"] == ("gelu", "leaky_relu")
    assert (model.dropout, model.max_grad_norm, model.learning_rate, model.warmup_fraction) == (
        (0.2, 0.1), 1.5, "cosine", 0.25)
    assert model.n_iter_ == 3
    assert cli.main([
        "train", "reg.npz", "--no-progress", "--max-iter", "3", "--loss", "huber", "--huber-delta", "0.5",
        "--activation", "softplus", "--model-out", "reg.fbp",
    ]) == 0
    regressor = _load(tmp_path / "reg.fbp")
    assert (regressor.loss, regressor.huber_delta, regressor.activation) == ("huber", 0.5, "softplus")


@pytest.mark.parametrize("args, message", [
    (["--hidden-layer-sizes", "8", "--activation", "gelu,tanh"], "one name per hidden layer"),
    (["--solver", "lbfgs", "--dropout", "0.2"], "dropout needs solver='sgd' or 'adam'"),
    (["--dropout", "1.0"], "dropout"),
    (["--warmup-fraction", "0.1"], "needs learning_rate='cosine'"),
    (["--max-grad-norm", "0"], "max_grad_norm"),
])
def test_bad_combinations_of_the_new_options_are_refused_before_training(args, message, capsys):
    assert cli.main(["train", "--no-progress", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_every_parameter_has_help_from_the_docstring():
    specs = cli._param_specs()
    for name, spec in specs.items():
        assert spec.doc and spec.doc != name and spec.type_line, name
    assert specs["activation"].type_line.startswith("{")
    assert "default='relu'" in specs["activation"].type_line


@pytest.mark.parametrize("text, expected", [
    ("none", None), ("3", 3), ("2.5", 2.5), ("inf", float("inf")), ("relu", "relu"),
    ("gelu,tanh", ("gelu", "tanh")), ("(0.1, 0.2)", (0.1, 0.2)), ("[1, 2]", (1, 2)),
    ('{"0": 2}', {"0": 2}),
])
def test_values_parse_without_knowing_the_parameter(text, expected):
    value = cli.parse_value(text)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize("y, task", [
    (np.array(["a", "b", "a"]), "classification"),
    (np.array([True, False, True]), "classification"),
    (np.array([0, 1, 2, 1]), "classification"),
    (np.array([0.0, 1.0, 1.0]), "classification"),
    (np.arange(50), "regression"),
    (np.array([0.5, 1.0, 2.0]), "regression"),
])
def test_auto_task_rule(y, task):
    assert cli.infer_task(y)[0] == task

"""Pictures: fastbp.plotting drawn headless (Agg), and every example script run in quick mode."""

import math
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
Image = pytest.importorskip("PIL.Image")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.animation import FuncAnimation  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from sklearn.datasets import make_classification, make_regression  # noqa: E402
from sklearn.exceptions import ConvergenceWarning, NotFittedError  # noqa: E402

from fastbp import MLPClassifier, MLPRegressor  # noqa: E402
from fastbp import plotting  # noqa: E402
from fastbp.plotting import (  # noqa: E402
    animate_descent_1d,
    gradient_descent_path,
    plot_descent_1d,
    plot_descent_surface,
    plot_loss_curve,
    plot_validation_curve,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(autouse=True)
def close_figures():
    """Close every figure a test opened."""
    yield
    plt.close("all")


def clone_fitted(model):
    """An independent copy of a fitted model (the module's fixtures are shared)."""
    return pickle.loads(pickle.dumps(model))


def _fit(model, X, y, **fit_params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, y, **fit_params)


@pytest.fixture(scope="module")
def classification():
    return make_classification(n_samples=120, n_features=6, n_informative=4, random_state=0)


@pytest.fixture(scope="module")
def regression():
    X, y = make_regression(n_samples=80, n_features=4, noise=1.0, random_state=0)
    return X, y / np.std(y)


@pytest.fixture(scope="module")
def clf_early_stopping(classification):
    model = MLPClassifier(hidden_layer_sizes=(8,), early_stopping=True, max_iter=30,
                          n_iter_no_change=100, random_state=0)
    return _fit(model, *classification)


@pytest.fixture(scope="module")
def reg_adam(regression):
    return _fit(MLPRegressor(hidden_layer_sizes=(8,), max_iter=15, random_state=0), *regression)


@pytest.fixture(scope="module")
def reg_lbfgs(regression):
    model = MLPRegressor(hidden_layer_sizes=(8,), solver="lbfgs", max_iter=20, random_state=0)
    return _fit(model, *regression)


# ----------------------------------------------------------------------
# Curves of fitted estimators


def test_plot_loss_curve_draws_loss_curve(reg_adam):
    ax = plot_loss_curve(reg_adam)
    assert isinstance(ax, Axes)
    (line,) = ax.lines
    n = len(reg_adam.loss_curve_)
    assert n == reg_adam.n_iter_ == 15
    np.testing.assert_array_equal(line.get_xdata(), np.arange(1, n + 1))
    np.testing.assert_array_equal(line.get_ydata(), reg_adam.loss_curve_)
    assert ax.get_xlabel() == "epoch"


def test_plot_loss_curve_draws_on_given_axes_with_style(reg_adam, clf_early_stopping):
    fig, ax = plt.subplots()
    assert plot_loss_curve(reg_adam, ax=ax, label="reg", color="red") is ax
    assert plot_loss_curve(clf_early_stopping, ax=ax, label="clf") is ax
    assert [line.get_label() for line in ax.lines] == ["reg", "clf"]
    assert ax.lines[0].get_color() == "red"
    np.testing.assert_array_equal(ax.lines[1].get_ydata(), clf_early_stopping.loss_curve_)


def test_plot_loss_curve_accepts_scikit_learn_estimator(classification):
    from sklearn.neural_network import MLPClassifier as SkMLPClassifier

    model = _fit(SkMLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0),
                 *classification)
    ax = plot_loss_curve(model)
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), model.loss_curve_)


def test_plot_loss_curve_rejects_lbfgs_and_unfitted(reg_lbfgs):
    assert not hasattr(reg_lbfgs, "loss_curve_")
    with pytest.raises(ValueError, match="solver='lbfgs'"):
        plot_loss_curve(reg_lbfgs)
    with pytest.raises(NotFittedError):
        plot_loss_curve(MLPRegressor())


def test_plot_validation_curve_draws_scores_and_best_epoch(clf_early_stopping):
    model = clf_early_stopping
    ax = plot_validation_curve(model)
    assert isinstance(ax, Axes)
    curve, best = ax.lines
    scores = np.asarray(model.validation_scores_)
    np.testing.assert_array_equal(curve.get_xdata(), np.arange(1, len(scores) + 1))
    np.testing.assert_array_equal(curve.get_ydata(), scores)
    k = int(np.argmax(scores))
    assert best.get_xdata()[0] == k + 1
    assert best.get_ydata()[0] == model.best_validation_score_
    assert ax.get_ylabel() == "validation accuracy"
    assert best.get_label() == f"validation score: best (epoch {k + 1})"


@pytest.fixture(scope="module")
def digits_split():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = X / 16
    return X[:1200], y[:1200], X[1200:], y[1200:]


def test_best_epoch_marker_is_the_restored_epoch_with_the_loss_metric(digits_split):
    """With early_stopping_metric="loss" the kept weights are those of the lowest validation loss."""
    Xt, yt, Xv, yv = digits_split
    model = _fit(MLPClassifier((64,), max_iter=200, early_stopping=True, early_stopping_metric="loss",
                               n_iter_no_change=5, learning_rate_init=0.01, random_state=1),
                 Xt, yt, X_val=Xv, y_val=yv)
    losses, scores = np.asarray(model.validation_loss_curve_), np.asarray(model.validation_scores_)
    assert np.argmin(losses) != np.argmax(scores)  # precondition: the two metrics disagree
    best = plot_validation_curve(model).lines[-1]
    epoch = int(best.get_xdata()[0])
    assert losses[epoch - 1] == model.best_validation_loss_
    assert best.get_ydata()[0] == model.best_validation_score_ == model.score(Xv, yv)


def test_best_epoch_marker_is_in_the_last_warm_fit(digits_split):
    """fastbp restores the best epoch of the last fit, even when an earlier fit scored higher."""
    Xt, yt, Xv, yv = digits_split
    model = MLPClassifier((32,), max_iter=40, early_stopping=True, n_iter_no_change=3,
                          learning_rate_init=0.01, warm_start=True, random_state=0)
    _fit(model, Xt[:600], yt[:600], X_val=Xv, y_val=yv)
    n_first = len(model.validation_scores_)
    _fit(model.set_params(learning_rate_init=0.3), Xt[:600], yt[:600], X_val=Xv, y_val=yv)
    scores = np.asarray(model.validation_scores_)
    assert scores[:n_first].max() > scores[n_first:].max()  # precondition
    best = plot_validation_curve(model).lines[-1]
    assert best.get_xdata()[0] > n_first
    assert best.get_ydata()[0] == model.best_validation_score_ == model.score(Xv, yv)


def test_plot_validation_curve_of_regressor(regression):
    model = _fit(MLPRegressor(hidden_layer_sizes=(8,), early_stopping=True, max_iter=5,
                              random_state=0), *regression)
    fig, ax = plt.subplots()
    assert plot_validation_curve(model, ax=ax, label="_hidden") is ax
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), model.validation_scores_)
    assert "R^2" in ax.get_ylabel()
    assert ax.lines[1].get_label() == "_nolegend_"


def test_plots_go_by_how_the_model_was_fitted_not_its_solver_now(reg_adam, reg_lbfgs):
    adam_now_lbfgs, lbfgs_now_adam = clone_fitted(reg_adam), clone_fitted(reg_lbfgs)
    adam_now_lbfgs.set_params(solver="lbfgs")
    lbfgs_now_adam.set_params(solver="adam")
    line = plot_loss_curve(adam_now_lbfgs).lines[-1]
    np.testing.assert_array_equal(line.get_ydata(), reg_adam.loss_curve_)
    with pytest.raises(ValueError, match="fitted with solver='lbfgs'"):
        plot_loss_curve(lbfgs_now_adam)


def test_plot_validation_curve_needs_early_stopping(reg_adam, reg_lbfgs):
    assert reg_adam.validation_scores_ is None
    with pytest.raises(ValueError, match="early_stopping=True"):
        plot_validation_curve(reg_adam)
    with pytest.raises(ValueError, match="solver='lbfgs'"):
        plot_validation_curve(reg_lbfgs)
    with pytest.raises(NotFittedError):
        plot_validation_curve(MLPClassifier(early_stopping=True))


# ----------------------------------------------------------------------
# Gradient descent


def test_gradient_descent_path_scalar_is_geometric():
    # x <- x - 0.1 * 2x = 0.8 x: the second text's example.
    path = gradient_descent_path(lambda x: 2 * x, 5, 0.1, 50)
    assert path.shape == (51,)
    assert path.dtype == np.float64
    np.testing.assert_allclose(path, 5 * 0.8 ** np.arange(51), rtol=1e-12)


def test_gradient_descent_path_vector_and_matrix():
    x0 = np.array([1.5, 1.5])
    path = gradient_descent_path(lambda v: 2 * v, x0, 0.1, 50)
    assert path.shape == (51, 2)
    np.testing.assert_allclose(path, 1.5 * 0.8 ** np.arange(51)[:, None] * np.ones(2),
                               rtol=1e-12)
    np.testing.assert_array_equal(x0, [1.5, 1.5])  # the start is not modified

    # f(x, y) = x^2 + 10 y^2: each coordinate shrinks by its own factor.
    path = gradient_descent_path(lambda v: v * np.array([2.0, 20.0]), [1.0, 1.0], 0.01, 5)
    np.testing.assert_allclose(path[:, 0], 0.98 ** np.arange(6))
    np.testing.assert_allclose(path[:, 1], 0.8 ** np.arange(6))

    path = gradient_descent_path(lambda w: 2 * w, np.ones((3, 2)), 0.25, 4)
    assert path.shape == (5, 3, 2)
    np.testing.assert_allclose(path[:, 2, 1], 0.5 ** np.arange(5))


def test_gradient_descent_path_edge_cases_and_errors():
    np.testing.assert_array_equal(gradient_descent_path(lambda x: 2 * x, 3.0, 0.1, 0), [3.0])

    def mutating(x):
        x *= 100  # gets a copy: the path must not change
        return 2 * x / 100

    np.testing.assert_allclose(gradient_descent_path(mutating, 1.0, 0.1, 2), [1.0, 0.8, 0.64])
    with pytest.raises(ValueError, match="n_steps"):
        gradient_descent_path(lambda x: 2 * x, 1.0, 0.1, -1)
    with pytest.raises(ValueError, match="n_steps"):
        gradient_descent_path(lambda x: 2 * x, 1.0, 0.1, 2.5)
    with pytest.raises(ValueError, match="learning_rate"):
        gradient_descent_path(lambda x: 2 * x, 1.0, np.nan, 3)
    with pytest.raises(ValueError, match="shape"):
        gradient_descent_path(lambda v: np.zeros(3), [1.0, 1.0], 0.1, 3)


def test_plot_descent_1d_draws_path_on_curve():
    path = gradient_descent_path(lambda x: 2 * x, 5.0, 0.1, 50)
    ax = plot_descent_1d(lambda x: x**2, path, x_range=(-5.5, 5.5))
    assert isinstance(ax, Axes)
    curve, trail, start, end = ax.lines
    grid = curve.get_xdata()
    assert grid[0] == -5.5 and grid[-1] == 5.5
    np.testing.assert_allclose(curve.get_ydata(), grid**2)
    np.testing.assert_allclose(trail.get_xdata(), 5 * 0.8 ** np.arange(51), rtol=1e-12)
    np.testing.assert_allclose(trail.get_ydata(), path**2)
    assert start.get_xdata()[0] == 5.0 and end.get_xdata()[0] == path[-1]
    assert ax.get_legend() is not None


def test_plot_descent_1d_scalar_function_and_own_axes():
    # math.cos takes no arrays: the curve is evaluated point by point.
    path = gradient_descent_path(lambda x: -math.sin(x), 1.0, 0.5, 5)
    fig, ax = plt.subplots()
    assert plot_descent_1d(math.cos, path, ax=ax) is ax
    np.testing.assert_allclose(ax.lines[1].get_ydata(), np.cos(path))
    low, high = ax.lines[0].get_xdata()[[0, -1]]
    assert low < path.min() and high > path.max()  # default range covers the path
    with pytest.raises(ValueError, match="1-D"):
        plot_descent_1d(math.cos, np.zeros((3, 2)))


def test_animate_descent_1d_writes_gif(tmp_path):
    path = gradient_descent_path(lambda x: 2 * x, 5.0, 0.1, 7)
    fig, ax = plt.subplots(figsize=(3, 2), dpi=50)
    filename = tmp_path / "descent.gif"
    anim = animate_descent_1d(lambda x: x**2, path, filename, fps=10, ax=ax)
    assert isinstance(anim, FuncAnimation)
    # After the last frame the trail is the whole path.
    np.testing.assert_allclose(ax.lines[1].get_xdata(), path)
    with Image.open(filename) as image:
        assert image.format == "GIF"
        assert image.size == (150, 100)  # figsize * dpi
        assert image.n_frames == len(path)
        assert image.info["duration"] == 100  # 1000 ms / fps


def test_animate_descent_1d_new_figure_and_dpi(tmp_path):
    path = gradient_descent_path(lambda x: 2 * x, 2.0, 0.25, 2)
    filename = tmp_path / "small.gif"
    anim = animate_descent_1d(lambda x: x**2, path, filename, dpi=20)
    assert isinstance(anim, FuncAnimation)
    width, height = plt.rcParams["figure.figsize"]
    with Image.open(filename) as image:
        assert image.size == (round(width * 20), round(height * 20))
        assert image.n_frames == 3


def test_plot_descent_surface_draws_path_on_surface():
    path = gradient_descent_path(lambda v: 2 * v, [1.5, 1.5], 0.1, 50)
    ax = plot_descent_surface(lambda x, y: x**2 + y**2, path)
    assert ax.name == "3d"
    xs, ys, zs = ax.lines[0].get_data_3d()
    np.testing.assert_allclose(xs, path[:, 0])
    np.testing.assert_allclose(ys, path[:, 1])
    np.testing.assert_allclose(zs, 2 * (1.5 * 0.8 ** np.arange(51)) ** 2, rtol=1e-12)
    assert len(ax.collections) >= 1  # the surface (and the start marker)
    assert ax.get_xlim()[0] <= -1.5 and ax.get_xlim()[1] >= 1.5


def test_plot_descent_surface_given_axes_and_errors():
    fig = plt.figure()
    ax = fig.add_subplot(projection="3d")
    path = np.array([[1.0, -1.0], [0.5, -0.5]])
    assert plot_descent_surface(lambda x, y: math.hypot(x, y), path, ax=ax, n_grid=5) is ax
    np.testing.assert_allclose(ax.lines[0].get_data_3d()[2], np.hypot(path[:, 0], path[:, 1]))
    with pytest.raises(ValueError, match="3-D axes"):
        plot_descent_surface(lambda x, y: x + y, path, ax=plt.subplots()[1])
    with pytest.raises(ValueError, match=r"\(n_points, 2\)"):
        plot_descent_surface(lambda x, y: x + y, np.zeros(4))


def test_missing_matplotlib_names_the_extra(monkeypatch, reg_adam):
    # A None entry in sys.modules makes "import matplotlib.pyplot" raise ImportError.
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    for draw in (
        lambda: plot_loss_curve(reg_adam),
        lambda: plot_descent_1d(lambda x: x**2, [1.0, 0.5]),
        lambda: plot_descent_surface(lambda x, y: x + y, [[1.0, 1.0]]),
        lambda: animate_descent_1d(lambda x: x**2, [1.0], "never.gif"),
    ):
        with pytest.raises(ImportError, match=r"fastbp\[plot\]"):
            draw()
    # The pure NumPy part needs no matplotlib.
    assert gradient_descent_path(lambda x: 2 * x, 1.0, 0.1, 1).shape == (2,)
    assert set(plotting.__all__) >= {"plot_loss_curve", "gradient_descent_path"}


def test_importing_plotting_does_not_import_matplotlib():
    code = "import sys, fastbp.plotting; assert 'matplotlib' not in sys.modules, 'imported'"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr


# ----------------------------------------------------------------------
# Example scripts

# Pixel sizes are the scripts' figsize * dpi (savefig without bbox_inches="tight").
EXAMPLE_OUTPUTS = {
    "gradient_descent.py": {
        "gradient_descent_1d.png": (640, 480),  # (6.4, 4.8) * 100
        "gradient_descent_1d.gif": (512, 384),  # (6.4, 4.8) * 80
        "gradient_descent_surface.png": (700, 600),  # (7, 6) * 100
    },
    "universal_approximation.py": {"universal_approximation.png": (1100, 450)},
    "overfitting.py": {"overfitting.png": (1500, 450)},
    "loss_curves.py": {"loss_curves.png": (1100, 450)},
}
QUICK_GIF_FRAMES = 11  # --quick animates x0 and the first 10 steps


def test_every_tabulated_example_exists():
    assert set(EXAMPLE_OUTPUTS) <= {path.name for path in EXAMPLES.glob("*.py")}


@pytest.mark.parametrize("script", sorted(path.name for path in EXAMPLES.glob("*.py")))
def test_example_runs_quick_and_writes_images(script, tmp_path):
    # Every script in examples/ follows the convention [--quick] [--out DIR]; the
    # ones in EXAMPLE_OUTPUTS also have their files and pixel sizes checked.
    out = tmp_path / "pictures"  # does not exist yet: the script creates it
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script), "--quick", "--out", str(out)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    written = sorted(p.name for p in out.iterdir())
    expected = EXAMPLE_OUTPUTS.get(script)
    if expected is not None:
        assert written == sorted(expected)
    assert written, "the script wrote nothing"
    for name in written:
        path = out / name
        assert str(path) in result.stdout  # the script says what it wrote
        assert path.stat().st_size > 1000
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            if expected is not None:
                assert image.size == expected[name], name
            if name.endswith(".gif"):
                if expected is not None:
                    assert image.n_frames == QUICK_GIF_FRAMES
                assert image.n_frames > 1
                extrema = [image.convert("L").getextrema()]
                image.seek(image.n_frames - 1)
                extrema.append(image.convert("L").getextrema())
                assert all(low < high for low, high in extrema)  # frames are not blank
            else:
                assert image.format == ("PNG" if name.endswith(".png") else image.format)
                low, high = image.convert("L").getextrema()
                assert low < high  # not a blank image

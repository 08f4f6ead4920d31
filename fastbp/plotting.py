"""Pictures of training and of gradient descent, drawn with matplotlib.

The loss and validation curves of a fitted estimator, and gradient descent
as the backpropagation tutorials fastbp grew from draw it: the path of
``x <- x - learning_rate * f'(x)`` drawn on the curve of ``f`` (as a still and
as an animated GIF), and the path of a 2-D descent on the surface of
``f(x, y)``. matplotlib is an optional dependency (``pip install
"fastbp[plot]"``); it is imported only when a picture is drawn, so
``gradient_descent_path`` and ``import fastbp.plotting`` work without it.

Every drawing function takes an optional ``ax`` and returns what it drew on,
so pictures compose into subplots and can be restyled afterwards.
"""

import numbers

import numpy as np
from sklearn.base import is_classifier
from sklearn.utils.validation import check_is_fitted

__all__ = [
    "plot_loss_curve",
    "plot_validation_curve",
    "gradient_descent_path",
    "plot_descent_1d",
    "animate_descent_1d",
    "plot_descent_surface",
]

_MISSING_MATPLOTLIB = (
    "fastbp.plotting needs matplotlib, which is an optional dependency of "
    'fastbp; install it with: pip install "fastbp[plot]"'
)


def _pyplot():
    """Import and return ``matplotlib.pyplot``, with a clear error when it is missing."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(_MISSING_MATPLOTLIB) from exc
    return plt


def _new_axes(ax, **subplot_kw):
    """``ax`` itself, or the axes of a new figure when ``ax`` is None."""
    plt = _pyplot()
    if ax is None:
        _, ax = plt.subplots(subplot_kw=subplot_kw or None)
    return ax


# ----------------------------------------------------------------------
# Curves of a fitted estimator


def _check_stochastic(estimator, attribute):
    """Raise a clear error unless ``estimator`` was fitted by a stochastic solver."""
    check_is_fitted(estimator)
    # the attribute tells how the model was fitted: its solver may have been set since
    if not hasattr(estimator, attribute):
        raise ValueError(
            f"{type(estimator).__name__} has no {attribute}: it is recorded only by the "
            f"stochastic solvers ('sgd', 'adam'), and this model was fitted with "
            f"solver='lbfgs'. Refit with solver='adam' or 'sgd' to draw it."
        )


def plot_loss_curve(estimator, ax=None, **kwargs):
    """Draw the training loss of a fitted estimator against the epoch.

    Parameters
    ----------
    estimator : MLPClassifier or MLPRegressor
        A model fitted with a stochastic solver (``'sgd'`` or ``'adam'``); its
        ``loss_curve_`` (the training loss, L2 penalty included, after each
        epoch) is drawn. scikit-learn's estimators work too.
    ax : matplotlib Axes, default=None
        Axes to draw on; a new figure is made when None.
    **kwargs
        Passed to ``ax.plot`` (for example ``label`` or ``color``).

    Returns
    -------
    ax : matplotlib Axes
        The axes drawn on; the curve is ``ax.lines[-1]``, with epochs
        1, 2, ..., ``len(loss_curve_)`` as x data.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If the estimator is not fitted.
    ValueError
        If the estimator was fitted with ``solver='lbfgs'``, which records no
        loss curve.
    """
    _check_stochastic(estimator, "loss_curve_")
    loss = np.asarray(estimator.loss_curve_, dtype=float)
    ax = _new_axes(ax)
    epochs = np.arange(1, loss.shape[0] + 1)
    kwargs.setdefault("label", "training loss")
    ax.plot(epochs, loss, **kwargs)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title("Training loss")
    return ax


def plot_validation_curve(estimator, ax=None, **kwargs):
    """Draw the validation score of a fitted estimator against the epoch.

    The score is the one ``estimator.score`` returns (accuracy for a
    classifier, R^2 for a regressor), measured on the held-out
    ``validation_fraction`` after each epoch. The best epoch, whose weights
    early stopping restores, is marked with a dot.

    Parameters
    ----------
    estimator : MLPClassifier or MLPRegressor
        A model fitted with a stochastic solver and ``early_stopping=True``.
    ax : matplotlib Axes, default=None
        Axes to draw on; a new figure is made when None.
    **kwargs
        Passed to ``ax.plot`` for the curve.

    Returns
    -------
    ax : matplotlib Axes
        The axes drawn on; ``ax.lines[-2]`` is the curve (epochs 1, 2, ...
        against ``validation_scores_``), ``ax.lines[-1]`` the best-epoch marker.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If the estimator is not fitted.
    ValueError
        If the estimator was fitted with ``solver='lbfgs'`` or with
        ``early_stopping=False``; neither records validation scores.
    """
    _check_stochastic(estimator, "validation_scores_")
    if estimator.validation_scores_ is None:
        raise ValueError(
            f"{type(estimator).__name__} has no validation scores: validation_scores_ "
            "is recorded only when the model is fitted with early_stopping=True."
        )
    scores = np.asarray(estimator.validation_scores_, dtype=float)
    ax = _new_axes(ax)
    epochs = np.arange(1, scores.shape[0] + 1)
    kwargs.setdefault("label", "validation score")
    (line,) = ax.plot(epochs, scores, **kwargs)
    best = _restored_epoch(estimator, scores)
    ax.plot(
        epochs[best], scores[best], "o", color=line.get_color(),
        label=_best_label(kwargs["label"], epochs[best]),
    )
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy" if is_classifier(estimator) else "validation $R^2$")
    ax.set_title("Validation score")
    return ax


def _restored_epoch(estimator, scores):
    """Index in ``scores`` of the epoch whose weights early stopping kept.

    The first best epoch by the metric early stopping watched (fastbp's
    ``early_stopping_metric``: the score, or the validation loss), among the
    epochs of the last fit: fastbp starts the search afresh at every fit,
    scikit-learn's estimators carry it over warm starts.
    """
    if getattr(estimator, "early_stopping_metric", "score") == "loss":
        watched = -np.asarray(estimator.validation_loss_curve_, dtype=float)
    else:
        watched = scores
    first = max(0, watched.shape[0] - estimator.n_iter_) if hasattr(estimator, "early_stopping_metric") else 0
    last_fit = watched[first:]
    return first + (int(np.nanargmax(last_fit)) if np.isfinite(last_fit).any() else 0)


def _best_label(label, epoch):
    """Legend entry of the best-epoch marker, hidden when the curve's is."""
    if label is None or str(label).startswith("_"):
        return "_nolegend_"
    return f"{label}: best (epoch {epoch})"


# ----------------------------------------------------------------------
# Gradient descent


def gradient_descent_path(grad, x0, learning_rate, n_steps):
    """Iterate plain gradient descent ``x <- x - learning_rate * grad(x)``.

    Pure NumPy; needs no matplotlib.

    Parameters
    ----------
    grad : callable
        The gradient of the function to minimise: takes an array shaped like
        ``x0`` and returns an array of the same shape.
    x0 : float or array-like
        The starting point, a scalar or a vector (any shape).
    learning_rate : float
        The step size.
    n_steps : int
        Number of steps, at least 0.

    Returns
    -------
    path : ndarray of shape (n_steps + 1,) + np.shape(x0)
        ``path[0]`` is ``x0`` and ``path[k]`` the point after ``k`` steps.

    Examples
    --------
    The tutorials' example, ``f(x) = x^2`` from ``x = 5`` with learning
    rate 0.1: every step multiplies ``x`` by 0.8.

    >>> from fastbp.plotting import gradient_descent_path
    >>> path = gradient_descent_path(lambda x: 2 * x, 5.0, 0.1, 50)
    >>> path.shape
    (51,)
    >>> float(path[2])
    3.2
    """
    if not isinstance(n_steps, numbers.Integral) or n_steps < 0:
        raise ValueError(f"n_steps must be a non-negative integer, got {n_steps!r}.")
    if not isinstance(learning_rate, numbers.Real) or not np.isfinite(learning_rate):
        raise ValueError(f"learning_rate must be a finite real number, got {learning_rate!r}.")
    x = np.array(x0, dtype=np.result_type(np.asarray(x0).dtype, np.float64))
    path = np.empty((n_steps + 1,) + x.shape, dtype=x.dtype)
    path[0] = x
    for k in range(n_steps):
        g = np.asarray(grad(x.copy()))
        if g.shape != x.shape:
            raise ValueError(
                f"grad returned an array of shape {g.shape} for a point of shape {x.shape}."
            )
        x = x - learning_rate * g
        path[k + 1] = x
    return path


def _evaluate(f, *coords):
    """``f(*coords)`` elementwise, whether or not ``f`` accepts arrays."""
    shape = np.shape(coords[0])
    try:
        values = np.asarray(f(*coords), dtype=float)
        if values.shape == shape:
            return values
    except (TypeError, ValueError):
        pass
    flat = [np.ravel(c) for c in coords]
    return np.array([f(*point) for point in zip(*flat)], dtype=float).reshape(shape)


def _padded_range(values, pad=0.1):
    """``(low, high)`` spanning ``values`` with a margin of ``pad`` times the span."""
    low, high = float(np.min(values)), float(np.max(values))
    margin = pad * (high - low) if high > low else 1.0
    return low - margin, high + margin


def _check_path_1d(path):
    path = np.asarray(path, dtype=float)
    if path.ndim != 1 or path.shape[0] == 0:
        raise ValueError(f"path must be a non-empty 1-D array of points, got shape {path.shape}.")
    return path


def plot_descent_1d(f, path, ax=None, x_range=None, n_grid=400):
    """Draw a 1-D gradient-descent path on the curve of ``f``.

    Parameters
    ----------
    f : callable
        The function descended, ``f(x) -> float``; vectorised functions are
        evaluated in one call, others point by point.
    path : array-like of shape (n_points,)
        Successive points, e.g. from :func:`gradient_descent_path`.
    ax : matplotlib Axes, default=None
        Axes to draw on; a new figure is made when None.
    x_range : (float, float), default=None
        Interval of the curve; by default the path's span plus 10%.
    n_grid : int, default=400
        Number of points the curve is drawn with.

    Returns
    -------
    ax : matplotlib Axes
        The axes drawn on: ``ax.lines[0]`` is the curve, ``ax.lines[1]`` the
        path with x data ``path`` and y data ``f(path)``, ``ax.lines[2]`` and
        ``ax.lines[3]`` mark its start and end.
    """
    path = _check_path_1d(path)
    ax = _new_axes(ax)
    low, high = _padded_range(path) if x_range is None else x_range
    grid = np.linspace(low, high, n_grid)
    ax.plot(grid, _evaluate(f, grid), color="0.3", label="$f(x)$")
    heights = _evaluate(f, path)
    ax.plot(path, heights, ".-", color="tab:red", lw=1, ms=6,
            label=f"gradient descent ({path.shape[0] - 1} steps)")
    ax.plot(path[:1], heights[:1], "o", color="tab:blue", ms=8, label=f"start x = {path[0]:g}")
    ax.plot(path[-1:], heights[-1:], "*", color="tab:green", ms=12,
            label=f"end x = {path[-1]:.3g}")
    ax.set_xlabel("$x$")
    ax.set_ylabel("$f(x)$")
    ax.legend(loc="best")
    return ax


def animate_descent_1d(f, path, filename, fps=5, ax=None, x_range=None, dpi=None):
    """Save an animated GIF of a 1-D gradient-descent path on the curve of ``f``.

    Frame ``k`` shows the curve, the points ``path[:k + 1]`` and the current
    point. The GIF is written with ``matplotlib.animation.PillowWriter``.

    Parameters
    ----------
    f : callable
        The function descended, ``f(x) -> float``.
    path : array-like of shape (n_points,)
        Successive points; one frame per point.
    filename : str or path-like
        Where to write the animation (a ``.gif``).
    fps : float, default=5
        Frames per second.
    ax : matplotlib Axes, default=None
        Axes to animate on; a new figure is made when None. The figure stays
        open: close it with ``plt.close(ax.figure)`` when done.
    x_range : (float, float), default=None
        Interval of the curve; by default the path's span plus 10%.
    dpi : float, default=None
        Resolution of the frames; the figure's own dpi when None, so a frame
        is ``figsize * dpi`` pixels.

    Returns
    -------
    anim : matplotlib.animation.FuncAnimation
        The animation, already saved.
    """
    _pyplot()
    from matplotlib.animation import FuncAnimation, PillowWriter

    path = _check_path_1d(path)
    ax = _new_axes(ax)
    low, high = _padded_range(path) if x_range is None else x_range
    grid = np.linspace(low, high, 400)
    ax.plot(grid, _evaluate(f, grid), color="0.3", label="$f(x)$")
    heights = _evaluate(f, path)
    (trail,) = ax.plot([], [], ".-", color="tab:red", lw=1, ms=6, label="path")
    (point,) = ax.plot([], [], "o", color="tab:blue", ms=9, label="current $x$")
    # No legend: the caption says what the moving point is.
    text = ax.text(0.5, 0.97, "", transform=ax.transAxes, ha="center", va="top",
                   bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"})
    ax.set_xlabel("$x$")
    ax.set_ylabel("$f(x)$")

    def draw(k):
        trail.set_data(path[: k + 1], heights[: k + 1])
        point.set_data(path[k : k + 1], heights[k : k + 1])
        text.set_text(f"step {k}: x = {path[k]:.4g}, f(x) = {heights[k]:.4g}")
        return trail, point, text

    anim = FuncAnimation(ax.figure, draw, frames=path.shape[0], blit=False, repeat=False)
    anim.save(filename, writer=PillowWriter(fps=fps), dpi=dpi)
    return anim


def plot_descent_surface(f, path, ax=None, xy_range=None, n_grid=60):
    """Draw a 2-D gradient-descent path on the 3-D surface of ``f(x, y)``.

    Parameters
    ----------
    f : callable
        The function descended, ``f(x, y) -> float``; vectorised functions
        are evaluated on the whole grid in one call, others point by point.
    path : array-like of shape (n_points, 2)
        Successive points ``(x, y)``, e.g. from :func:`gradient_descent_path`.
    ax : mpl_toolkits.mplot3d.Axes3D, default=None
        3-D axes to draw on (``projection="3d"``); a new figure is made when None.
    xy_range : (float, float), default=None
        Interval of both x and y; by default symmetric around 0 and 20%
        wider than the path.
    n_grid : int, default=60
        Grid points per side of the surface.

    Returns
    -------
    ax : mpl_toolkits.mplot3d.Axes3D
        The axes drawn on; ``ax.lines[0]`` is the path, with 3-D data
        ``(path[:, 0], path[:, 1], f(path[:, 0], path[:, 1]))``.
    """
    path = np.asarray(path, dtype=float)
    if path.ndim != 2 or path.shape[1] != 2 or path.shape[0] == 0:
        raise ValueError(f"path must have shape (n_points, 2), got {path.shape}.")
    ax = _new_axes(ax, projection="3d")
    if getattr(ax, "name", None) != "3d":
        raise ValueError('ax must be a 3-D axes, made with projection="3d".')
    if xy_range is None:
        half = 1.2 * float(np.max(np.abs(path))) or 1.0
        xy_range = (-half, half)
    side = np.linspace(xy_range[0], xy_range[1], n_grid)
    X, Y = np.meshgrid(side, side)
    Z = _evaluate(f, X, Y)
    heights = _evaluate(f, path[:, 0], path[:, 1])
    # Draw in call order: with depth sorting the surface can hide the path.
    ax.computed_zorder = False
    ax.plot_surface(X, Y, Z, cmap="viridis", alpha=0.6, linewidth=0, zorder=1)
    ax.plot(path[:, 0], path[:, 1], heights, ".-", color="tab:red", lw=1.5, ms=5,
            zorder=3, label=f"gradient descent ({path.shape[0] - 1} steps)")
    ax.scatter(path[:1, 0], path[:1, 1], heights[:1], color="tab:blue", s=40, zorder=4,
               depthshade=False, label=f"start ({path[0, 0]:g}, {path[0, 1]:g})")
    ax.set_xlabel("$x$")
    ax.set_ylabel("$y$")
    ax.set_zlabel("$f(x, y)$")
    ax.legend(loc="upper left")
    return ax

"""One hidden layer fitted to sin(x): universal approximation
==========================================================

A lesson of the backpropagation tutorials fastbp grew from: one hidden layer
with enough units approximates any continuous function to any precision, the
number of units is found by trial and error, and gradient-based training
reaches different local minima from different random starts. Here
:class:`fastbp.MLPRegressor` (tanh hidden layer, identity output, L-BFGS)
fits sin(x) on [−π, π] with 1, 2, 4, 8 and 16 hidden units, each from a
few random starts; the best start of each width is drawn, and the maximum
error over a fine grid is printed for every start.
(Beyond a few units the error levels off near 3e-3: L-BFGS, as scikit-learn
runs it, stops once an iteration lowers the loss by less than SciPy's
default ``ftol``, about 2e-9.)

Run it from the repository root::

    python examples/universal_approximation.py [--quick] [--out DIR]

It writes ``universal_approximation.png`` (1100x450) into ``DIR`` (default
``examples/output/``). ``--quick`` fits widths 1, 2 and 8 from one start each.
"""

import argparse
import sys
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402

from fastbp import MLPRegressor  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer widths and starts (CI)")
    # sys.argv[0], not __file__: sphinx-gallery runs the examples without __file__
    parser.add_argument(
        "--out", type=Path, default=Path(sys.argv[0]).resolve().parent / "output",
        help="directory for the pictures (default: examples/output/)",
    )
    return parser.parse_args()


def main():
    args = parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    widths = (1, 2, 8) if args.quick else (1, 2, 4, 8, 16)
    n_starts = 1 if args.quick else 3
    max_iter = 500 if args.quick else 5000

    X = np.linspace(-np.pi, np.pi, 200).reshape(-1, 1)
    y = np.sin(X).ravel()
    X_fine = np.linspace(-np.pi, np.pi, 2001).reshape(-1, 1)
    y_fine = np.sin(X_fine).ravel()

    print(f"max |f(x) - sin(x)| on [-pi, pi], {n_starts} random start(s) per width")
    print(f"{'units':>5}  {'best':>9}  {'worst':>9}  {'parameters':>10}")
    best_fits, all_errors = {}, {}
    for width in widths:
        errors, predictions = [], []
        for seed in range(n_starts):
            model = MLPRegressor(
                hidden_layer_sizes=(width,), activation="tanh", solver="lbfgs",
                alpha=0.0, tol=1e-10, max_iter=max_iter, random_state=seed,
            )
            with warnings.catch_warnings():
                # lbfgs may stop at max_iter in --quick mode; the error says how far it got.
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.fit(X, y)
            prediction = model.predict(X_fine)
            errors.append(float(np.max(np.abs(prediction - y_fine))))
            predictions.append(prediction)
        all_errors[width] = errors
        best_fits[width] = predictions[int(np.argmin(errors))]
        n_params = 3 * width + 1  # (d + l + 1) q + l with d = l = 1
        print(f"{width:>5}  {min(errors):>9.2e}  {max(errors):>9.2e}  {n_params:>10}")

    fig, (ax_fit, ax_err) = plt.subplots(1, 2, figsize=(11, 4.5), dpi=100)
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(widths)))
    ax_fit.plot(X_fine, y_fine, "k--", lw=2.5, label=r"$\sin(x)$")
    for color, width in zip(colors, widths):
        ax_fit.plot(X_fine, best_fits[width], color=color, lw=1.5,
                    label=f"{width} unit{'s' if width > 1 else ''}")
    ax_fit.set_xlabel("$x$")
    ax_fit.set_ylabel("$f(x)$")
    ax_fit.set_title("One tanh hidden layer fitted to $\\sin(x)$")
    ax_fit.legend(loc="upper left")

    best = [min(all_errors[w]) for w in widths]
    ax_err.plot(widths, best, "o-", color="tab:red", label="best start")
    for width in widths:
        ax_err.plot([width] * n_starts, all_errors[width], ".", color="0.5",
                    label="every start" if width == widths[0] else None)
    ax_err.set_xscale("log", base=2)
    ax_err.set_yscale("log")
    ax_err.set_xticks(widths, [str(w) for w in widths])
    ax_err.set_xlabel("hidden units")
    ax_err.set_ylabel(r"max $|f(x) - \sin(x)|$")
    ax_err.set_title("Maximum error on $[-\\pi, \\pi]$")
    ax_err.legend()
    fig.tight_layout()
    out = args.out / "universal_approximation.png"
    fig.savefig(out, dpi=100)
    plt.close(fig)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

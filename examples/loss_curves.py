"""Loss and validation curves on the digits
========================================

Two pipelines, :class:`~sklearn.preprocessing.StandardScaler` then
:class:`fastbp.MLPClassifier` with one hidden layer of 64 units, are fitted
to scikit-learn's digits with early stopping (10% of the training rows held
out), one with Adam and one with plain SGD with momentum.
:func:`fastbp.plotting.plot_loss_curve` draws their training loss per epoch
and :func:`~fastbp.plotting.plot_validation_curve` their validation
accuracy, with the epoch whose weights early stopping kept. The classifier
is the pipeline's last step, ``pipeline[-1]``.

Run it from the repository root::

    python examples/loss_curves.py [--quick] [--out DIR]

It writes ``loss_curves.png`` (1100x450) into ``DIR`` (default
``examples/output/``). ``--quick`` trains at most 15 epochs instead of 200.
"""

import argparse
import sys
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from fastbp import MLPClassifier  # noqa: E402
from fastbp.plotting import plot_loss_curve, plot_validation_curve  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer epochs (CI)")
    # sys.argv[0], not __file__: sphinx-gallery runs the examples without __file__
    parser.add_argument(
        "--out", type=Path, default=Path(sys.argv[0]).resolve().parent / "output",
        help="directory for the pictures (default: examples/output/)",
    )
    return parser.parse_args()


def main():
    args = parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    max_iter = 15 if args.quick else 200

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0, stratify=y)

    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(11, 4.5), dpi=100)
    for solver, color in (("adam", "tab:blue"), ("sgd", "tab:orange")):
        pipeline = make_pipeline(
            StandardScaler(),
            MLPClassifier(
                hidden_layer_sizes=(64,), solver=solver, early_stopping=True,
                max_iter=max_iter, random_state=0,
            ),
        )
        with warnings.catch_warnings():
            # --quick stops at max_iter on purpose
            warnings.simplefilter("ignore", ConvergenceWarning)
            pipeline.fit(X_train, y_train)
        model = pipeline[-1]  # the fitted MLPClassifier, as the plots want it
        print(f"{solver:>4}: {model.n_iter_} epochs, final training loss "
              f"{model.loss_curve_[-1]:.4f}, best validation accuracy "
              f"{model.best_validation_score_:.4f}, test accuracy "
              f"{pipeline.score(X_test, y_test):.4f}")
        plot_loss_curve(model, ax=ax_loss, color=color, label=solver)
        plot_validation_curve(model, ax=ax_val, color=color, label=solver)
    ax_loss.set_yscale("log")
    ax_loss.legend()
    ax_loss.set_title("Training loss (log-loss + L2), digits")
    ax_val.legend(loc="lower right")
    ax_val.set_title("Validation accuracy (early_stopping=True)")
    fig.tight_layout()
    out = args.out / "loss_curves.png"
    fig.savefig(out, dpi=100)
    plt.close(fig)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

"""Early stopping and L2 regularisation against overfitting
========================================================

A lesson of the backpropagation tutorials fastbp grew from: when a network
overfits, the training error keeps falling while the error on unseen data
rises. Two remedies: early stopping (stop when the validation error has not
improved for a while and keep the best weights) and regularisation (add the
squared weights to the objective; scikit-learn's and fastbp's ``alpha`` adds
``alpha / (2 n_samples) * sum(W**2)`` over the weights, not the biases).

A large network (two hidden layers of 64 ReLU units, Adam) is trained on
20 noisy samples of sin(x), one ``partial_fit`` epoch at a time, with
and without L2; after every epoch the mean squared error is measured on the
training set and on 200 held-out validation samples. Early stopping's rule
(the one ``MLPRegressor(early_stopping=True)`` applies to its validation
score: stop after more than ``n_iter_no_change`` epochs without an
improvement of at least ``tol``; here ``n_iter_no_change=20``,
``tol=1e-4``) is applied to the unregularised curve and marked.

Run it from the repository root::

    python examples/overfitting.py [--quick] [--out DIR]

It writes ``overfitting.png`` (1500x450) into ``DIR`` (default
``examples/output/``). ``--quick`` trains 200 epochs instead of 2000.
"""

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import mean_squared_error  # noqa: E402

from fastbp import MLPRegressor  # noqa: E402

NOISE = 0.3
ALPHA = 0.3
N_ITER_NO_CHANGE = 20
TOL = 1e-4


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer epochs (CI)")
    # sys.argv[0], not __file__: sphinx-gallery runs the examples without __file__
    parser.add_argument(
        "--out", type=Path, default=Path(sys.argv[0]).resolve().parent / "output",
        help="directory for the pictures (default: examples/output/)",
    )
    return parser.parse_args()


def make_data(rng, n_samples):
    X = rng.uniform(-3, 3, size=(n_samples, 1))
    return X, np.sin(X).ravel() + NOISE * rng.standard_normal(n_samples)


def train(alpha, n_epochs, X_train, y_train, X_val, y_val, X_grid):
    """Train epoch by epoch; return per-epoch errors and grid predictions at each new best."""
    model = MLPRegressor(
        hidden_layer_sizes=(64, 64), activation="relu", solver="adam",
        learning_rate_init=0.01, alpha=alpha, random_state=0,
    )
    train_mse, val_mse, snapshots = [], [], {}
    for epoch in range(1, n_epochs + 1):
        model.partial_fit(X_train, y_train)  # one epoch (one full batch of 20 rows)
        train_mse.append(mean_squared_error(y_train, model.predict(X_train)))
        val_mse.append(mean_squared_error(y_val, model.predict(X_val)))
        if val_mse[-1] <= min(val_mse):
            snapshots[epoch] = model.predict(X_grid)
    return np.array(train_mse), np.array(val_mse), snapshots, model.predict(X_grid)


def early_stopping_epochs(val_loss, tol=TOL, n_iter_no_change=N_ITER_NO_CHANGE):
    """Epoch at which early stopping stops, and the best epoch whose weights it keeps.

    The rule of ``_update_no_improvement_count`` in scikit-learn (and fastbp),
    with the validation score taken as minus the validation loss.
    """
    best, best_epoch, count = np.inf, 0, 0
    for epoch, loss in enumerate(val_loss, start=1):
        count = count + 1 if loss > best - tol else 0
        if loss < best:
            best, best_epoch = loss, epoch
        if count > n_iter_no_change:
            return epoch, best_epoch
    return len(val_loss), best_epoch


def main():
    args = parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    n_epochs = 200 if args.quick else 2000

    rng = np.random.RandomState(0)
    X_train, y_train = make_data(rng, 20)
    X_val, y_val = make_data(rng, 200)
    X_grid = np.linspace(-3, 3, 300).reshape(-1, 1)

    plain = train(0.0, n_epochs, X_train, y_train, X_val, y_val, X_grid)
    l2 = train(ALPHA, n_epochs, X_train, y_train, X_val, y_val, X_grid)
    stop_epoch, best_epoch = early_stopping_epochs(plain[1])
    kept = max(e for e in plain[2] if e <= best_epoch)

    print(f"{n_epochs} epochs, 20 training and 200 validation samples (noise sd {NOISE})")
    print(f"{'':>26}  {'train MSE':>9}  {'val MSE':>9}")
    print(f"{'alpha=0, last epoch':>26}  {plain[0][-1]:>9.4f}  {plain[1][-1]:>9.4f}")
    print(f"{'alpha=0, early stopping':>26}  {plain[0][best_epoch - 1]:>9.4f}  "
          f"{plain[1][best_epoch - 1]:>9.4f}   (stops at epoch {stop_epoch}, "
          f"keeps epoch {best_epoch})")
    print(f"{f'alpha={ALPHA}, last epoch':>26}  {l2[0][-1]:>9.4f}  {l2[1][-1]:>9.4f}")

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5), dpi=100)
    epochs = np.arange(1, n_epochs + 1)
    top = 1.2 * max(plain[1].max(), l2[1].max(), plain[0].max())
    for ax, (train_mse, val_mse, *_), title in (
        (axes[0], plain, "No regularisation (alpha = 0)"),
        (axes[1], l2, f"L2 regularisation (alpha = {ALPHA})"),
    ):
        ax.plot(epochs, train_mse, color="tab:blue", label="training MSE")
        ax.plot(epochs, val_mse, color="tab:orange", label="validation MSE")
        ax.axhline(NOISE**2, color="0.6", ls=":", lw=1, label="noise variance")
        ax.set_xscale("log")
        ax.set_ylim(0, top)
        ax.set_xlabel("epoch")
        ax.set_ylabel("mean squared error")
        ax.set_title(title)
    axes[0].axvline(stop_epoch, color="tab:red", ls="--", lw=1,
                    label=f"early stopping stops (epoch {stop_epoch})")
    axes[0].plot(best_epoch, plain[1][best_epoch - 1], "o", color="tab:red",
                 label=f"weights kept (epoch {best_epoch})")
    for ax in axes[:2]:
        ax.legend(loc="upper right", fontsize="small")

    ax = axes[2]
    ax.plot(X_grid, np.sin(X_grid), "k--", lw=1.5, label=r"$\sin(x)$")
    ax.plot(X_val, y_val, ".", color="0.75", ms=3, label="validation samples")
    ax.plot(X_train, y_train, "o", color="k", ms=4, label="training samples")
    ax.plot(X_grid, plain[3], color="tab:purple", label="alpha = 0, last epoch")
    ax.plot(X_grid, plain[2][kept], color="tab:red", label="alpha = 0, early stopping")
    ax.plot(X_grid, l2[3], color="tab:green", label=f"alpha = {ALPHA}, last epoch")
    ax.set_xlabel("$x$")
    ax.set_ylabel("$y$")
    ax.set_title("The fitted functions")
    ax.legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    out = args.out / "overfitting.png"
    fig.savefig(out, dpi=100)
    plt.close(fig)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

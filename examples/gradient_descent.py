"""Gradient descent as pictures
============================

On f(x) = x² the step x ← x − 0.1 f'(x) = x − 0.1 · 2x multiplies x by
0.8, so from x = 5 the 50 steps slide down the parabola towards the minimum
at 0 (a still picture and an animated GIF). On the bowl f(x, y) = x² + y²
the same step from (1.5, 1.5) runs straight down the surface to (0, 0).
The pictures are drawn by :func:`fastbp.plotting.gradient_descent_path`,
:func:`~fastbp.plotting.plot_descent_1d`,
:func:`~fastbp.plotting.animate_descent_1d` and
:func:`~fastbp.plotting.plot_descent_surface`.

Run it from the repository root::

    python examples/gradient_descent.py [--quick] [--out DIR]

It writes ``gradient_descent_1d.png`` (640x480), ``gradient_descent_1d.gif``
(512x384) and ``gradient_descent_surface.png`` (700x600) into ``DIR``
(default ``examples/output/``). ``--quick`` animates only the first 10 steps.
"""

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from fastbp.plotting import (  # noqa: E402
    animate_descent_1d,
    gradient_descent_path,
    plot_descent_1d,
    plot_descent_surface,
)

LEARNING_RATE = 0.1
N_STEPS = 50


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer animation frames (CI)")
    # sys.argv[0], not __file__: sphinx-gallery runs the examples without __file__
    parser.add_argument(
        "--out", type=Path, default=Path(sys.argv[0]).resolve().parent / "output",
        help="directory for the pictures (default: examples/output/)",
    )
    return parser.parse_args()


def main():
    args = parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    written = []

    # f(x) = x^2, f'(x) = 2x, from x = 5.
    path = gradient_descent_path(lambda x: 2 * x, 5.0, LEARNING_RATE, N_STEPS)

    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=100)
    plot_descent_1d(lambda x: x**2, path, ax=ax, x_range=(-5.5, 5.5))
    ax.set_title(r"$x \leftarrow x - 0.1 \cdot 2x$ on $f(x) = x^2$, from $x = 5$")
    out = args.out / "gradient_descent_1d.png"
    fig.savefig(out, dpi=100)
    plt.close(fig)
    written.append(out)

    frames = path[:11] if args.quick else path
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=80)
    ax.set_title(r"$x \leftarrow x - 0.1 \cdot 2x$ on $f(x) = x^2$")
    out = args.out / "gradient_descent_1d.gif"
    animate_descent_1d(lambda x: x**2, frames, out, fps=5, ax=ax, x_range=(-5.5, 5.5), dpi=80)
    plt.close(fig)
    written.append(out)

    # f(x, y) = x^2 + y^2, gradient (2x, 2y), from (1.5, 1.5).
    path_2d = gradient_descent_path(lambda v: 2 * v, [1.5, 1.5], LEARNING_RATE, N_STEPS)
    fig = plt.figure(figsize=(7, 6), dpi=100)
    ax = fig.add_subplot(projection="3d")
    plot_descent_surface(lambda x, y: x**2 + y**2, path_2d, ax=ax, xy_range=(-2, 2))
    ax.set_title(r"Gradient descent on $f(x, y) = x^2 + y^2$ from $(1.5, 1.5)$")
    ax.view_init(elev=35, azim=-60)
    out = args.out / "gradient_descent_surface.png"
    fig.savefig(out, dpi=100)
    plt.close(fig)
    written.append(out)

    print(f"after {N_STEPS} steps: x = {path[-1]:.3g} (5 * 0.8**{N_STEPS}); "
          f"(x, y) = ({path_2d[-1, 0]:.3g}, {path_2d[-1, 1]:.3g})")
    for out in written:
        print(f"wrote {out}")


if __name__ == "__main__":
    main()

"""Two fastbp checkouts and scikit-learn, taking turns on the workloads of ``benchmarks/common.py``.

Three persistent processes (fastbp from ``--old``, fastbp from ``--new``,
scikit-learn) fit and predict each workload in rounds; the two fastbp
versions alternate which goes first, every call follows a 0.3 s pause, and
each ratio is the median of the same-round ratios, so that the machine's
changes of speed hit both versions alike::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/side_by_side.py \\
        --old ../fastbp-old --new . --workloads digits small-batch --rounds 9

A checkout's ``fastbp/kernels`` must resolve (a symlink to ``kernels/`` from
December 2026 on; make one in older checkouts).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

WORKER = r'''
import gc, importlib.util, statistics, sys, time
spec = importlib.util.spec_from_file_location("common", sys.argv[2])
common = importlib.util.module_from_spec(spec); spec.loader.exec_module(common)
if sys.argv[1] == "sklearn":
    from sklearn import neural_network as module
else:
    import fastbp as module
data, models = {}, {}
for line in sys.stdin:
    command, name = line.split()
    if name not in data:
        data[name] = common.workload_data(name)
        common.warm_up(module, name)
    X, y = data[name]
    gc.collect()
    if command == "fit":
        start = time.perf_counter()
        models[name] = common.fit(common.WORKLOADS[name].make_estimator(module), X, y)
        print(time.perf_counter() - start, flush=True)
    else:
        model = models[name]
        model.predict(X)
        times, begin = [], time.perf_counter()
        while len(times) < 5 or time.perf_counter() - begin < 0.25:
            start = time.perf_counter()
            model.predict(X)
            times.append(time.perf_counter() - start)
        print(statistics.median(times), flush=True)
'''

PAUSE_SECONDS = 0.3


def main():
    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", required=True, help="root of the older fastbp checkout")
    parser.add_argument("--new", default=str(here.parent), help="root of the newer one (default: this one)")
    parser.add_argument("--workloads", nargs="+",
                        default=["digits", "small-batch", "clf-medium", "reg-wide", "online", "lbfgs", "sparse"])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--json", help="also write every measurement here")
    args = parser.parse_args()
    common = str(here / "benchmarks" / "common.py")
    env = dict(os.environ)
    sides = {"old": ("fastbp", Path(args.old).resolve()), "new": ("fastbp", Path(args.new).resolve()),
             "sklearn": ("sklearn", None)}
    procs = {}
    for side, (library, root) in sides.items():
        side_env = dict(env, PYTHONPATH=str(root)) if root else env
        procs[side] = subprocess.Popen([sys.executable, "-c", WORKER, library, common], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, text=True, env=side_env, cwd="/")

    def ask(side, command, name):
        proc = procs[side]
        proc.stdin.write(f"{command} {name}\n")
        proc.stdin.flush()
        return float(proc.stdout.readline())

    results = {}
    for name in args.workloads:
        times = {side: {"fit": [], "predict": []} for side in procs}
        for r in range(args.rounds):
            for command in ("fit", "predict"):
                for side in (["old", "new", "sklearn"] if r % 2 == 0 else ["new", "old", "sklearn"]):
                    time.sleep(PAUSE_SECONDS)
                    times[side][command].append(ask(side, command, name))
        results[name] = {"times": times}
        for command in ("fit", "predict"):
            t = {side: times[side][command] for side in procs}
            paired = {
                "old_vs_sklearn": statistics.median(k / o for k, o in zip(t["sklearn"], t["old"])),
                "new_vs_sklearn": statistics.median(k / n for k, n in zip(t["sklearn"], t["new"])),
                "new_over_old": statistics.median(n / o for n, o in zip(t["new"], t["old"])),
            }
            results[name][command] = paired
            print(f"{name:12s} {command:7s} old {statistics.median(t['old']) * 1e3:9.3f} ms  "
                  f"new {statistics.median(t['new']) * 1e3:9.3f} ms  "
                  f"sklearn {statistics.median(t['sklearn']) * 1e3:9.3f} ms  "
                  f"vs sklearn: old {paired['old_vs_sklearn']:6.2f}x new {paired['new_vs_sklearn']:6.2f}x  "
                  f"new/old {paired['new_over_old']:5.3f}", flush=True)
    for proc in procs.values():
        proc.stdin.close()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

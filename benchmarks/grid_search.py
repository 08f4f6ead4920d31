"""Grid searches as users run them (issue 19): n_jobs=1, n_jobs=2 (loky), n_jobs=2 threading.

Digits / 16, a 4-point grid of alpha x hidden_layer_sizes, cv=3; each setting
runs once to warm the worker pool and load the kernels, then five times
(median)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/grid_search.py fastbp
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/grid_search.py sklearn
"""
import statistics, sys, time, warnings, os
import joblib
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV
from sklearn.exceptions import ConvergenceWarning
warnings.simplefilter("ignore", ConvergenceWarning)
os.environ["PYTHONWARNINGS"] = "ignore"  # the loky workers too
lib = sys.argv[1]
if lib == "fastbp":
    from fastbp import MLPClassifier
else:
    from sklearn.neural_network import MLPClassifier
X, y = load_digits(return_X_y=True); X = X / 16
grid = {"alpha": [1e-4, 1e-2], "hidden_layer_sizes": [(64,), (128,)]}
def search(n_jobs, backend):
    est = MLPClassifier(max_iter=50, random_state=0)
    with joblib.parallel_backend(backend, n_jobs=n_jobs):
        gs = GridSearchCV(est, grid, cv=3, n_jobs=n_jobs)
        t = time.perf_counter(); gs.fit(X, y); return time.perf_counter() - t, gs.best_score_
for n_jobs, backend in [(1, "loky"), (2, "loky"), (2, "threading")]:
    search(n_jobs, backend)  # warm: workers started, kernels loaded
    times = [search(n_jobs, backend) for _ in range(5)]
    print(f"{lib:8s} n_jobs={n_jobs} {backend:9s} {statistics.median(t for t, _ in times):.3f} s  (min {min(t for t, _ in times):.3f})  best score {times[0][1]:.4f}", flush=True)

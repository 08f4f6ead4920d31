"""fastbp.MLPRegressor on the regression workloads (see common.WORKLOADS)."""

from .common import REGRESSION_WORKLOADS, _MLPBenchmark


class MLPRegressorBenchmark(_MLPBenchmark):
    """Fit time, predict time, peak memory of fit and training R^2."""

    params = [REGRESSION_WORKLOADS]

    def setup_cache(self):
        return self._fit_all()

    def track_score(self, models, workload):
        """Training R^2 of the model fitted in ``setup_cache``."""
        return super().track_score(models, workload)

    track_score.unit = "R^2"

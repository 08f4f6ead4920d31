"""fastbp.MLPClassifier on the classification workloads (see common.WORKLOADS)."""

from .common import CLASSIFICATION_WORKLOADS, _MLPBenchmark


class MLPClassifierBenchmark(_MLPBenchmark):
    """Fit time, predict time, peak memory of fit and training accuracy."""

    params = [CLASSIFICATION_WORKLOADS]

    def setup_cache(self):
        return self._fit_all()

    def track_score(self, models, workload):
        """Training accuracy of the model fitted in ``setup_cache``."""
        return super().track_score(models, workload)

    track_score.unit = "accuracy"

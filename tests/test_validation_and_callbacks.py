"""What scikit-learn's MLP never got: user validation sets, class weights, callbacks."""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, log_loss
from sklearn.utils.class_weight import compute_class_weight, compute_sample_weight

from fastbp import MLPClassifier, MLPRegressor

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture
def data():
    rng = np.random.RandomState(0)
    X = rng.randn(150, 6)
    y = (X[:, 0] + 0.5 * X[:, 1] + 0.3 * rng.randn(150) > 0.3).astype(int)
    X_val = rng.randn(40, 6)
    y_val = (X_val[:, 0] + 0.5 * X_val[:, 1] > 0.3).astype(int)
    return X, y, X_val, y_val


PARAMS = dict(hidden_layer_sizes=(7,), shuffle=False, random_state=0, learning_rate_init=0.01)


def epoch_by_epoch(X, y, X_val, y_val, n_epochs, alpha=1e-4):
    """Weights, validation accuracy and validation loss after each epoch, via partial_fit.

    With shuffle off and no internal split, fit's epochs are these partial_fit
    calls one after another (same optimizer state carried over).
    """
    model = MLPClassifier(**PARAMS, alpha=alpha)
    states, scores, losses = [], [], []
    for _ in range(n_epochs):
        model.partial_fit(X, y, classes=[0, 1])
        proba = model.predict_proba(X_val)
        scores.append(accuracy_score(y_val, model.predict(X_val)))
        penalty = sum((c**2).sum() for c in model.coefs_)
        losses.append(log_loss(y_val, proba) + 0.5 * alpha * penalty / len(y_val))
        states.append([c.copy() for c in model.coefs_])
    return states, scores, losses


def test_validation_set_replaces_the_split_and_is_scored_every_epoch(data):
    X, y, X_val, y_val = data
    model = MLPClassifier(**PARAMS, max_iter=12, early_stopping=True, n_iter_no_change=100)
    model.fit(X, y, X_val=X_val, y_val=y_val)
    assert model.n_iter_ == 12
    assert model.t_ == 12 * X.shape[0]  # every row trained on, nothing held out
    states, scores, losses = epoch_by_epoch(X, y, X_val, y_val, 12)
    assert_allclose(model.validation_scores_, scores, rtol=0, atol=1e-12)
    assert_allclose(model.validation_loss_curve_, losses, rtol=1e-9)
    best = int(np.argmax(scores))  # first epoch with the best score
    assert model.best_validation_score_ == scores[best]
    assert model.best_validation_loss_ == pytest.approx(losses[best], rel=1e-9)
    for restored, kept in zip(model.coefs_, states[best]):
        assert_allclose(restored, kept, rtol=1e-12)


def test_early_stopping_can_watch_the_validation_loss(data):
    X, y, X_val, y_val = data
    model = MLPClassifier(
        **PARAMS, max_iter=40, early_stopping=True, early_stopping_metric="loss",
        n_iter_no_change=3, tol=1e-3,
    )
    model.fit(X, y, X_val=X_val, y_val=y_val)
    states, _, losses = epoch_by_epoch(X, y, X_val, y_val, model.n_iter_)
    best = int(np.argmin(losses))
    assert model.best_validation_loss_ == pytest.approx(losses[best], rel=1e-9)
    for restored, kept in zip(model.coefs_, states[best]):
        assert_allclose(restored, kept, rtol=1e-12)
    # it stopped because the loss stopped improving by tol for n_iter_no_change + 1 epochs
    if model.n_iter_ < 40:
        recent = np.array(losses[-4:])
        assert np.all(recent >= min(losses[:-4]) - 1e-3)


def test_validation_set_without_early_stopping_only_records_curves(data):
    X, y, X_val, y_val = data
    model = MLPClassifier(**PARAMS, max_iter=6, n_iter_no_change=100).fit(
        X, y, X_val=X_val, y_val=y_val
    )
    states, scores, losses = epoch_by_epoch(X, y, X_val, y_val, 6)
    assert len(model.validation_loss_curve_) == len(model.loss_curve_) == 6
    assert_allclose(model.validation_scores_, scores, atol=1e-12)
    assert model.best_validation_score_ is None
    for last, kept in zip(model.coefs_, states[-1]):
        assert_allclose(last, kept, rtol=1e-12)


def test_internal_split_also_records_a_validation_loss_curve(data):
    X, y, _, _ = data
    model = MLPClassifier(**PARAMS, max_iter=5, early_stopping=True).fit(X, y)
    assert len(model.validation_loss_curve_) == len(model.validation_scores_) == model.n_iter_
    assert model.t_ == model.n_iter_ * int(round(0.9 * X.shape[0]))
    plain = MLPClassifier(**PARAMS, max_iter=3).fit(X, y)
    assert plain.validation_loss_curve_ is None and plain.validation_scores_ is None


def test_validation_set_for_regression_with_weights():
    rng = np.random.RandomState(1)
    X, X_val = rng.randn(80, 4), rng.randn(30, 4)
    y, y_val = X @ [1.0, -2.0, 0.5, 0.0], X_val @ [1.0, -2.0, 0.5, 0.0]
    w_val = rng.uniform(0.5, 2.0, 30)
    model = MLPRegressor(hidden_layer_sizes=(5,), max_iter=4, shuffle=False, random_state=0)
    model.fit(X, y, X_val=X_val, y_val=y_val, sample_weight_val=w_val)
    # the last epoch's validation numbers are those of the final model
    y_pred = model.predict(X_val)
    assert model.validation_scores_[-1] == pytest.approx(model.score(X_val, y_val, w_val), rel=1e-12)
    penalty = sum((c**2).sum() for c in model.coefs_)
    expected = 0.5 * np.average((y_val - y_pred) ** 2, weights=w_val) + 0.5 * 1e-4 * penalty / w_val.sum()
    assert model.validation_loss_curve_[-1] == pytest.approx(expected, rel=1e-9)


def test_validation_set_errors(data):
    X, y, X_val, y_val = data
    model = MLPClassifier(**PARAMS, max_iter=2)
    with pytest.raises(ValueError, match="X_val and y_val must be given together"):
        model.fit(X, y, X_val=X_val)
    with pytest.raises(ValueError, match="sample_weight_val is given without"):
        model.fit(X, y, sample_weight_val=np.ones(len(y_val)))
    with pytest.raises(ValueError, match="y_val has classes not seen in y"):
        model.fit(X, y, X_val=X_val, y_val=y_val + 5)
    with pytest.raises(ValueError, match="features"):
        model.fit(X, y, X_val=X_val[:, :4], y_val=y_val)
    with pytest.raises(ValueError, match="y_val has"):
        model.fit(X, y, X_val=X_val, y_val=y_val[:-1])
    assert not hasattr(model, "coefs_")  # failed fits left it unfitted
    with pytest.warns(UserWarning, match="not used by solver='lbfgs'"):
        MLPClassifier(hidden_layer_sizes=(3,), solver="lbfgs", max_iter=3).fit(
            X, y, X_val=X_val, y_val=y_val
        )


# ----------------------------------------------------------------------
# class_weight


def multiclass_data():
    rng = np.random.RandomState(2)
    X = rng.randn(120, 5)
    y = np.digitize(X[:, 0] + 0.3 * rng.randn(120), [-0.8, 0.9])  # unbalanced classes
    return X, y


@pytest.mark.parametrize("class_weight", ["balanced", {0: 3.0, 1: 0.5, 2: 1.5}])
@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_class_weight_equals_the_equivalent_sample_weight(class_weight, solver):
    X, y = multiclass_data()
    params = dict(hidden_layer_sizes=(6,), solver=solver, max_iter=8, random_state=0)
    by_class = MLPClassifier(**params, class_weight=class_weight).fit(X, y)
    by_sample = MLPClassifier(**params).fit(X, y, sample_weight=compute_sample_weight(class_weight, y))
    for a, b in zip(by_class.coefs_ + by_class.intercepts_, by_sample.coefs_ + by_sample.intercepts_):
        assert_array_equal(a, b)
    assert by_class.loss_ == by_sample.loss_


def test_class_weight_multiplies_sample_weight():
    X, y = multiclass_data()
    sample_weight = np.random.RandomState(3).uniform(0.5, 2.0, len(y))
    params = dict(hidden_layer_sizes=(6,), max_iter=5, random_state=0)
    combined = MLPClassifier(**params, class_weight="balanced").fit(X, y, sample_weight=sample_weight)
    product = sample_weight * compute_sample_weight("balanced", y)
    expected = MLPClassifier(**params).fit(X, y, sample_weight=product)
    assert_array_equal(combined.coefs_[0], expected.coefs_[0])


def test_class_weight_changes_the_model_toward_the_rare_class():
    X, y = multiclass_data()
    params = dict(hidden_layer_sizes=(6,), max_iter=60, random_state=0, learning_rate_init=0.01)
    plain = MLPClassifier(**params).fit(X, y)
    weighted = MLPClassifier(**params, class_weight={0: 1.0, 1: 1.0, 2: 20.0}).fit(X, y)
    assert (weighted.predict(X) == 2).sum() > (plain.predict(X) == 2).sum()


def test_class_weight_in_partial_fit():
    X, y = multiclass_data()
    classes = np.unique(y)
    weights = dict(zip(classes, compute_class_weight("balanced", classes=classes, y=y)))
    a = MLPClassifier(hidden_layer_sizes=(4,), random_state=0, class_weight=weights)
    b = MLPClassifier(hidden_layer_sizes=(4,), random_state=0)
    for rows in (slice(0, 60), slice(60, 120)):
        a.partial_fit(X[rows], y[rows], classes=classes)
        b.partial_fit(X[rows], y[rows], classes=classes,
                      sample_weight=compute_sample_weight(weights, y[rows]))
    assert_array_equal(a.coefs_[0], b.coefs_[0])
    with pytest.raises(ValueError, match="'balanced' is not supported for partial_fit"):
        MLPClassifier(class_weight="balanced").partial_fit(X, y, classes=classes)


def test_class_weight_applies_to_the_validation_set():
    X, y = multiclass_data()
    X_val, y_val = X[:40], y[:40]
    model = MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0, class_weight="balanced")
    model.fit(X, y, X_val=X_val, y_val=y_val)
    weights = compute_sample_weight("balanced", y_val)
    assert model.validation_scores_[-1] == pytest.approx(
        accuracy_score(y_val, model.predict(X_val), sample_weight=weights)
    )


def test_class_weight_is_validated():
    X, y = multiclass_data()
    with pytest.raises(ValueError, match="class_weight"):
        MLPClassifier(class_weight="often").fit(X, y)


# ----------------------------------------------------------------------
# scikit-learn's callbacks


callback = pytest.importorskip("sklearn.callback")


def test_scoring_monitor_sees_every_epoch(data):
    X, y, _, _ = data
    monitor = callback.ScoringMonitor(scoring="accuracy")
    model = MLPClassifier(**PARAMS, max_iter=5).set_callbacks(monitor).fit(X, y)
    epochs = [row for row in monitor.get_logs().data if row["task_name"] == "epoch"]
    assert [row["task_id"] for row in epochs] == list(range(5))
    replay = MLPClassifier(**PARAMS)
    for row in epochs:
        replay.partial_fit(X, y, classes=[0, 1])
        assert row["accuracy"] == accuracy_score(y, replay.predict(X))
    assert epochs[-1]["accuracy"] == model.score(X, y)


def test_progress_bar_shows_the_epochs_of_a_fit(data, capsys):
    pytest.importorskip("rich")
    X, y, _, _ = data
    model = MLPClassifier(**PARAMS, max_iter=4).set_callbacks(callback.ProgressBar())
    model.fit(X, y)
    out = capsys.readouterr().out
    assert "MLPClassifier - fit" in out and "100%" in out
    assert model.n_iter_ == 4


def test_a_callback_can_stop_training(data):
    X, y, _, _ = data

    class StopAfterTwoEpochs:
        def setup(self, estimator, context):
            self.ended = 0

        def on_fit_task_begin(self, estimator, context):
            pass

        def on_fit_task_end(self, estimator, context):
            if context.task_name == "epoch":
                self.ended += 1
            return self.ended >= 2

        def teardown(self, estimator, context):
            pass

    model = MLPClassifier(**PARAMS, max_iter=10).set_callbacks(StopAfterTwoEpochs()).fit(X, y)
    assert model.n_iter_ == 2 and len(model.loss_curve_) == 2


def test_verbose_prints_scikit_learns_lines(data, capsys):
    X, y, _, _ = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        MLPClassifier(**PARAMS, max_iter=2, verbose=True).fit(X, y)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Iteration 1, loss = ") and lines[1].startswith("Iteration 2, loss = ")

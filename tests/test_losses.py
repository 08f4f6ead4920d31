"""fastbp's own regression losses in a network, against PyTorch and the NumPy reference.

absolute_error is PyTorch's ``L1Loss()`` and huber its ``HuberLoss(delta)``
(means over every element) when the samples weigh 1: on the same weights
and batch, with three outputs, the outputs, objective, gradient and one
gradient-descent step equal PyTorch's to float64 rounding, including at
the kinks (a residual of exactly 0, where both take the gradient 0, and of
exactly +-delta). Sample weights, which PyTorch's losses do not take, are
checked against ``naive.py``; so is everything else when PyTorch is missing.
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose

import naive
from fastbp import MLPRegressor, Network
from test_activations import REFERENCES, RTOL, assert_matches_reference

LOSSES = [("absolute_error", 1.0), ("huber", 0.4), ("huber", 1.3)]
LOSS_IDS = ["absolute_error", "huber-0.4", "huber-1.3"]


@pytest.mark.parametrize("reference", REFERENCES)
@pytest.mark.parametrize("loss, huber_delta", LOSSES, ids=LOSS_IDS)
def test_each_loss_matches_the_reference(rng, loss, huber_delta, reference):
    net = Network((5, 6, 3), activation="tanh", loss=loss, huber_delta=huber_delta).init_weights(rng)
    X, Y = rng.normal(size=(12, 5)), rng.normal(size=(12, 3))
    residuals = np.abs(net.predict(X) - Y)
    if loss == "huber":  # both sides of delta
        assert (residuals < huber_delta).any() and (residuals > huber_delta).any()
    assert_matches_reference(net, X, Y, reference)


@pytest.mark.parametrize("reference", REFERENCES)
@pytest.mark.parametrize("loss, huber_delta", LOSSES[:2], ids=LOSS_IDS[:2])
def test_losses_at_their_kinks_match_the_reference(rng, loss, huber_delta, reference):
    """A row of zeros through a network with intercepts of 0 gives outputs of exactly 0."""
    net = Network((4, 5, 2), activation="silu", loss=loss, huber_delta=huber_delta).init_weights(rng)
    for intercept in net.intercepts:
        intercept[:] = 0
    X, Y = rng.normal(size=(6, 4)), rng.normal(size=(6, 2))
    X[0] = 0
    Y[0] = [0.0, -huber_delta] if loss == "huber" else [0.0, 0.0]
    assert not net.predict(X[:1]).any()
    assert_matches_reference(net, X, Y, reference)
    if loss == "absolute_error":  # the zero row's residuals of 0 send back nothing
        assert not net.backward(X[:1], Y[:1])["dZ"][-1].any()


@pytest.mark.parametrize("loss, huber_delta", LOSSES, ids=LOSS_IDS)
def test_sample_weights_weigh_each_row_loss(rng, loss, huber_delta):
    net = Network((5, 6, 3), activation="gelu", loss=loss, huber_delta=huber_delta).init_weights(rng)
    X, Y = rng.normal(size=(12, 5)), rng.normal(size=(12, 3))
    weights = rng.uniform(0, 3, size=12)
    weights[2] = 0
    got_loss, got_grad = net.loss_and_gradient(X, Y, sample_weight=weights, alpha=0.2)
    want_loss, want_grad = naive.loss_and_gradient(
        X, Y, weights, net.params.copy(), list(net.layer_units), list(net.activations), 0.2, loss, 1.0,
        float(np.finfo(np.float64).eps), True, huber_delta,
    )
    assert_allclose(got_loss, want_loss, rtol=RTOL)
    assert_allclose(got_grad, want_grad, rtol=RTOL, atol=RTOL * np.abs(want_grad).max())
    # an integer weight counts as that many copies of its row
    counts = rng.randint(1, 4, size=12)
    repeated = net.loss_and_gradient(np.repeat(X, counts, axis=0), np.repeat(Y, counts, axis=0), alpha=0.2)
    weighted = net.loss_and_gradient(X, Y, sample_weight=counts.astype(float), alpha=0.2)
    assert_allclose(weighted[0], repeated[0], rtol=1e-12)
    assert_allclose(weighted[1], repeated[1], rtol=1e-12, atol=1e-14)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_huber_beyond_every_residual_trains_as_squared_error_on_one_output(rng, solver):
    """Bit for bit: 1/2 r^2 everywhere, and the error r, with one output."""
    X = rng.normal(size=(40, 3))
    y = X @ [1.0, -2.0, 0.5] + 0.1 * rng.normal(size=40)
    params = dict(hidden_layer_sizes=(6,), solver=solver, max_iter=15, random_state=0)
    huber = MLPRegressor(loss="huber", huber_delta=1e300, **params).fit(X, y)
    squared = MLPRegressor(**params).fit(X, y)
    assert huber.loss_curve_ == squared.loss_curve_ if solver != "lbfgs" else huber.loss_ == squared.loss_
    for a, b in zip(huber.coefs_ + huber.intercepts_, squared.coefs_ + squared.intercepts_):
        np.testing.assert_array_equal(a, b)

"""The public Network: the texts' worked example, the textbook network, gradient checks."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import make_classification, make_regression

import fastbp
from fastbp import MLPClassifier, MLPRegressor, Network, _engine, check_gradients


def golden_network():
    """BACKGROUND.md's worked example: 2-3-1, identity activations, no biases."""
    net = Network((2, 3, 1), activation="identity", out_activation="identity", bias=False)
    net.set_weights([np.full((2, 3), 0.5), np.full((3, 1), 1.0)])
    return net, np.array([[40.0, 80.0]]), np.array([[60.0]])


def test_golden_example_forward_and_loss():
    net, X, y = golden_network()
    Z, A = net.forward(X)
    np.testing.assert_array_equal(A[1], [[60.0, 60.0, 60.0]])
    np.testing.assert_array_equal(Z[1], [[180.0]])
    assert net.predict(X)[0, 0] == 180.0
    assert net.loss_and_gradient(X, y)[0] == 7200.0


def test_golden_example_gradients():
    net, X, y = golden_network()
    result = net.backward(X, y)
    assert result["loss"] == 7200.0
    np.testing.assert_array_equal(result["dA"][-1], [[120.0]])
    np.testing.assert_array_equal(result["dW"][1], np.full((3, 1), 7200.0))
    np.testing.assert_array_equal(result["dW"][0], [[4800.0] * 3, [9600.0] * 3])
    # no biases: their gradients are zero and they never move
    for db in result["db"]:
        np.testing.assert_array_equal(db, 0.0)


def test_golden_example_one_step():
    net, X, y = golden_network()
    loss_before = net.step(X, y, learning_rate=1e-5)
    assert loss_before == 7200.0
    np.testing.assert_allclose(net.predict(X), [[140.3136]], rtol=1e-12)
    np.testing.assert_allclose(net.loss_and_gradient(X, y)[0], 3225.13717248, rtol=1e-9)
    for intercept in net.intercepts:
        np.testing.assert_array_equal(intercept, 0.0)


# ----------------------------------------------------------------------
# The textbook network (Zhou, "Machine Learning", 2016): sigmoid hidden and
# output layers, squared error 1/2 sum_j (y_hat_j - y_j)^2, thresholds
# theta that are subtracted (b = -theta in fastbp's notation).


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def textbook_sample_update(v, gamma, w, theta, x, y, eta):
    """One standard-BP update, written with the textbook's own formulas."""
    b = sigmoid(x @ v - gamma)  # hidden outputs b_h
    y_hat = sigmoid(b @ w - theta)
    g = y_hat * (1 - y_hat) * (y - y_hat)  # output gradient term g_j
    e = b * (1 - b) * (w @ g)  # hidden gradient term e_h
    return v + eta * np.outer(x, e), gamma - eta * e, w + eta * np.outer(b, g), theta - eta * g


def textbook_accumulated_update(v, gamma, w, theta, X, Y, eta):
    """One accumulated-BP update: the mean of the per-sample terms over the set."""
    B = sigmoid(X @ v - gamma)
    Y_hat = sigmoid(B @ w - theta)
    G = Y_hat * (1 - Y_hat) * (Y - Y_hat)
    E = B * (1 - B) * (G @ w.T)
    m = X.shape[0]
    return v + eta * X.T @ E / m, gamma - eta * E.mean(0), w + eta * B.T @ G / m, theta - eta * G.mean(0)


@pytest.fixture
def textbook_problem():
    rng = np.random.RandomState(3)
    d, q, l, m = 4, 5, 3, 9
    X = rng.rand(m, d)
    Y = rng.rand(m, l)
    net = Network((d, q, l), activation="logistic", out_activation="logistic").init_weights(rng)
    return net, X, Y


def textbook_params(net):
    """(v, gamma, w, theta) of the textbook from fastbp's weights (theta = -b)."""
    return net.coefs[0].copy(), -net.intercepts[0], net.coefs[1].copy(), -net.intercepts[1]


def test_textbook_parameter_count(textbook_problem):
    net, X, Y = textbook_problem
    d, q, l = net.layer_units
    assert net.n_params == (d + l + 1) * q + l == net.params.size


def test_textbook_standard_bp_every_step(textbook_problem):
    net, X, Y = textbook_problem
    eta = 0.7
    v, gamma, w, theta = textbook_params(net)
    for epoch in range(2):
        for k in range(X.shape[0]):
            # one fastbp "standard" epoch over a single row is one update
            net.train(X[k : k + 1], Y[k : k + 1], mode="standard", learning_rate=eta)
            v, gamma, w, theta = textbook_sample_update(v, gamma, w, theta, X[k], Y[k], eta)
            got = textbook_params(net)
            for a, b in zip(got, (v, gamma, w, theta)):
                np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_textbook_standard_bp_epoch_is_one_fused_pass(textbook_problem):
    net, X, Y = textbook_problem
    eta = 0.7
    v, gamma, w, theta = textbook_params(net)
    net.train(X, Y, mode="standard", learning_rate=eta, n_epochs=3)
    for _ in range(3):
        for k in range(X.shape[0]):
            v, gamma, w, theta = textbook_sample_update(v, gamma, w, theta, X[k], Y[k], eta)
    for a, b in zip(textbook_params(net), (v, gamma, w, theta)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_textbook_accumulated_bp_every_step(textbook_problem):
    net, X, Y = textbook_problem
    eta = 0.9
    v, gamma, w, theta = textbook_params(net)
    losses = net.train(X, Y, mode="accumulated", learning_rate=eta, n_epochs=4)
    assert len(losses) == 4 and losses[-1] < losses[0]
    for _ in range(4):
        v, gamma, w, theta = textbook_accumulated_update(v, gamma, w, theta, X, Y, eta)
    for a, b in zip(textbook_params(net), (v, gamma, w, theta)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def clipped(update, max_norm):
    """The textbook ``update`` with its gradient (the step over eta) clipped to ``max_norm``."""
    def clipped_update(*args):
        eta = args[-1]
        start = args[:4]
        grads = [(a - b) / eta for a, b in zip(start, update(*args))]
        norm = np.sqrt(sum(np.sum(g**2) for g in grads))
        scale = min(1.0, max_norm / (norm + 1e-6))
        return tuple(a - eta * scale * g for a, g in zip(start, grads))
    return clipped_update


@pytest.mark.parametrize("mode, update", [
    ("standard", textbook_sample_update), ("accumulated", textbook_accumulated_update),
])
def test_textbook_bp_with_clipped_gradients(textbook_problem, mode, update):
    net, X, Y = textbook_problem
    eta = 0.7
    start = textbook_params(net)
    net.train(X, Y, mode=mode, learning_rate=eta, n_epochs=2, max_grad_norm=0.02)
    want = {}
    for max_norm in (0.02, np.inf):
        step = clipped(update, max_norm)
        v, gamma, w, theta = start
        for _ in range(2):
            if mode == "standard":
                for k in range(X.shape[0]):
                    v, gamma, w, theta = step(v, gamma, w, theta, X[k], Y[k], eta)
            else:
                v, gamma, w, theta = step(v, gamma, w, theta, X, Y, eta)
        want[max_norm] = (v, gamma, w, theta)
    for a, b in zip(textbook_params(net), want[0.02]):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)
    assert np.abs(want[np.inf][0] - want[0.02][0]).max() > 1e-3  # clipping changed the steps


@pytest.mark.parametrize("settings,message", [
    (dict(max_grad_norm=0.0), "max_grad_norm must be None or a number > 0, got 0.0"),
    (dict(max_grad_norm=-1), "max_grad_norm must be None or a number > 0"),
    (dict(max_grad_norm="1"), "max_grad_norm must be None or a number > 0"),
    (dict(learning_rate=np.nan), "learning_rate must be a finite number > 0, got nan"),
    (dict(learning_rate=np.inf), "learning_rate must be a finite number > 0"),
    (dict(learning_rate=0.0), "learning_rate must be a finite number > 0"),
    (dict(learning_rate="0.1"), "learning_rate must be a finite number > 0"),
    (dict(alpha=-1e-4), "alpha must be a finite number >= 0"),
    (dict(momentum=1.0), r"momentum must be a number in \[0, 1\)"),
    (dict(n_epochs=2.5), "n_epochs must be an integer >= 1, got 2.5"),
    (dict(n_epochs=0), "n_epochs must be an integer >= 1"),
    (dict(n_epochs=True), "n_epochs must be an integer >= 1"),
])
def test_descent_settings_are_checked_before_anything_changes(textbook_problem, settings, message):
    net, X, Y = textbook_problem
    before = net.params.copy()
    with pytest.raises(ValueError, match=message):
        net.train(X, Y, **settings)
    step_settings = {k: v for k, v in settings.items() if k in ("learning_rate", "alpha")}
    if step_settings:
        with pytest.raises(ValueError, match=message):
            net.step(X, Y, **{"learning_rate": 0.1, **step_settings})
    np.testing.assert_array_equal(net.params, before)


def test_train_rejects_unknown_mode(textbook_problem):
    net, X, Y = textbook_problem
    with pytest.raises(ValueError, match="mode must be"):
        net.train(X, Y, mode="batch")


# ----------------------------------------------------------------------
# Gradient checks


PAIRINGS = [
    ("identity", "squared_error", lambda rng, n, k: rng.randn(n, k)),
    ("logistic", "squared_error", lambda rng, n, k: rng.rand(n, k)),
    ("exp", "poisson", lambda rng, n, k: rng.poisson(1.5, (n, k)).astype(float)),
    ("softmax", "log_loss", lambda rng, n, k: np.eye(k)[rng.randint(0, k, n)]),
    ("logistic", "binary_log_loss", lambda rng, n, k: rng.randint(0, 2, (n, k)).astype(float)),
]


@pytest.mark.parametrize("activation", ["identity", "logistic", "tanh", "relu"])
@pytest.mark.parametrize("out_activation, loss, make_y", PAIRINGS)
@pytest.mark.parametrize("weighted", [False, True])
def test_check_gradients_below_1e6(activation, out_activation, loss, make_y, weighted):
    n, d, k = 11, 4, 3
    for seed in range(200):
        rng = np.random.RandomState(seed)
        X = rng.randn(n, d)
        Y = make_y(rng, n, k)
        net = Network((d, 5, 4, k), activation=activation, out_activation=out_activation, loss=loss)
        net.init_weights(rng)
        # relu: keep every pre-activation away from the kink (the check steps by up to 2e-3)
        Z, _ = net.forward(X)
        if activation != "relu" or all(np.min(np.abs(z)) > 2e-2 for z in Z[:-1]):
            break
    else:
        pytest.fail("no seed keeps relu pre-activations away from zero")
    sample_weight = rng.uniform(0.2, 2.0, n) if weighted else None
    for alpha in (0.0, 0.3):
        errors = check_gradients(net, X, Y, sample_weight, alpha=alpha)
        assert len(errors) == 3
        worst = max(max(e["coefs"], e["intercepts"]) for e in errors)
        assert worst < 1e-6, errors


def test_check_gradients_detects_a_wrong_gradient(monkeypatch):
    rng = np.random.RandomState(0)
    X, Y = rng.randn(8, 3), rng.randn(8, 2)
    net = Network((3, 4, 2), activation="tanh").init_weights(rng)
    assert max(e["coefs"] for e in check_gradients(net, X, Y)) < 1e-6

    original = _engine.Objective.__call__

    def objective_with_wrong_output_layer_gradient(self, *args, **kwargs):
        loss, grad = original(self, *args, **kwargs)
        start = self.network.layers[1, 2]
        grad[start : start + 8] *= 1.01  # a 1% error in W[2]
        return loss, grad

    monkeypatch.setattr(_engine.Objective, "__call__", objective_with_wrong_output_layer_gradient)
    errors = check_gradients(net, X, Y)
    assert errors[0]["coefs"] < 1e-6  # layer 1 untouched
    assert errors[1]["coefs"] > 1e-3


def test_check_gradients_leaves_the_model_unchanged():
    rng = np.random.RandomState(1)
    X, Y = rng.randn(6, 3), rng.randn(6, 1)
    net = Network((3, 4, 1), activation="relu").init_weights(rng)
    before = net.params.copy()
    check_gradients(net, X, Y, max_checks_per_layer=3)
    np.testing.assert_array_equal(net.params, before)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("estimator_class", [MLPClassifier, MLPRegressor])
def test_check_gradients_on_fitted_estimators(estimator_class):
    if estimator_class is MLPClassifier:
        X, y = make_classification(40, 5, n_informative=3, n_classes=3, random_state=0)
    else:
        X, y = make_regression(40, 5, n_targets=2, random_state=0)
        y = y / y.std()
    model = estimator_class(
        hidden_layer_sizes=(6,), activation="tanh", max_iter=3, alpha=0.1, random_state=0
    ).fit(X, y)
    errors = check_gradients(model, X, y)
    assert max(max(e["coefs"], e["intercepts"]) for e in errors) < 1e-6
    if estimator_class is MLPClassifier:
        with pytest.raises(ValueError, match=r"y has labels the model was not fitted on: \[7\]"):
            check_gradients(model, X, np.where(y == 2, 7, y))
    for epsilon in (0.0, -1e-3, np.nan):
        with pytest.raises(ValueError, match="epsilon must be a finite step > 0"):
            check_gradients(model, X, y, epsilon=epsilon)


# ----------------------------------------------------------------------
# Estimators and Network agree


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("sparse_input", [False, True])
def test_estimator_weights_in_a_network_give_same_predictions_and_gradients(sparse_input):
    X, y = make_classification(60, 6, n_informative=4, n_classes=3, random_state=1)
    model = MLPClassifier((5, 4), activation="logistic", max_iter=4, alpha=0.01, random_state=0)
    model.fit(X, y)
    net = Network((6, 5, 4, 3), activation="logistic", out_activation="softmax", loss="log_loss")
    net.set_weights(model.coefs_, model.intercepts_)
    Xin = sp.csr_matrix(X) if sparse_input else X
    np.testing.assert_allclose(net.predict(Xin), model.predict_proba(X), rtol=1e-13)

    # the network's gradient equals scikit-learn's own back-propagation
    from sklearn.neural_network import MLPClassifier as SkMLP

    sk = SkMLP((5, 4), activation="logistic", max_iter=4, alpha=0.01, random_state=0)
    sk.fit(X, y)
    Y = model._label_binarizer.transform(y).astype(float)
    layer_units = [6, 5, 4, 3]
    activations = [X] + [None] * 3
    deltas = [None] * 3
    coef_grads = [np.empty((a, b)) for a, b in zip(layer_units[:-1], layer_units[1:])]
    intercept_grads = [np.empty(b) for b in layer_units[1:]]
    sk.coefs_ = [c.copy() for c in model.coefs_]
    sk.intercepts_ = [b.copy() for b in model.intercepts_]
    sk_loss, coef_grads, intercept_grads = sk._backprop(
        X, Y, None, activations, deltas, coef_grads, intercept_grads
    )
    loss, grad = net.loss_and_gradient(Xin, Y, alpha=0.01)
    assert loss == pytest.approx(sk_loss, rel=1e-12)
    result = net.backward(Xin, Y, alpha=0.01)
    for l in range(3):
        np.testing.assert_allclose(result["dW"][l], coef_grads[l], rtol=1e-10, atol=1e-15)
        np.testing.assert_allclose(result["db"][l], intercept_grads[l], rtol=1e-10, atol=1e-15)


def test_forward_and_backward_agree_with_the_recursion():
    rng = np.random.RandomState(5)
    net = Network((4, 6, 3, 2), activation=["tanh", "relu"], out_activation="identity").init_weights(rng)
    X, Y = rng.randn(7, 4), rng.randn(7, 2)
    r = net.backward(X, Y)
    Z, A = net.forward(X)
    for l in range(3):
        np.testing.assert_allclose(r["Z"][l], Z[l], rtol=1e-14)
        np.testing.assert_allclose(A[l] @ net.coefs[l] + net.intercepts[l], Z[l], rtol=1e-12)
    np.testing.assert_allclose(A[1], np.tanh(Z[0]), rtol=1e-13)
    np.testing.assert_allclose(A[2], np.maximum(Z[1], 0), rtol=1e-13)
    # dZ[L] = (A[L] - Y) / n ; dA[l-1] = dZ[l] W[l]^T ; dW[l] = A[l-1]^T dZ[l]
    np.testing.assert_allclose(r["dZ"][2], (A[3] - Y) / 7, rtol=1e-12)
    for l in (2, 1):
        np.testing.assert_allclose(r["dA"][l - 1], r["dZ"][l] @ net.coefs[l].T, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(r["dZ"][0], r["dA"][0] * (1 - A[1] ** 2), rtol=1e-12, atol=1e-15)
    for l in range(3):
        np.testing.assert_allclose(r["dW"][l], A[l].T @ r["dZ"][l], rtol=1e-12, atol=1e-15)


def test_network_rejects_bad_configurations():
    with pytest.raises(ValueError, match="cannot follow"):
        Network((2, 3, 2), out_activation="identity", loss="log_loss")
    with pytest.raises(ValueError, match="Unknown hidden activation"):
        Network((2, 3, 1), activation="softsign")
    with pytest.raises(ValueError, match="at least two positive"):
        Network((2, 0, 1))
    for units in [(2, 3.7, 1), (2, True, 1)]:
        with pytest.raises(ValueError, match="layer_units must be integers"):
            Network(units)
    net = Network((2, 3, 1))
    with pytest.raises(ValueError, match="X has 3 features"):
        net.predict(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="Y has shape"):
        net.loss_and_gradient(np.zeros((4, 2)), np.zeros((3, 1)))


@pytest.mark.parametrize("coefs,intercepts,message", [
    ([np.ones((2, 3)), np.ones((2, 1))], None, "Weight matrix 1 has shape"),
    ([np.ones((2, 3)), np.ones((3, 1))], [np.ones(3), np.ones(2)], "Intercept 1 has shape"),
    ([np.ones((2, 3)), np.ones((3, 1))], [np.ones(3)], "Expected 2 intercept vectors, got 1"),
    ([np.ones((2, 3))], None, "Expected 2 weight matrices, got 1"),
    ([np.ones((2, 3)), [["a"], ["b"], ["c"]]], None, "could not convert"),
])
def test_failed_set_weights_changes_nothing(coefs, intercepts, message):
    net = Network((2, 3, 1))
    net.init_weights(random_state=0)
    before = net.params.copy()
    with pytest.raises(ValueError, match=message):
        net.set_weights(coefs, intercepts)
    np.testing.assert_array_equal(net.params, before)


def test_public_names():
    assert fastbp.Network is Network
    assert callable(fastbp.check_gradients)


# --------------------------------------------------------------------------
# Buffers start on a cache line (vectorised loops ran up to 25% slower when
# a fit's NumPy allocations happened to start 16 or 48 bytes past one)
# --------------------------------------------------------------------------


def _on_cache_line(array):
    return array.ctypes.data % 64 == 0


@pytest.mark.parametrize("shape", [0, 1, 7, 705, (3, 0), (2, 5), (2, 3, 4)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_aligned_buffers(shape, dtype):
    from fastbp._buffers import aligned_empty, aligned_zeros

    for _ in range(5):  # allocations land at different offsets
        empty, zeros = aligned_empty(shape, dtype), aligned_zeros(shape, dtype)
        want = np.zeros(shape, dtype)
        for array in (empty, zeros):
            assert array.shape == want.shape and array.dtype == want.dtype
            assert array.flags.c_contiguous and array.flags.writeable
            assert array.size == 0 or _on_cache_line(array)  # an empty array has no data to place
        np.testing.assert_array_equal(zeros, want)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_fitted_buffers_start_on_a_cache_line_also_in_copies(solver):
    import copy
    import pickle

    X, y = make_classification(n_samples=40, n_features=5, random_state=0)
    est = MLPClassifier(hidden_layer_sizes=(7,), solver=solver, max_iter=3, random_state=0).fit(X, y)
    for model in (est, copy.deepcopy(est), pickle.loads(pickle.dumps(est))):
        optimizer = model._optimizer
        buffers = [model._get_network().params, optimizer.state_a]
        if solver == "adam":
            buffers.append(optimizer.state_b)
        assert all(_on_cache_line(b) for b in buffers)
        np.testing.assert_array_equal(optimizer.state_a, est._optimizer.state_a)
        assert model._get_network().owns(model.coefs_, model.intercepts_)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(est)).predict(X), est.predict(X))


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_copied_network_weights_stay_views_of_its_aligned_buffer(how):
    import copy
    import pickle

    net = Network((4, 5, 3), activation="tanh", out_activation="softmax", loss="log_loss")
    net.init_weights(random_state=0)
    other = copy.deepcopy(net) if how == "deepcopy" else pickle.loads(pickle.dumps(net))
    assert other.owns(other.coefs, other.intercepts) and _on_cache_line(other.params)
    assert all(np.shares_memory(view, other.params) for view in other.coefs + other.intercepts)
    np.testing.assert_array_equal(other.params, net.params)
    X = np.random.RandomState(0).uniform(-1, 1, size=(6, 4))
    before = net.predict(X)
    other.coefs[1][...] = 0  # edits of the copy's views are its weights, and its alone
    other.intercepts[1][...] = 0
    np.testing.assert_allclose(other.predict(X), 1 / 3)
    np.testing.assert_array_equal(net.predict(X), before)


def reshape_in_place(array, shape):
    """``array.shape = shape``: deprecated in NumPy 2.5, but possible, so ``owns`` must notice it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        array.shape = shape


def test_owns_only_the_views_it_made_unchanged():
    net = Network((4, 5, 3))
    assert net.owns(net.coefs, net.intercepts)
    assert not net.owns(list(net.coefs), net.intercepts)  # another list
    for change in [
        lambda: net.coefs.__setitem__(0, net.coefs[0][:]),  # another view of the same memory
        lambda: net.coefs.append(np.zeros((3, 1))),
        lambda: reshape_in_place(net.intercepts[1], (3, 1)),
    ]:
        net = Network((4, 5, 3))
        change()
        assert not net.owns(net.coefs, net.intercepts)


@pytest.mark.parametrize("out_activation", ["logistic", "identity"])
def test_labels_need_a_softmax_output_layer(out_activation):
    from fastbp import _engine

    net = Network((4, 3), out_activation=out_activation)
    X = _engine.KernelInput(np.zeros((2, 4)), np.float64)
    with pytest.raises(ValueError, match="labels need a softmax output layer"):
        _engine.predict(net, X, labels=np.empty(2, dtype=np.int64))


def test_standard_training_skips_rows_of_weight_zero():
    # a row of weight 0 carries no gradient; as a mini-batch of its own it divided 0 by 0
    rng = np.random.RandomState(0)
    X, Y = rng.rand(6, 3), rng.rand(6, 2)
    weights = np.array([1, 0, 1, 1, 1, 1.0])
    net = Network((3, 4, 2), activation="tanh").init_weights(0)
    losses = net.train(X, Y, mode="standard", learning_rate=0.1, sample_weight=weights)
    assert np.isfinite(losses).all() and np.isfinite(net.params).all()
    without = Network((3, 4, 2), activation="tanh").init_weights(0)
    keep = weights > 0
    assert without.train(X[keep], Y[keep], mode="standard", learning_rate=0.1) == losses
    np.testing.assert_array_equal(net.params, without.params)
    with pytest.raises(ValueError, match="at least one non-zero"):
        net.train(X, Y, mode="standard", sample_weight=np.zeros(6))


@pytest.mark.parametrize("mode", ["standard", "accumulated"])
def test_training_that_diverges_raises_and_leaves_the_network_as_it_was(mode):
    rng = np.random.RandomState(0)
    X, Y = rng.rand(6, 3), rng.rand(6, 2)
    net = Network((3, 4, 2), activation="identity").init_weights(0)
    before = net.params.copy()
    with pytest.raises(ValueError, match="diverged in epoch"):
        net.train(X, Y, mode=mode, learning_rate=1e200, n_epochs=3)
    np.testing.assert_array_equal(net.params, before)

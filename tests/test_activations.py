"""fastbp's own activations in a network, against PyTorch and the NumPy reference.

On the same weights and batch, in float64: the outputs, the objective and
its gradient, and one step of plain gradient descent, taken both by
``Network.step`` (the objective's kernel) and by ``Network.train`` (the
epoch kernel), equal PyTorch's (``torch.nn.functional.leaky_relu``,
``gelu(approximate="none")``, ``silu``, ``softplus``) to float64 rounding.
The same checks against ``naive.py`` run without PyTorch. Each network runs
the kernels compiled for its own codes.
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose

import naive
from fastbp import Network

try:
    import torch
except ImportError:  # pragma: no cover - the NumPy reference still runs
    torch = None

# float64 rounding: a few ulps of each value, relative to the largest of its kind
RTOL = 1e-13
LEARNING_RATE = 0.3
NEW_ACTIVATIONS = ["leaky_relu", "gelu", "silu", "softplus"]
REFERENCES = [
    pytest.param("torch", marks=pytest.mark.skipif(torch is None, reason="PyTorch is not importable")),
    "numpy",
]


def torch_activation(name):
    functional = torch.nn.functional
    return {
        "identity": lambda z: z,
        "logistic": torch.sigmoid,
        "tanh": torch.tanh,
        "relu": functional.relu,
        "leaky_relu": lambda z: functional.leaky_relu(z, negative_slope=0.01),
        "gelu": lambda z: functional.gelu(z, approximate="none"),
        "silu": functional.silu,
        "softplus": functional.softplus,  # beta 1; its threshold (20) is far beyond these inputs
    }[name]


def torch_loss(net):
    """PyTorch's version of the network's objective (unit weights, no L2 term)."""
    if net.loss == "absolute_error":
        return torch.nn.L1Loss()
    if net.loss == "huber":
        return torch.nn.HuberLoss(delta=net.huber_delta)
    assert net.loss == "squared_error"
    return lambda output, Y: 0.5 * ((output - Y) ** 2).sum(dim=1).mean()


def torch_reference(net, X, Y, learning_rate):
    """Outputs, objective, gradient (in the layout of ``net.params``) and parameters after one SGD step."""
    layers = []
    for coef, intercept in zip(net.coefs, net.intercepts):
        layer = torch.nn.Linear(*coef.shape, dtype=torch.float64)
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(coef.T.copy()))
            layer.bias.copy_(torch.from_numpy(intercept.copy()))
        layers.append(layer)
    A = torch.from_numpy(X)
    for layer, name in zip(layers, net.activations):
        A = torch_activation(name)(layer(A))
    loss = torch_loss(net)(A, torch.from_numpy(Y))
    loss.backward()

    def flat(tensors):
        return np.concatenate([t.detach().numpy().ravel() for t in tensors])

    grad = flat([layer.weight.grad.T for layer in layers] + [layer.bias.grad for layer in layers])
    optimizer = torch.optim.SGD([p for layer in layers for p in layer.parameters()], lr=learning_rate)
    optimizer.step()
    params = flat([layer.weight.T for layer in layers] + [layer.bias for layer in layers])
    return A.detach().numpy(), float(loss.detach()), grad, params


def numpy_reference(net, X, Y, learning_rate):
    """:func:`torch_reference` from ``naive.py``."""
    sizes = list(net.layer_units)
    output = naive.forward(X, net.coefs, net.intercepts, list(net.activations))[-1]
    loss, grad = naive.loss_and_gradient(
        X, Y, np.ones(len(X)), net.params.copy(), sizes, list(net.activations), 0.0, net.loss, 1.0,
        float(np.finfo(np.float64).eps), True, net.huber_delta,
    )
    return output, loss, grad, net.params - learning_rate * grad


def assert_matches_reference(net, X, Y, reference):
    """Outputs, objective, gradient and one gradient-descent step (two kernels) equal the reference's."""
    want_output, want_loss, want_grad, want_params = {"torch": torch_reference, "numpy": numpy_reference}[
        reference
    ](net, X, Y, LEARNING_RATE)
    scale = np.abs(want_grad).max()
    assert scale > 1e-3
    assert_allclose(net.predict(X), want_output, rtol=RTOL, atol=RTOL * np.abs(want_output).max())
    loss, grad = net.loss_and_gradient(X, Y)
    assert_allclose(loss, want_loss, rtol=RTOL)
    assert_allclose(grad, want_grad, rtol=RTOL, atol=RTOL * scale)
    stepped, trained = net.copy(), net.copy()
    assert stepped.step(X, Y, LEARNING_RATE) == loss
    assert_allclose(stepped.params, want_params, rtol=RTOL, atol=RTOL * np.abs(want_params).max())
    trained.train(X, Y, mode="accumulated", learning_rate=LEARNING_RATE)
    assert_allclose(trained.params, want_params, rtol=RTOL, atol=RTOL * np.abs(want_params).max())


@pytest.mark.parametrize("reference", REFERENCES)
@pytest.mark.parametrize("activation", NEW_ACTIVATIONS)
def test_each_new_activation_matches_the_reference(rng, activation, reference):
    net = Network((5, 7, 6, 3), activation=activation).init_weights(rng)
    X, Y = rng.normal(size=(9, 5)), rng.normal(size=(9, 3))
    assert_matches_reference(net, X, Y, reference)


@pytest.mark.parametrize("reference", REFERENCES)
def test_activations_mixed_per_layer_match_the_reference(rng, reference):
    net = Network((5, 7, 6, 5, 4, 3), activation=("gelu", "leaky_relu", "silu", "softplus")).init_weights(rng)
    X, Y = rng.normal(size=(9, 5)), rng.normal(size=(9, 3))
    assert_matches_reference(net, X, Y, reference)

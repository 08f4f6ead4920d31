"""Gradient clipping and the cosine schedule (kernels/optimizers.py) against PyTorch and the NumPy reference.

PyTorch, when importable, is the independent implementation:
``torch.nn.utils.clip_grad_norm_`` on the gradient of the same network and
batch, ``torch.optim.lr_scheduler.CosineAnnealingLR`` (stepped once per
mini-batch, ``eta_min=0``) for the learning rates, and ``torch.optim.SGD``
for the steps; the tests that need it are skipped without it.
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose

import naive
from fastbp import kernels as K
from test_kernels import N_SAMPLES, Problem, kernel_train_epoch


@pytest.mark.parametrize("n_steps, n_warmup", [(1, 0), (7, 0), (200, 0), (7, 3), (200, 20)])
def test_cosine_rate_is_the_closed_form_then_zero(n_steps, n_warmup):
    rates = [K.optimizers.cosine_rate(0.03, t, n_steps, n_warmup) for t in range(n_steps + 3)]
    # the compiled cos may differ from the C library's by an ulp (Numba 0.59's LLVM does): an
    # error of about 0.03 * eps absolute, whatever the size of 1 + cos near the end
    assert_allclose(rates, [naive.cosine_rate(0.03, t, n_steps, n_warmup) for t in range(n_steps + 3)],
                    rtol=1e-15, atol=0.03 * np.finfo(np.float64).eps)
    assert all(0.0 <= rate <= 0.03 for rate in rates)
    assert rates[n_warmup] == 0.03 and rates[n_steps:] == [0.0] * 3
    assert np.all(np.diff(rates[:n_warmup]) > 0) and np.all(np.diff(rates[n_warmup:]) <= 0)


def test_clip_scale():
    assert K.optimizers.clip_scale(1.0, 0.25) == 1.0  # a norm of 0.5 is left alone
    assert K.optimizers.clip_scale(1.0, 16.0) == 1.0 / (4.0 + 1e-6)
    assert K.optimizers.clip_scale(1.0, 0.0) == 1.0
    assert np.isnan(K.optimizers.clip_scale(1.0, np.nan))


@pytest.mark.parametrize("n_steps, n_warmup", [(10, 0), (333, 0), (10, 3), (333, 33)])
def test_cosine_rates_are_torch_cosine_annealing_per_step(n_steps, n_warmup):
    torch = pytest.importorskip("torch")
    schedulers = torch.optim.lr_scheduler
    parameter = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.SGD([parameter], lr=0.05)
    cosine = schedulers.CosineAnnealingLR(optimizer, T_max=n_steps - n_warmup, eta_min=0.0)
    if n_warmup:
        warmup = schedulers.LinearLR(optimizer, start_factor=1 / n_warmup, total_iters=n_warmup - 1)
        scheduler = schedulers.SequentialLR(optimizer, [warmup, cosine], milestones=[n_warmup])
    else:
        scheduler = cosine
    for t in range(n_steps + 1):
        want = optimizer.param_groups[0]["lr"]
        # PyTorch updates the rate step by step (a recurrence), not from the closed form
        assert_allclose(K.optimizers.cosine_rate(0.05, t, n_steps, n_warmup), want, rtol=1e-12, atol=1e-15)
        optimizer.step()
        scheduler.step()


def torch_network(torch, p):
    """``p``'s weights as float64 leaf tensors and its objective as a function of them."""
    coefs, intercepts = p.coefs, p.intercepts
    tensors = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in coefs + intercepts]
    n_layers = len(coefs)
    functions = {"tanh": torch.tanh, "relu": torch.relu, "logistic": torch.sigmoid, "identity": lambda z: z}

    def objective(X, Y, sample_weight, alpha):
        A = torch.tensor(X, dtype=torch.float64)
        for l in range(n_layers):
            Z = A @ tensors[l] + tensors[n_layers + l]
            A = Z if l == n_layers - 1 else functions[p.activations[l]](Z)
        s = torch.tensor(sample_weight, dtype=torch.float64)
        y = torch.tensor(Y, dtype=torch.float64)
        data = -(s * (y * torch.log_softmax(A, dim=1)).sum(dim=1)).sum()
        penalty = sum((W**2).sum() for W in tensors[:n_layers])
        return (data + 0.5 * alpha * penalty) / s.sum()

    return tensors, objective


def flat(tensors):
    return np.concatenate([t.detach().numpy().ravel() for t in tensors])


@pytest.mark.parametrize("max_grad_norm", [0.05, 1e6], ids=["clipped", "not-clipped"])
@pytest.mark.parametrize("momentum, nesterov", [(0.0, False), (0.9, True)], ids=["sgd", "nesterov"])
def test_one_clipped_step_equals_torch(rng, max_grad_norm, momentum, nesterov):
    torch = pytest.importorskip("torch")
    p = Problem(rng, np.float64, ["tanh", "relu"], "log_loss", "softmax", weighted=True)
    alpha, learning_rate = 0.3, 0.2
    tensors, objective = torch_network(torch, p)
    loss = objective(p.X, p.Y, p.sample_weight, alpha)
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(tensors, max_grad_norm)
    assert (norm.item() > max_grad_norm) == (max_grad_norm < 1)
    torch.optim.SGD(tensors, lr=learning_rate, momentum=momentum, nesterov=nesterov).step()

    hyper = [learning_rate, momentum, float(nesterov), 0.9, 0.999, 1e-8]
    velocity = np.zeros_like(p.params)
    order = np.arange(N_SAMPLES, dtype=np.int64)
    loss_sum = kernel_train_epoch(
        p, order, N_SAMPLES, alpha, True, False, "sgd", hyper, velocity, velocity.copy(),
        np.zeros(1, dtype=np.int64), max_grad_norm=max_grad_norm, n_parts=2,
    )
    assert_allclose(loss_sum / N_SAMPLES, loss.item(), rtol=1e-12)
    assert_allclose(p.params, flat(tensors), rtol=1e-12, atol=1e-14)


def test_clipped_cosine_steps_equal_torch(rng):
    torch = pytest.importorskip("torch")
    p = Problem(rng, np.float64, ["logistic", "tanh"], "log_loss", "softmax")
    alpha, learning_rate, max_grad_norm, n_steps = 0.1, 0.5, 0.1, 5
    tensors, objective = torch_network(torch, p)
    optimizer = torch.optim.SGD(tensors, lr=learning_rate)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=n_steps, eta_min=0.0)
    batches = [np.arange(0, 4), np.arange(4, 8), np.arange(8, 11)]
    for _ in range(2):  # six steps: the last at the rate 0
        for rows in batches:
            optimizer.zero_grad()
            objective(p.X[rows], p.Y[rows], p.sample_weight[rows], alpha).backward()
            torch.nn.utils.clip_grad_norm_(tensors, max_grad_norm)
            optimizer.step()
            scheduler.step()

    hyper = [learning_rate, 0.0, 0.0, 0.9, 0.999, 1e-8]
    velocity = np.zeros_like(p.params)
    t = np.zeros(1, dtype=np.int64)
    for _ in range(2):
        kernel_train_epoch(
            p, np.arange(N_SAMPLES, dtype=np.int64), 4, alpha, True, False, "sgd", hyper, velocity,
            velocity.copy(), t, schedule=(n_steps, 0), max_grad_norm=max_grad_norm,
        )
    assert t[0] == 6
    assert_allclose(p.params, flat(tensors), rtol=1e-12, atol=1e-14)

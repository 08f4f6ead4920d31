"""Trust the maths: analytic gradients against central finite differences."""

import numpy as np
from sklearn.base import is_classifier
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import unique_labels
from sklearn.utils.validation import check_is_fitted, validate_data

from . import _engine
from ._multilayer_perceptron import encoded_targets, estimator_network
from ._network import Network, validate_input, validate_targets


def check_gradients(model, X, y, sample_weight=None, *, alpha=None, epsilon=1e-3,
                    max_checks_per_layer=None, random_state=0):
    """Compare back-propagated gradients with central finite differences.

    For each checked parameter ``p`` the numerical derivative is the
    fourth-order central difference::

        (8 (J(p + h) - J(p - h)) - (J(p + 2h) - J(p - 2h))) / 12h

    of the same objective the analytic gradient differentiates (see
    :meth:`Network.loss_and_gradient`), evaluated in float64 on a copy of the
    model, so the model is not changed. Its truncation error is O(h^4), so a
    step of 1e-3 keeps both truncation and rounding far below 1e-6 relative
    error; keep relu pre-activations more than ``2h`` times their sensitivity
    away from the kink at zero.

    Parameters
    ----------
    model : Network or fitted MLPClassifier / MLPRegressor
        The network to check; for an estimator, its network, its ``alpha``
        and its label encoding of ``y`` are used.
    X : {array-like, sparse matrix} of shape (n_samples, n_features)
        Input rows.
    y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        Targets (class labels for a classifier).
    sample_weight : array-like of shape (n_samples,), default=None
        Row weights.
    alpha : float, default=None
        L2 strength; None means the estimator's ``alpha`` (0 for a Network).
    epsilon : float, default=1e-3
        Finite-difference step h.
    max_checks_per_layer : int, default=None
        Check at most this many randomly chosen weights (and as many
        intercepts) per layer; None checks every parameter (4 objective
        evaluations each).
    random_state : int, RandomState instance or None, default=0
        Chooses the parameters checked when ``max_checks_per_layer`` is set.

    Returns
    -------
    errors : list of dict
        One dict per layer with keys ``"layer"`` (1-based, as in the texts'
        ``W[l]``), ``"coefs"`` and ``"intercepts"``: the worst relative error
        ``|analytic - numeric| / max(|analytic| + |numeric|, 1e-12)`` among the
        checked parameters of that layer (0.0 when none was checked, e.g.
        intercepts of a network without biases).

    Examples
    --------
    >>> import numpy as np
    >>> from fastbp import Network, check_gradients
    >>> net = Network((3, 4, 2), activation="tanh").init_weights(0)
    >>> rng = np.random.RandomState(0)
    >>> errors = check_gradients(net, rng.rand(5, 3), rng.rand(5, 2))
    >>> max(max(e["coefs"], e["intercepts"]) for e in errors) < 1e-6
    True
    """
    if not 0 < epsilon < np.inf:
        raise ValueError(f"epsilon must be a finite step > 0, got {epsilon!r}.")
    if isinstance(model, Network):
        network = model.copy(np.float64)
        X_checked, Y = X, y
        alpha = 0.0 if alpha is None else alpha
    else:
        check_is_fitted(model)
        network = estimator_network(model).copy(np.float64)
        X_checked = validate_data(model, X, accept_sparse=["csr", "csc"], reset=False)
        if is_classifier(model):
            unknown = np.setdiff1d(unique_labels(y), model.classes_)
            if len(unknown):  # the binarizer would encode them as rows of zeros
                raise ValueError(f"y has labels the model was not fitted on: {unknown}; "
                                 f"classes_ is {model.classes_}.")
            Y = encoded_targets(model, y).astype(np.float64)
        else:
            Y = np.asarray(y, dtype=np.float64)
        alpha = model.alpha if alpha is None else alpha
    X_input = validate_input(network, X_checked)
    Y, sample_weight = validate_targets(network, X_input, Y, sample_weight)
    objective = _engine.Objective(network, X_input, Y, sample_weight, alpha)
    with objective:
        analytic = objective()[1].copy()
        errors = _layer_errors(network, analytic, lambda: objective()[0], epsilon,
                               max_checks_per_layer, random_state)
    return errors


def _layer_errors(network, analytic, objective, epsilon, max_checks_per_layer, random_state):
    """Worst relative error of ``analytic`` per layer against central differences of ``objective``."""
    rng = check_random_state(random_state)
    errors = []
    for l, (fan_in, fan_out, coef_offset, intercept_offset, _) in enumerate(network.layers):
        coef_indices = np.arange(coef_offset, coef_offset + fan_in * fan_out)
        intercept_indices = np.arange(intercept_offset, intercept_offset + fan_out)
        if not network.bias:
            intercept_indices = intercept_indices[:0]
        worst = {}
        for name, indices in (("coefs", coef_indices), ("intercepts", intercept_indices)):
            if max_checks_per_layer is not None and indices.size > max_checks_per_layer:
                indices = rng.choice(indices, max_checks_per_layer, replace=False)
            worst[name] = max(
                (_relative_error(analytic[k], _central_difference(network.params, k, epsilon, objective))
                 for k in indices),
                default=0.0,
            )
        errors.append({"layer": l + 1, **worst})
    return errors


def _central_difference(params, k, epsilon, objective):
    """Fourth-order central difference of the objective in ``params[k]``, restoring it."""
    original = params[k]
    values = []
    for step in (epsilon, -epsilon, 2 * epsilon, -2 * epsilon):
        params[k] = original + step
        values.append(objective())
    params[k] = original
    return (8 * (values[0] - values[1]) - (values[2] - values[3])) / (12 * epsilon)


def _relative_error(analytic, numeric):
    return float(abs(analytic - numeric) / max(abs(analytic) + abs(numeric), 1e-12))

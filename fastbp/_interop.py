"""Conversion between fastbp's MLPs and scikit-learn's, both ways, with identical predictions.

:func:`to_sklearn` turns a fastbp :class:`~fastbp.MLPClassifier` /
:class:`~fastbp.MLPRegressor` into the scikit-learn estimator of the same
name, so a fastbp model can go wherever scikit-learn models go (tools that
check the class, skl2onnx, ...); :func:`from_sklearn` is the reverse. The two
compute the same maths, so the converted model predicts the same: the weights
are copied unchanged (same dtype) with every fitted attribute, and the
optimizer state (velocities, Adam's moments and step count, the current step
size) is translated between fastbp's flat buffers and scikit-learn's
per-layer lists, so ``partial_fit`` continues where the source left off.
"""

import copy
import inspect
import warnings

import numpy as np
import sklearn.neural_network as sk_nn
from sklearn.neural_network._stochastic_optimizers import AdamOptimizer, SGDOptimizer

from ._multilayer_perceptron import (
    MLPClassifier,
    MLPRegressor,
    estimator_network,
    set_training_state,
    training_state,
)
from ._solvers import StochasticOptimizer

__all__ = ["from_sklearn", "to_sklearn"]

_TO_SKLEARN = {MLPClassifier: sk_nn.MLPClassifier, MLPRegressor: sk_nn.MLPRegressor}
_FROM_SKLEARN = {sk_cls: cls for cls, sk_cls in _TO_SKLEARN.items()}
# Converted separately (layout change) or not state at all.
_SPECIAL = frozenset({"coefs_", "intercepts_"})
# Private attributes both implementations read after fitting.
_SHARED_PRIVATE = ("_label_binarizer", "_no_improvement_count")
# What scikit-learn's MLPs can represent.
_SKLEARN_ACTIVATIONS = ("identity", "logistic", "tanh", "relu")
_SKLEARN_LOSSES = ("squared_error", "poisson", "log_loss")


def _sklearn_params(params, sk_cls):
    """``params`` as scikit-learn's ``sk_cls`` takes them: a tuple of one activation becomes its name.

    Raises ValueError for an activation or loss scikit-learn does not have.
    """
    activation = params.get("activation")
    if isinstance(activation, tuple):
        names = set(activation)
        if len(names) > 1:
            raise ValueError(
                f"scikit-learn's {sk_cls.__name__} has one activation for every hidden layer; "
                f"this model has activation={activation!r}, which it cannot represent."
            )
        # no hidden layer: the activation is unused, scikit-learn's default stands in
        activation = names.pop() if names else "relu"
    if activation not in _SKLEARN_ACTIVATIONS:
        raise ValueError(
            f"scikit-learn's {sk_cls.__name__} has no activation {activation!r} (it has "
            f"{', '.join(repr(a) for a in _SKLEARN_ACTIVATIONS)}): this model cannot be converted."
        )
    if params.get("loss", "log_loss") not in _SKLEARN_LOSSES:
        raise ValueError(
            f"scikit-learn's {sk_cls.__name__} has no loss {params['loss']!r}: this model cannot "
            "be converted."
        )
    return dict(params, activation=activation)


def _params_for(source, target_cls):
    """``source``'s parameters that ``target_cls`` has, and the non-default ones it lacks."""
    params = source.get_params(deep=False)
    names = set(target_cls._get_param_names())
    defaults = {
        name: p.default for name, p in inspect.signature(type(source).__init__).parameters.items()
    }
    kept = {k: copy.deepcopy(v) for k, v in params.items() if k in names}
    dropped = sorted(
        k for k, v in params.items()
        if k not in names and not _same(v, defaults.get(k, inspect.Parameter.empty))
    )
    return kept, dropped


def _same(a, b):
    try:
        return bool(a == b) if not isinstance(a, np.ndarray) else False
    except Exception:  # noqa: BLE001 - incomparable values differ
        return False


def _fitted_attributes(source):
    """Deep copies of the public fitted attributes (``name_``) other than the weights."""
    return {
        name: copy.deepcopy(value)
        for name, value in vars(source).items()
        if name.endswith("_") and not name.startswith("_") and name not in _SPECIAL
    }


def _copy_shared_private(source, target):
    for name in _SHARED_PRIVATE:
        if name in vars(source):
            setattr(target, name, copy.deepcopy(getattr(source, name)))


def _split(flat, network):
    """Per-layer copies of a buffer laid out like ``network.params`` (coefs, then intercepts)."""
    coefs = [flat[o : o + a * b].reshape(a, b).copy() for a, b, o, _, _ in network.layers]
    intercepts = [flat[o : o + b].copy() for _, b, _, o, _ in network.layers]
    return coefs + intercepts


# fastbp's training options scikit-learn lacks, with the values that leave training as scikit-learn's.
_TRAINING_OPTIONS = {"dropout": 0.0, "max_grad_norm": None, "warmup_fraction": 0.0}


def _unrepresentable(params):
    """The training settings in ``params`` that scikit-learn's MLPs cannot represent, as ``name=value`` texts."""
    found = []
    dropout = params.get("dropout", 0.0)
    try:
        neutral = not np.any(np.asarray(dropout, dtype=np.float64) != 0)
    except (TypeError, ValueError):
        neutral = False
    if not neutral:
        found.append(f"dropout={dropout!r}")
    if params.get("max_grad_norm") is not None:
        found.append(f"max_grad_norm={params['max_grad_norm']!r}")
    if params.get("learning_rate") == "cosine":
        found.append("learning_rate='cosine'")
    if params.get("warmup_fraction", 0.0) != 0:
        found.append(f"warmup_fraction={params['warmup_fraction']!r}")
    return found


def _flatten(arrays, dtype):
    """The flat buffer of per-layer arrays ordered coefs, then intercepts."""
    return np.concatenate([np.asarray(a, dtype=dtype).ravel() for a in arrays])


def to_sklearn(model):
    """Return the scikit-learn MLP equivalent to a fastbp one, with identical predictions.

    Parameters
    ----------
    model : fastbp.MLPClassifier or fastbp.MLPRegressor
        The model, fitted or not (then the result is not fitted either).

    Returns
    -------
    sk_model : sklearn.neural_network.MLPClassifier or MLPRegressor
        A new estimator with the same parameters and, when ``model`` is
        fitted, the same fitted attributes: ``coefs_`` / ``intercepts_`` as
        plain copies in the model's dtype, ``classes_`` and the label
        binarizer, the loss curve and stopping state, and the optimizer's
        state, so ``predict``, ``predict_proba``, ``score`` and
        ``partial_fit`` work on it.

    Raises
    ------
    TypeError
        If ``model`` is not a fastbp ``MLPClassifier`` or ``MLPRegressor``.
    ValueError
        If ``model`` uses what scikit-learn's MLPs do not have: an
        activation other than 'identity', 'logistic', 'tanh' and 'relu',
        different activations per hidden layer (a tuple of one name, or of
        the same name repeated, converts to that name), or the loss
        'absolute_error' or 'huber'; or if it trains in a way scikit-learn
        cannot: ``dropout`` above 0, ``max_grad_norm`` set or
        ``learning_rate='cosine'`` (set them to 0.0, None or one of
        scikit-learn's schedules first: they do not change predictions).

    Warns
    -----
    UserWarning
        When ``model`` has a parameter scikit-learn's estimator lacks (such as
        ``class_weight``) set to a non-default value: it does not change
        predictions but further training of the result ignores it.

    See Also
    --------
    from_sklearn : The conversion the other way.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from fastbp import MLPClassifier, to_sklearn
    >>> X, y = load_iris(return_X_y=True)
    >>> model = MLPClassifier(max_iter=300, random_state=0).fit(X, y)
    >>> sk_model = to_sklearn(model)
    >>> type(sk_model).__module__
    'sklearn.neural_network._multilayer_perceptron'
    >>> bool((sk_model.predict(X) == model.predict(X)).all())
    True
    """
    sk_cls = _TO_SKLEARN.get(type(model))
    if sk_cls is None:
        raise TypeError(
            f"to_sklearn converts fastbp.MLPClassifier and fastbp.MLPRegressor, got "
            f"{type(model).__module__}.{type(model).__qualname__}."
        )
    params = model.get_params(deep=False)
    unrepresentable = _unrepresentable(params)
    if unrepresentable:
        neutral = dict(_TRAINING_OPTIONS, learning_rate="constant")
        settings = ", ".join(f"{name}={value!r}" for name, value in neutral.items())
        raise ValueError(
            f"scikit-learn's {sk_cls.__name__} cannot train with {', '.join(unrepresentable)}. "
            f"These settings change training, not predictions: convert model.set_params({settings}) "
            "instead (or a clone of it)."
        )
    params, dropped = _params_for(model, sk_cls)
    dropped = [name for name in dropped if name not in _TRAINING_OPTIONS]  # neutral values, as checked
    params = _sklearn_params(params, sk_cls)
    if dropped:
        warnings.warn(
            f"scikit-learn's {sk_cls.__name__} has no parameter(s) {dropped}: the converted "
            "model predicts the same, but further training ignores them.",
            UserWarning,
        )
    sk_model = sk_cls(**params)
    if "coefs_" not in vars(model):
        return sk_model
    for name, value in _fitted_attributes(model).items():
        setattr(sk_model, name, value)
    _copy_shared_private(model, sk_model)
    network = estimator_network(model)
    sk_model.coefs_ = [c.copy() for c in model.coefs_]
    sk_model.intercepts_ = [b.copy() for b in model.intercepts_]
    best, optimizer = training_state(model)
    if best is not None:
        best_layers = _split(best, network)
    else:  # what scikit-learn's initialisation sets
        best_layers = [p.copy() for p in sk_model.coefs_ + sk_model.intercepts_]
    sk_model._best_coefs = best_layers[: network.n_layers]
    sk_model._best_intercepts = best_layers[network.n_layers :]
    # (a state left from a fit of another architecture is not carried over)
    if optimizer is not None and optimizer.state_a.shape == network.params.shape:
        sk_model._optimizer = _optimizer_to_sklearn(optimizer, sk_model, network)
    return sk_model


def _optimizer_to_sklearn(optimizer, sk_model, network):
    params = sk_model.coefs_ + sk_model.intercepts_
    if optimizer.solver == "adam":
        sk_optimizer = AdamOptimizer(
            params,
            optimizer.learning_rate_init,
            optimizer.beta_1,
            optimizer.beta_2,
            optimizer.epsilon,
        )
        sk_optimizer.ms = _split(optimizer.state_a, network)
        sk_optimizer.vs = _split(optimizer.state_b, network)
        t = int(optimizer.step_counter[0])
        sk_optimizer.t = t
        if t > 0:  # the step size scikit-learn's last update used
            sk_optimizer.learning_rate = (
                optimizer.learning_rate_init
                * np.sqrt(1 - optimizer.beta_2**t)
                / (1 - optimizer.beta_1**t)
            )
    else:
        sk_optimizer = SGDOptimizer(
            params,
            optimizer.learning_rate_init,
            optimizer.lr_schedule,
            optimizer.momentum,
            optimizer.nesterov,
            optimizer.power_t,
        )
        sk_optimizer.velocities = _split(optimizer.state_a, network)
        sk_optimizer.learning_rate = optimizer.learning_rate
    return sk_optimizer


def from_sklearn(model):
    """Return the fastbp MLP equivalent to a scikit-learn one, with identical predictions.

    Parameters
    ----------
    model : sklearn.neural_network.MLPClassifier or MLPRegressor
        The model, fitted or not (then the result is not fitted either).

    Returns
    -------
    fastbp_model : fastbp.MLPClassifier or fastbp.MLPRegressor
        A new estimator with the same parameters and fitted attributes; its
        ``coefs_`` / ``intercepts_`` are views of a new network's flat buffer
        holding copies of the weights (same dtype), and the optimizer state
        is translated so ``partial_fit`` continues where ``model`` left off.

    Raises
    ------
    TypeError
        If ``model`` is not scikit-learn's ``MLPClassifier`` or
        ``MLPRegressor``.

    See Also
    --------
    to_sklearn : The conversion the other way.
    """
    cls = _FROM_SKLEARN.get(type(model))
    if cls is None:
        raise TypeError(
            f"from_sklearn converts sklearn.neural_network.MLPClassifier and MLPRegressor, got "
            f"{type(model).__module__}.{type(model).__qualname__}."
        )
    params, _ = _params_for(model, cls)
    fast_model = cls(**params)
    if "coefs_" not in vars(model):
        return fast_model
    for name, value in _fitted_attributes(model).items():
        setattr(fast_model, name, value)
    _copy_shared_private(model, fast_model)
    # _get_network copies the weights into a new flat buffer and makes
    # coefs_ / intercepts_ its views (needs out_activation_, set above)
    fast_model.coefs_ = [np.array(c) for c in model.coefs_]
    fast_model.intercepts_ = [np.array(b) for b in model.intercepts_]
    network = estimator_network(fast_model)
    if model.early_stopping and hasattr(model, "_best_coefs"):
        best = model._best_coefs + model._best_intercepts
        set_training_state(fast_model, best_params=_flatten(best, network.dtype))
    sk_optimizer = getattr(model, "_optimizer", None)
    shapes = [p.shape for p in model.coefs_ + model.intercepts_]
    moments = getattr(sk_optimizer, "ms", None) or getattr(sk_optimizer, "velocities", None) or []
    # (a state left from a fit of another architecture is not carried over)
    translatable = [m.shape for m in moments] == shapes
    if isinstance(sk_optimizer, (SGDOptimizer, AdamOptimizer)) and translatable:
        set_training_state(fast_model, optimizer=_optimizer_from_sklearn(sk_optimizer, fast_model, network))
    return fast_model


def _optimizer_from_sklearn(sk_optimizer, fast_model, network):
    adam = isinstance(sk_optimizer, AdamOptimizer)
    optimizer = StochasticOptimizer(
        "adam" if adam else "sgd",
        network.n_params,
        network.dtype,
        sk_optimizer.learning_rate_init,
        lr_schedule=getattr(sk_optimizer, "lr_schedule", fast_model.learning_rate),
        momentum=getattr(sk_optimizer, "momentum", fast_model.momentum),
        nesterov=getattr(sk_optimizer, "nesterov", fast_model.nesterovs_momentum),
        power_t=getattr(sk_optimizer, "power_t", fast_model.power_t),
        beta_1=getattr(sk_optimizer, "beta_1", fast_model.beta_1),
        beta_2=getattr(sk_optimizer, "beta_2", fast_model.beta_2),
        epsilon=getattr(sk_optimizer, "epsilon", fast_model.epsilon),
    )
    if adam:
        optimizer.state_a[:] = _flatten(sk_optimizer.ms, network.dtype)
        optimizer.state_b[:] = _flatten(sk_optimizer.vs, network.dtype)
        optimizer.step_counter[0] = sk_optimizer.t
        # fastbp's Adam derives each step's size from learning_rate_init
    else:
        optimizer.state_a[:] = _flatten(sk_optimizer.velocities, network.dtype)
        optimizer.learning_rate = sk_optimizer.learning_rate
    return optimizer

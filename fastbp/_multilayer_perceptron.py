"""Drop-in scikit-learn MLPClassifier and MLPRegressor on fastbp's fused kernels.

Parameters, defaults, fitted attributes, errors and the consumption of the
random state (initialisation, validation split, shuffles) are those of
``sklearn.neural_network``; the maths runs in ``fastbp.kernels``: one
compiled call per epoch, one per L-BFGS objective evaluation.
"""

import copy
import math
import operator
import warnings
from numbers import Integral, Real

import numpy as np
import scipy.optimize
import scipy.sparse as sp
from sklearn import get_config
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    RegressorMixin,
    _fit_context,
    is_classifier,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_array, check_random_state, column_or_1d
from sklearn.utils._param_validation import Interval, InvalidParameterError, Options, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import _check_partial_fit_first_call, type_of_target, unique_labels
from sklearn.utils.optimize import _check_optimize_result
from sklearn.utils.class_weight import compute_class_weight, compute_sample_weight
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from . import _engine, kernels
from ._buffers import aligned_empty
from ._engine import KernelInput
from ._network import HIDDEN_ACTIVATIONS, Network, layer_views
from ._solvers import StochasticOptimizer

try:  # scikit-learn >= 1.9 has a callback framework
    from sklearn.callback import CallbackSupportMixin
except ImportError:  # pragma: no cover - older scikit-learn

    class CallbackSupportMixin:
        """Stand-in when scikit-learn has no ``sklearn.callback``: no callbacks."""

_STOCHASTIC_SOLVERS = ["sgd", "adam"]
_STOPPING_STATE = (
    "loss_curve_",
    "best_loss_",
    "validation_scores_",
    "validation_loss_curve_",
    "best_validation_score_",
    "best_validation_loss_",
    "_no_improvement_count",
    "_best_params",
)
# The network and its views: restored by reference, with the weights copied back.
_LIVE_STATE = ("_network", "coefs_", "intercepts_")
# Lists a fit only appends to (or replaces): restored by reference, cut back to
# their length before the call, as a copy of them costs as much as the call
# after thousands of partial_fit calls.
_CURVE_STATE = ("loss_curve_", "validation_scores_", "validation_loss_curve_")
# scikit-learn's callback machinery keeps its own state on the estimator.
_CALLBACK_STATE_PREFIXES = ("_skl_callbacks", "_callback_fit_ctx", "_parent_callback_ctx")
# Attributes an epoch changes (with the weights and the optimizer state).
_EPOCH_STATE = ("n_iter_", "t_", "loss_") + _STOPPING_STATE


class _ValidationSet:
    """A validation set: rows, labels for scoring, encoded targets, weights."""

    def __init__(self, X, y, Y, sample_weight):
        self.X = X
        self.y = y
        self.Y = Y
        self.sample_weight = sample_weight

    def weights(self, dtype):
        """Row weights in ``dtype`` (ones when none were given)."""
        if self.sample_weight is None:
            return np.ones(self.X.shape[0], dtype=dtype)
        return np.ascontiguousarray(self.sample_weight, dtype=dtype)


def _layer_sizes(hidden_layer_sizes):
    """``hidden_layer_sizes`` as a list of Python ints, with scikit-learn's errors for bad sizes.

    A size <= 0 raises scikit-learn's ValueError; a size that is not an
    integer, its TypeError, here naming the parameter.
    """
    given = hidden_layer_sizes
    sizes = list(given) if hasattr(given, "__iter__") else [given]
    if any(isinstance(size, Real) and size <= 0 for size in sizes):
        raise ValueError("hidden_layer_sizes must be > 0, got %s." % sizes)
    for size in sizes:
        try:
            operator.index(size)
            problem = f"{size!r} is a bool" if isinstance(size, (bool, np.bool_)) else None
        except TypeError as exc:
            problem = str(exc)
        if problem:
            raise TypeError(
                f"hidden_layer_sizes must be a sequence of integers, got {given!r}: {problem}."
            )
    # Python ints: sizes of a small NumPy integer type overflow in the size products
    return [operator.index(size) for size in sizes]


def _hidden_activations(activation, n_hidden):
    """The activation of each of ``n_hidden`` hidden layers from the ``activation`` parameter.

    A name applies to every hidden layer; a tuple must name a known
    activation per hidden layer, or InvalidParameterError says what is wrong.
    """
    if isinstance(activation, str):
        return (activation,) * n_hidden
    unknown = [name for name in activation if not isinstance(name, str) or name not in HIDDEN_ACTIVATIONS]
    if unknown:
        raise InvalidParameterError(
            f"The 'activation' parameter must name one of {sorted(HIDDEN_ACTIVATIONS)} for each "
            f"hidden layer; got {unknown[0]!r} in {activation!r}."
        )
    if len(activation) != n_hidden:
        raise InvalidParameterError(
            f"The 'activation' parameter names {len(activation)} activation(s), {activation!r}, but "
            f"hidden_layer_sizes has {n_hidden} hidden layer(s): give one name per hidden layer, "
            "or a single name for all."
        )
    return tuple(activation)
def _dropout_rates(dropout, n_hidden):
    """``dropout`` as a tuple of one rate in [0, 1) per hidden layer (Python floats).

    A single number applies to every hidden layer; a sequence must give one
    number per hidden layer.
    """
    if isinstance(dropout, Real) and not isinstance(dropout, (bool, np.bool_)):
        rates = [dropout] * n_hidden
    else:
        rates = list(np.ravel(np.asarray(dropout, dtype=object))) if np.ndim(dropout) == 1 else None
        if rates is None or len(rates) != n_hidden:
            raise ValueError(
                f"dropout must be a number in [0, 1) or a sequence of one per hidden layer "
                f"({n_hidden} for hidden_layer_sizes with {n_hidden} layers), got {dropout!r}."
            )
    for rate in rates:
        if not isinstance(rate, Real) or isinstance(rate, (bool, np.bool_)) or not 0 <= rate < 1:
            raise ValueError(f"Each dropout rate must be a real number in [0, 1), got {dropout!r}.")
    return tuple(float(rate) for rate in rates)


def _check_weight_shapes(coefs, intercepts, n_features):
    """Raise ValueError unless coefs_ / intercepts_ form one chain of layers."""
    if len(coefs) == 0 or len(coefs) != len(intercepts):
        raise ValueError(
            f"coefs_ and intercepts_ must be non-empty lists of the same length, got "
            f"{len(coefs)} and {len(intercepts)} arrays."
        )
    for i, (coef, intercept) in enumerate(zip(coefs, intercepts)):
        if coef.ndim != 2 or intercept.shape != (coef.shape[1],):
            raise ValueError(
                f"coefs_[{i}] has shape {coef.shape} and intercepts_[{i}] shape "
                f"{intercept.shape}; expected (fan_in, fan_out) and (fan_out,)."
            )
        if i > 0 and coef.shape[0] != coefs[i - 1].shape[1]:
            raise ValueError(
                f"coefs_[{i}] has {coef.shape[0]} rows but layer {i} has "
                f"{coefs[i - 1].shape[1]} units."
            )
    if n_features is not None and coefs[0].shape[0] != n_features:
        raise ValueError(
            f"coefs_[0] has {coefs[0].shape[0]} rows but the model was fitted on "
            f"{n_features} features."
        )


def _combine_weights(sample_weight, class_weights, dtype):
    """Sample weights times class weights (either may be None)."""
    if class_weights is None:
        return sample_weight
    class_weights = np.asarray(class_weights, dtype=dtype)
    return class_weights if sample_weight is None else sample_weight * class_weights


def _check_class_weight(class_weight, classes, multilabel):
    """Raise ValueError unless ``class_weight`` gives each class a finite weight >= 0, not all 0.

    A dict for one output is checked against ``classes``; a list of dicts
    for a multilabel target, each against the labels 0 and 1 of its column.
    """
    if multilabel and isinstance(class_weight, list):
        for k, weights in enumerate(class_weight):
            if isinstance(weights, dict):
                _check_class_weights_of(weights, np.array([0, 1]), f"class_weight[{k}]")
    elif not multilabel and isinstance(class_weight, dict):
        _check_class_weights_of(class_weight, np.asarray(classes), "class_weight")


def _check_class_weights_of(weights, classes, name):
    """Check the weights the dict ``weights`` (``name`` in errors) gives the array ``classes``."""
    keys = list(weights)
    # scikit-learn matches keys to classes: ask it, with each key's value
    # replaced by -1 - its position (a class without a key weighs 1)
    found = compute_class_weight(
        {key: -1.0 - i for i, key in enumerate(keys)}, classes=classes, y=classes
    )
    labels = classes.tolist()
    values = [1 if f > 0 else weights[keys[int(-f) - 1]] for f in found]
    for label, value in zip(labels, values):
        try:
            valid = isinstance(value, Real) and math.isfinite(value) and value >= 0
        except OverflowError:  # an int too large for a float
            valid = False
        if not valid:
            raise ValueError(
                f"{name} must give each class a finite weight >= 0, got {value!r} for "
                f"class {label!r}."
            )
    if not any(values):
        raise ValueError(
            f"{name} gives every class the weight 0; at least one class needs a weight > 0."
        )


def _diverged(params, loss, where):
    """The error raised when training ends ``where`` with a non-finite loss or weights ``params``."""
    finite_weights = np.isfinite(params).all()
    what = (
        f"the training loss became {loss}" if finite_weights
        else "Solver produced non-finite parameter weights"
    )
    return ValueError(
        f"{what[0].upper()}{what[1:]}. The input data may contain large values and need "
        f"to be preprocessed. Training diverged {where} and stopped; the model was left as "
        "it was before this call. Try scaling X (e.g. StandardScaler), a smaller "
        "learning_rate_init or a larger alpha."
    )


def _diverged_warning(estimator, params, loss, epoch):
    """The warning when early stopping ends a training diverged at ``epoch`` (weights ``params``)."""
    finite_weights = np.isfinite(params).all()
    what = f"the training loss became {loss}" if finite_weights else "the weights became non-finite"
    watched = "loss" if estimator.early_stopping_metric == "loss" else "score"
    return (
        f"Training diverged in epoch {epoch}: {what}. Training stopped and kept the "
        f"weights with the best validation {watched}. Try scaling X (e.g. StandardScaler), "
        "a smaller learning_rate_init or a larger alpha."
    )


def _shuffled(sample_idx, random_state):
    """``sklearn.utils.shuffle(sample_idx, random_state=random_state)``, with the same draws.

    ``shuffle`` (``resample`` without replacement) permutes ``arange(n)``
    with ``random_state.shuffle`` and indexes with it; its input checks,
    run once per epoch, are a noticeable share of a small fit.
    ``random_state`` is a ``RandomState`` and ``sample_idx`` a 1-D array.
    """
    permutation = np.arange(sample_idx.shape[0])
    random_state.shuffle(permutation)
    return sample_idx[permutation]


def _check_batch_weights(weights, order, batch_size):
    """Raise scikit-learn's error (NumPy's ``average``) when a mini-batch's sample weights sum to zero.

    ``weights`` is the per-row weight array and ``order`` the epoch's rows;
    the mini-batches are consecutive runs of ``batch_size`` rows of it.
    """
    sums = np.add.reduceat(weights[order], np.arange(0, order.shape[0], batch_size))
    if not sums.all():
        raise ZeroDivisionError("Weights sum to zero, can't be normalized")


class _EpochCallbacks:
    """``sklearn.callback`` hooks around a fit and its epochs; no-ops without callbacks.

    An epoch is a subtask of the fit named ``task_name``: an epoch of a
    stochastic solver, or an iteration of L-BFGS.

    Parameters
    ----------
    estimator : BaseMultilayerPerceptron
        The estimator being fitted.
    X : {ndarray, sparse matrix}
        Training rows, passed to the hooks.
    y : ndarray
        Encoded training targets (decoded for the hooks when they are used).
    incremental : bool
        partial_fit calls run no callbacks.
    network : Network
        The network trained.
    params : ndarray of shape (n_params,)
        The parameters being trained (published only when the fit succeeds).
    task_name : str, default="epoch"
        The name of the epochs' tasks.
    """

    def __init__(self, estimator, X, y, incremental, network, params, task_name="epoch"):
        self.estimator = estimator
        self.task_name = task_name
        self.context = None
        self.epoch = None
        if incremental or not getattr(estimator, "_skl_callbacks", None):
            return
        self.network = network
        self.params = params
        self.X = X
        self.y = estimator._decode_targets(y)
        self.context = estimator._init_callback_context(max_subtasks=estimator.max_iter)
        self.context.call_on_fit_task_begin(estimator=estimator, X=self.X, y=self.y)

    def _fitted_attributes(self):
        coefs, intercepts = layer_views(self.network, self.params.copy())
        return {"coefs_": coefs, "intercepts_": intercepts, "n_iter_": self.estimator.n_iter_}

    def epoch_begins(self):
        if self.context is not None:
            self.epoch = self.context.subcontext(task_name=self.task_name)
            self.epoch.call_on_fit_task_begin(estimator=self.estimator, X=self.X, y=self.y)

    def epoch_ends(self):
        """Run the end-of-epoch hooks; True when a callback asks to stop."""
        if self.context is None:
            return False
        epoch, self.epoch = self.epoch, None  # ended once, even if a hook raises
        stop = epoch.call_on_fit_task_end(
            estimator=self.estimator, X=self.X, y=self.y,
            reconstruction_attributes=self._fitted_attributes,
        )
        return bool(stop)

    def close(self):
        if self.context is None:
            return
        if self.epoch is not None:  # an epoch that did not complete
            self.epoch.call_on_fit_task_end(estimator=self.estimator)
        self.context.call_on_fit_task_end(
            estimator=self.estimator, X=self.X, y=self.y,
            reconstruction_attributes=self._fitted_attributes,
        )


def _plain_float_matrix(X):
    """Whether X is a 2-D float32 or float64 ndarray with rows and columns."""
    return (
        type(X) is np.ndarray
        and X.ndim == 2
        and X.dtype in (np.float32, np.float64)
        and X.shape[0] > 0
        and X.shape[1] > 0
    )


def _all_finite(array):
    """Whether every value of the non-empty ``array`` is finite (or finiteness is assumed).

    They are when the largest and the smallest are: NaN propagates through
    ``max``. The two reductions are cheaper than the sum that
    scikit-learn's own check starts with (which also says nothing when it
    overflows). A BLAS dot product of the values with themselves would be
    cheaper still, but it leaves NumPy's BLAS threads spinning on the cores
    the fit then needs, which slows the fit that follows.
    """
    if get_config()["assume_finite"]:
        return True
    return bool(np.isfinite(array.max()) and np.isfinite(array.min()))


def _fitted_label_binarizer(y):
    """``LabelBinarizer().fit(y)``, with its most common case written out.

    For a non-empty one-dimensional ndarray of integers, scikit-learn's
    ``fit`` finds the type of target ("binary" up to two classes, else
    "multiclass") and the sorted classes with four passes of ``np.unique``
    and checks that cannot fail. Here one count of the labels (or one
    ``np.unique`` when they are negative or large) sets the same attributes
    for a fraction of the cost. Anything else goes through ``fit``.
    """
    binarizer = LabelBinarizer()
    if type(y) is np.ndarray and y.ndim == 1 and y.dtype.kind in "iu" and y.shape[0] > 0:
        if y.min() >= 0 and y.max() < 4 * y.shape[0]:  # the counts' array stays small
            classes = np.flatnonzero(np.bincount(y.astype(np.intp, copy=False))).astype(y.dtype)
        else:
            classes = np.unique(y)
        binarizer.y_type_ = "multiclass" if len(classes) > 2 else "binary"
        binarizer.sparse_input_ = False
        binarizer.classes_ = classes
        return binarizer
    return binarizer.fit(y)


def estimator_network(estimator):
    """The network of a fitted fastbp estimator, whose flat buffer ``coefs_`` / ``intercepts_`` view."""
    return estimator._get_network()


def check_parameters(estimator):
    """Raise the error ``estimator.fit`` would raise for its constructor parameters, without fitting.

    scikit-learn's parameter table, then fastbp's own checks of the values
    the table lets through.
    """
    estimator._validate_params()
    _checked_settings(estimator)


def _checked_settings(estimator):
    """fastbp's checks of constructor values the parameter table lets through.

    Returns
    -------
    hidden_layer_sizes : tuple of int
        The hidden layers' sizes.
    dropout : tuple of float
        The dropout rate of each hidden layer.
    """
    hidden_layer_sizes = _layer_sizes(estimator.hidden_layer_sizes)
    _hidden_activations(estimator.activation, len(hidden_layer_sizes))
    dropout = _dropout_rates(estimator.dropout, len(hidden_layer_sizes))
    if estimator.solver == "lbfgs" and any(dropout):
        raise ValueError(
            "dropout needs solver='sgd' or 'adam': L-BFGS minimises one fixed objective, "
            "which random masks would change at every evaluation."
        )
    if estimator.warmup_fraction > 0 and estimator.learning_rate != "cosine":
        raise ValueError(
            f"warmup_fraction={estimator.warmup_fraction!r} needs learning_rate='cosine' (the warm-up "
            f"leads into its decay), got learning_rate={estimator.learning_rate!r}."
        )
    return hidden_layer_sizes, dropout


def training_state(estimator):
    """What a fastbp estimator keeps for further training: ``(best_params, optimizer)``.

    The flat weights early stopping kept, and the stochastic solver's state
    (a ``StochasticOptimizer``); None for what it does not have.
    """
    return getattr(estimator, "_best_params", None), getattr(estimator, "_optimizer", None)


def set_training_state(estimator, best_params=None, optimizer=None):
    """Give a fastbp estimator the training state :func:`training_state` returns (None: leave it)."""
    if best_params is not None:
        estimator._best_params = best_params
    if optimizer is not None:
        estimator._optimizer = optimizer


def encoded_targets(estimator, y):
    """Targets ``y`` encoded as a fitted fastbp estimator trains on (indicator rows for a classifier)."""
    return estimator._encode_targets(y)


class BaseMultilayerPerceptron(CallbackSupportMixin, BaseEstimator):
    """Shared machinery of :class:`MLPClassifier` and :class:`MLPRegressor`.

    Warning: This class should not be used directly. Use derived classes instead.
    """

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(HIDDEN_ACTIVATIONS)), tuple],
        "solver": [StrOptions({"lbfgs", "sgd", "adam"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive", "cosine"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), Options(Real, {np.inf})],
        "max_fun": [Interval(Integral, 1, None, closed="left")],
        "early_stopping_metric": [StrOptions({"score", "loss"})],
        "dropout": [Interval(Real, 0, 1, closed="left"), list, tuple, np.ndarray],
        "max_grad_norm": [Interval(Real, 0, None, closed="neither"), None],
        "warmup_fraction": [Interval(Real, 0, 1, closed="left")],
    }

    def __init__(
        self,
        hidden_layer_sizes,
        activation,
        solver,
        alpha,
        batch_size,
        learning_rate,
        learning_rate_init,
        power_t,
        max_iter,
        loss,
        shuffle,
        random_state,
        tol,
        verbose,
        warm_start,
        momentum,
        nesterovs_momentum,
        early_stopping,
        validation_fraction,
        beta_1,
        beta_2,
        epsilon,
        n_iter_no_change,
        max_fun,
        early_stopping_metric,
        dropout=0.0,
        max_grad_norm=None,
        warmup_fraction=0.0,
    ):
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.loss = loss
        self.hidden_layer_sizes = hidden_layer_sizes
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.early_stopping_metric = early_stopping_metric
        self.dropout = dropout
        self.max_grad_norm = max_grad_norm
        self.warmup_fraction = warmup_fraction

    # ------------------------------------------------------------------
    # The network behind coefs_ / intercepts_

    def _kernel_loss(self):
        """Loss name of the kernels and the factor on its reported data term."""
        if self.loss == "log_loss":
            name = "binary_log_loss" if self.out_activation_ == "logistic" else "log_loss"
        else:
            name = self.loss
        scale = 1.0 / self.n_outputs_ if name == "squared_error" else 1.0
        return name, scale

    def _loss_parameters(self):
        """Keyword arguments of the network's loss beyond its name (the huber regressor's delta)."""
        return {}

    def _new_network(self, layer_units, dtype):
        network = Network(
            layer_units,
            activation=_hidden_activations(self.activation, len(layer_units) - 2),
            out_activation=self.out_activation_,
            loss=self._kernel_loss()[0],
            dtype=dtype,
            **self._loss_parameters(),
        )
        self._network = network
        self.coefs_ = network.coefs
        self.intercepts_ = network.intercepts
        return network

    def _get_network(self):
        """The network whose flat buffer ``coefs_`` / ``intercepts_`` view.

        When the user replaced those lists or their arrays (they are then no
        longer views of one buffer), or changed ``activation``, ``loss``,
        ``huber_delta`` or ``out_activation_`` since the network was built,
        the weights' values are copied into a new network and ``coefs_`` /
        ``intercepts_`` become its views.
        """
        network = getattr(self, "_network", None)
        if (
            network is not None
            and network.owns(self.coefs_, self.intercepts_)
            and network.activations[:-1] == _hidden_activations(self.activation, network.n_layers - 1)
            and network.activations[-1] == self.out_activation_
            and network.loss == self._kernel_loss()[0]
            and network.huber_delta == self._loss_parameters().get("huber_delta", network.huber_delta)
        ):
            return network
        coefs = [np.asarray(c) for c in self.coefs_]
        intercepts = [np.asarray(b) for b in self.intercepts_]
        _check_weight_shapes(coefs, intercepts, getattr(self, "n_features_in_", None))
        dtype = np.result_type(*coefs, *intercepts)
        if dtype not in (np.float32, np.float64):
            dtype = np.float64
        layer_units = [coefs[0].shape[0]] + [c.shape[1] for c in coefs]
        network = self._new_network(layer_units, dtype)
        network.set_weights(coefs, intercepts)
        return network

    def __getstate__(self):
        # coefs_ / intercepts_ carry the weights; the network is rebuilt from
        # them on unpickling (the state is a copy: pickling must not change self)
        state = dict(super().__getstate__())
        state.pop("_network", None)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if "coefs_" in self.__dict__:
            self._get_network()

    # ------------------------------------------------------------------
    # Fitting

    def _initialize(self, y, layer_units, dtype):
        """Set all fitted attributes and draw initial weights, as scikit-learn does."""
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = y.shape[1]
        self.n_layers_ = len(layer_units)

        if not is_classifier(self):
            self.out_activation_ = "exp" if self.loss == "poisson" else "identity"
        elif self._label_binarizer.y_type_ == "multiclass":
            self.out_activation_ = "softmax"
        else:
            self.out_activation_ = "logistic"

        network = self._new_network(layer_units, dtype)
        for i in range(self.n_layers_ - 1):
            coef_init, intercept_init = self._init_coef(layer_units[i], layer_units[i + 1])
            network.coefs[i][...] = coef_init
            network.intercepts[i][...] = intercept_init
        # A fresh fit forgets the curves and stopping state of any earlier one;
        # stochastic solvers set them up again in _reset_stopping_state.
        for name in _STOPPING_STATE:
            self.__dict__.pop(name, None)

    def _init_coef(self, fan_in, fan_out):
        # Glorot et al.'s uniform initialisation, drawn in float64 as scikit-learn does
        # (the factor of a tuple of activations is its first one's, as Network.init_weights takes it).
        first = self.activation if isinstance(self.activation, str) else tuple(self.activation)[:1]
        factor = 2.0 if first in ("logistic", ("logistic",)) else 6.0
        init_bound = np.sqrt(factor / (fan_in + fan_out))
        coef_init = self._random_state.uniform(-init_bound, init_bound, (fan_in, fan_out))
        intercept_init = self._random_state.uniform(-init_bound, init_bound, fan_out)
        return coef_init, intercept_init

    def _fit(self, X, y, sample_weight=None, incremental=False, X_val=None, y_val=None,
             sample_weight_val=None, classes=None):
        """Fit, leaving the estimator exactly as it was if anything fails.

        The weights are trained in a working copy and published when the
        call succeeds (``Network.publish``): predictions made in other
        threads meanwhile use the weights from before the call or from
        after it.
        """
        saved = self._save_state()
        try:
            if incremental:
                self._start_partial_fit(y, classes)
            return self._fit_unguarded(
                X, y, sample_weight, incremental, X_val, y_val, sample_weight_val
            )
        except BaseException:
            self._restore_state(saved)
            raise

    def _save_state(self):
        """Copies of the fitted state a fit may change, for :meth:`_restore_state`.

        Constructor parameters and scikit-learn's callback bookkeeping are
        not fitted state: they stay the user's objects, untouched. The
        curves (:data:`_CURVE_STATE`) are kept with their lengths, not
        copied, and random generators as their states: a deep copy of a
        ``RandomState`` is a large share of a small partial_fit call, and
        its state costs far less to take.
        """
        values = {k: v for k, v in self.__dict__.items() if self._is_fitted_state(k)}
        curves = {k: values.pop(k) for k in _CURVE_STATE if type(values.get(k)) is list}
        generators = [k for k, v in values.items() if type(v) is np.random.RandomState]
        return {
            "live": {k: self.__dict__[k] for k in _LIVE_STATE if k in self.__dict__},
            "curves": {k: (curve, len(curve)) for k, curve in curves.items()},
            "generators": {k: values.pop(k).get_state() for k in generators},
            "values": copy.deepcopy(values),
        }

    def _is_fitted_state(self, name):
        return (
            name not in _LIVE_STATE
            and name not in self._parameter_constraints
            and name not in ("loss", "class_weight")
            and not name.startswith(_CALLBACK_STATE_PREFIXES)
        )

    def _restore_state(self, saved):
        """Put back the fitted state (and weights, in place) saved by :meth:`_save_state`."""
        for name in [k for k in self.__dict__ if self._is_fitted_state(k) or k in _LIVE_STATE]:
            del self.__dict__[name]
        self.__dict__.update(saved["live"])
        self.__dict__.update(saved["values"])
        for name, (curve, length) in saved["curves"].items():
            del curve[length:]
            self.__dict__[name] = curve
        for name, state in saved["generators"].items():  # a copy, as deepcopy would give
            generator = np.random.RandomState()
            generator.set_state(state)
            self.__dict__[name] = generator

    def _fit_unguarded(self, X, y, sample_weight, incremental, X_val, y_val, sample_weight_val):
        hidden_layer_sizes, dropout = _checked_settings(self)
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)

        X, y, class_weights = self._validate_input(X, y, incremental, reset=first_pass)
        n_samples, n_features = X.shape
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X)
        sample_weight = _combine_weights(sample_weight, class_weights, X.dtype)
        if y.ndim == 1:
            y = y.reshape((-1, 1))
        self.n_outputs_ = y.shape[1]
        layer_units = [n_features] + hidden_layer_sizes + [self.n_outputs_]
        validation = self._check_validation_set(X_val, y_val, sample_weight_val, X.dtype)
        _engine.check_memory(layer_units, n_samples, X.dtype, self.solver, self.batch_size, any(dropout))

        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(y, layer_units, X.dtype)
        network = self._get_network()
        if network.layer_units != tuple(layer_units):
            raise ValueError(
                f"The network has layer sizes {network.layer_units} but the data and "
                f"hidden_layer_sizes need {tuple(layer_units)}; refit without warm_start."
            )
        if network.dtype != X.dtype:
            # warm start or partial_fit on data of another dtype: keep the model's dtype
            X = X.astype(network.dtype)
            if sample_weight is not None:
                sample_weight = sample_weight.astype(network.dtype)

        params = aligned_empty(network.n_params, network.dtype)
        params[:] = network.params
        if self.solver in _STOCHASTIC_SOLVERS:
            self._fit_stochastic(
                X, y, sample_weight, network, params, incremental, validation,
                dropout if any(dropout) else None,
            )
        elif self.solver == "lbfgs":
            if validation is not None:
                warnings.warn(
                    "X_val / y_val are not used by solver='lbfgs', which has no epochs."
                )
            self._fit_lbfgs(X, y, sample_weight, network, params)

        if not np.isfinite(params).all():
            raise ValueError(
                "Solver produced non-finite parameter weights. The input data may"
                " contain large values and need to be preprocessed."
            )
        network.publish(params)
        return self

    def _check_validation_set(self, X_val, y_val, sample_weight_val, dtype):
        """Validate a user-given validation set; None when there is none."""
        if X_val is None and y_val is None:
            if sample_weight_val is not None:
                raise ValueError("sample_weight_val is given without X_val and y_val.")
            return None
        if X_val is None or y_val is None:
            raise ValueError("X_val and y_val must be given together.")
        X_val = validate_data(
            self, X_val, accept_sparse=["csr", "csc"], dtype=(np.float64, np.float32), reset=False
        )
        X_val = X_val.astype(dtype, copy=False)
        y_labels = self._validate_validation_targets(y_val, X_val.shape[0])
        if sample_weight_val is not None:
            sample_weight_val = _check_sample_weight(sample_weight_val, X_val, dtype=dtype)
        sample_weight_val = _combine_weights(
            sample_weight_val, self._class_weight_rows(y_labels), dtype
        )
        return _ValidationSet(X_val, y_labels, self._encode_targets(y_labels), sample_weight_val)

    def _training_arrays(self, X, y, sample_weight, network):
        """Targets and sample weights in the network's dtype, C-contiguous."""
        Y = np.ascontiguousarray(y, dtype=network.dtype)
        if sample_weight is None:
            weights = np.ones(X.shape[0], dtype=network.dtype)
        else:
            weights = np.ascontiguousarray(sample_weight, dtype=network.dtype)
        return Y, weights

    def _fit_lbfgs(self, X, y, sample_weight, network, params):
        """Minimise the full-data objective with SciPy's L-BFGS-B, reporting each iteration.

        After each iteration the verbose line is printed and the callbacks'
        hooks run; a callback asking to stop ends the fit with the weights
        and ``n_iter_`` of that iteration, without a ConvergenceWarning.
        """
        X_input = KernelInput(X, network.dtype)
        Y, weights = self._training_arrays(X, y, sample_weight, network)
        _, loss_scale = self._kernel_loss()
        objective = _engine.Objective(network, X_input, Y, weights, self.alpha, loss_scale)
        callbacks = _EpochCallbacks(self, X, y, False, network, params, task_name="lbfgs-iter")
        last = {}  # loss and float64 gradient at params, the point evaluated last
        stopped = []

        def loss_grad(packed):
            if callbacks.epoch is None:  # an iteration begins with its first evaluation
                callbacks.epoch_begins()
            params[:] = packed
            loss, grad = objective(params)
            last.update(loss=loss, grad=grad.astype(np.float64))
            return loss, last["grad"]

        # SciPy passes an OptimizeResult to a callback whose one parameter has this name
        def iteration_ends(intermediate_result):
            x = intermediate_result.x.astype(params.dtype, copy=False)
            if not np.array_equal(params, x):  # SciPy evaluated elsewhere after accepting x
                params[:] = x
                loss, grad = objective(params)
                last.update(loss=loss, grad=grad.astype(np.float64))
            self.n_iter_ += 1
            self.loss_ = float(last["loss"])
            if self.verbose:
                print(
                    "Iteration %d, loss = %.8f, gradient inf-norm = %.8e"
                    % (self.n_iter_, self.loss_, np.abs(last["grad"]).max())
                )
            if callbacks.epoch_ends():
                stopped.append(self.n_iter_)
                raise StopIteration  # SciPy >= 1.11 ends the optimisation at this iterate

        self.n_iter_ = 0
        try:
            with objective:
                opt_res = scipy.optimize.minimize(
                    loss_grad,
                    params.astype(np.float64),
                    method="L-BFGS-B",
                    jac=True,
                    options={"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol},
                    callback=iteration_ends,
                )
        finally:
            callbacks.close()
        if not np.isfinite(opt_res.fun):
            raise _diverged(params, opt_res.fun, "in L-BFGS")
        if not stopped:
            self.n_iter_ = _check_optimize_result("lbfgs", opt_res, self.max_iter)
        self.loss_ = opt_res.fun
        params[:] = opt_res.x

    def _validation_split(self, X, y):
        """Row numbers of the training and validation sets, as scikit-learn splits them."""
        should_stratify = is_classifier(self) and self.n_outputs_ == 1
        stratify = y if should_stratify else None
        train_idx, val_idx = train_test_split(
            np.arange(X.shape[0]),
            random_state=self._random_state,
            test_size=self.validation_fraction,
            stratify=stratify,
        )
        if val_idx.shape[0] < 2:
            raise ValueError(
                "The validation set is too small. Increase 'validation_fraction' "
                "or the size of your dataset."
            )
        return train_idx, val_idx

    def _fit_stochastic(self, X, y, sample_weight, network, params, incremental, validation, dropout):
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        optimizer = getattr(self, "_optimizer", None)
        stale = (
            optimizer is None
            or optimizer.solver != self.solver
            or optimizer.state_a.shape[0] != network.n_params
            or optimizer.state_a.dtype != network.dtype
        )
        if not incremental or stale:
            self._optimizer = StochasticOptimizer(
                self.solver,
                network.n_params,
                network.dtype,
                self.learning_rate_init,
                lr_schedule=self.learning_rate,
                momentum=self.momentum,
                nesterov=self.nesterovs_momentum,
                power_t=self.power_t,
                beta_1=self.beta_1,
                beta_2=self.beta_2,
                epsilon=self.epsilon,
            )
        early_stopping = self.early_stopping
        X_input = KernelInput(X, network.dtype)
        Y, weights = self._training_arrays(X, y, sample_weight, network)
        train_rows = None
        if early_stopping and validation is None:
            train_idx, val_idx = self._validation_split(X, y)
            validation = _ValidationSet(
                X[val_idx],
                self._decode_targets(y[val_idx]),
                y[val_idx],
                None if sample_weight is None else sample_weight[val_idx],
            )
            train_rows = train_idx.astype(np.int64)
        self._reset_stopping_state(params, validation is not None)

        n_samples = X.shape[0] if train_rows is None else train_rows.shape[0]
        sample_idx = np.arange(n_samples, dtype=int)
        if self.batch_size != "auto" and self.batch_size > n_samples:
            warnings.warn(
                "Got `batch_size` less than 1 or larger than sample size. It is going to be clipped"
            )
        batch_size = _engine.batch_size_for(self.batch_size, n_samples)
        _, loss_scale = self._kernel_loss()
        # drawn only with dropout: without it, the generator gives what scikit-learn's gives
        dropout_seed = 0 if dropout is None else int(self._random_state.randint(np.iinfo(np.int32).max))
        validation_input = None if validation is None else KernelInput(validation.X, network.dtype)
        callbacks = _EpochCallbacks(self, X, y, incremental, network, params)
        # only then can a mini-batch's weights sum to zero
        nonpositive_weights = sample_weight is not None and not (weights > 0).all()

        self.n_iter_ = 0
        checkpoint = None
        trainer = _engine.EpochTrainer(
            network, params, X_input, Y, weights, batch_size, self._optimizer, self.alpha, loss_scale,
            schedule=self._optimizer.cosine_schedule(
                self.max_iter, -(-n_samples // batch_size), self.warmup_fraction
            ),
            max_grad_norm=self.max_grad_norm, dropout=dropout, dropout_seed=dropout_seed,
            # t_ + k numbers epoch k of this call: the epochs of earlier calls have smaller numbers
            first_epoch=self.t_,
        )
        with trainer:
            try:
                for _ in range(self.max_iter):
                    checkpoint = self._checkpoint(params)
                    if self.shuffle:
                        sample_idx = _shuffled(sample_idx, self._random_state)
                    order = sample_idx if train_rows is None else train_rows[sample_idx]
                    if nonpositive_weights:
                        _check_batch_weights(weights, order, batch_size)
                    callbacks.epoch_begins()
                    loss = trainer.run(np.ascontiguousarray(order, dtype=np.int64)) / n_samples
                    diverged = not (np.isfinite(loss) and np.isfinite(params).all())
                    if diverged and not early_stopping:
                        raise _diverged(params, loss, f"in epoch {self.n_iter_ + 1}")
                    self.n_iter_ += 1
                    self.loss_ = loss
                    self.t_ += n_samples
                    self.loss_curve_.append(self.loss_)
                    if self.verbose:
                        print("Iteration %d, loss = %.8f" % (self.n_iter_, self.loss_))

                    self._update_no_improvement_count(
                        early_stopping, validation, validation_input, network, params
                    )
                    self._optimizer.iteration_ends(self.t_)

                    stop = diverged
                    if diverged:
                        # the epoch is recorded as scikit-learn records it; the best
                        # validation weights, restored below, are still finite
                        warnings.warn(_diverged_warning(self, params, loss, self.n_iter_), ConvergenceWarning)
                    elif self._no_improvement_count > self.n_iter_no_change:
                        if early_stopping:
                            watched = "loss" if self.early_stopping_metric == "loss" else "score"
                            msg = (
                                "Validation %s did not improve more than "
                                "tol=%f for %d consecutive epochs."
                                % (watched, self.tol, self.n_iter_no_change)
                            )
                        else:
                            msg = (
                                "Training loss did not improve more than tol=%f"
                                " for %d consecutive epochs." % (self.tol, self.n_iter_no_change)
                            )
                        stop = self._optimizer.trigger_stopping(msg, self.verbose)
                        if not stop:
                            self._no_improvement_count = 0
                    checkpoint = None  # the epoch is complete
                    if callbacks.epoch_ends() or stop or incremental:
                        break

                    if self.n_iter_ == self.max_iter:
                        warnings.warn(
                            "Stochastic Optimizer: Maximum iterations (%d) "
                            "reached and the optimization hasn't converged yet." % self.max_iter,
                            ConvergenceWarning,
                        )
            except KeyboardInterrupt:
                if checkpoint is not None:
                    self._rollback(checkpoint, params)
                warnings.warn("Training interrupted by user.")
            finally:
                callbacks.close()

        if early_stopping:
            params[:] = self._best_params

    def _checkpoint(self, params):
        """What an epoch changes (with the trained ``params``), so an interrupted epoch can be undone as a whole."""
        optimizer = self._optimizer
        return {
            "params": params.copy(),
            "optimizer": (
                optimizer.state_a.copy(),
                optimizer.state_b.copy(),
                optimizer.step_counter.copy(),
                optimizer.learning_rate,
            ),
            "attributes": {
                name: copy.copy(self.__dict__[name]) for name in _EPOCH_STATE if name in self.__dict__
            },
        }

    def _rollback(self, checkpoint, params):
        """Return to the state saved by :meth:`_checkpoint`."""
        params[:] = checkpoint["params"]
        optimizer = self._optimizer
        state_a, state_b, step_counter, learning_rate = checkpoint["optimizer"]
        optimizer.state_a[:] = state_a
        optimizer.state_b[:] = state_b
        optimizer.step_counter[:] = step_counter
        optimizer.learning_rate = learning_rate
        for name in _EPOCH_STATE:
            self.__dict__.pop(name, None)
        self.__dict__.update(checkpoint["attributes"])

    def _reset_stopping_state(self, params, has_validation):
        """Make the stopping state fit this call of a stochastic solver.

        Unlike scikit-learn, a warm-started ``fit`` with early stopping starts
        from a fresh best validation score, no-improvement count and best
        weights: scikit-learn carries them over from the previous fit, so a
        second fit on new data can stop at once and restore the old weights.
        Attributes missing because the previous fit used another solver or
        early-stopping setting are created instead of failing.
        """
        if not hasattr(self, "loss_curve_"):
            self.loss_curve_ = []
        if not hasattr(self, "_no_improvement_count"):
            self._no_improvement_count = 0
        if has_validation:
            if getattr(self, "validation_scores_", None) is None:
                self.validation_scores_ = []
            if getattr(self, "validation_loss_curve_", None) is None:
                self.validation_loss_curve_ = []
        else:
            self.validation_scores_ = None
            self.validation_loss_curve_ = None
        if self.early_stopping:
            self._no_improvement_count = 0
            self.best_validation_score_ = -np.inf
            self.best_validation_loss_ = np.inf
            self._best_params = params.copy()
            self.best_loss_ = None
        else:
            if getattr(self, "best_loss_", None) is None:
                self.best_loss_ = np.inf
            self.best_validation_score_ = None
            self.best_validation_loss_ = None

    def _validation_output(self, validation, validation_input, network, params):
        """Validation score and loss of the weights ``params`` (one forward pass)."""
        output = _engine.predict(network, validation_input, params=params)
        y_pred = self._predictions_from_output(output)
        # scikit-learn's rule: NaN only when the predictions are non-finite numbers, so a
        # classifier's labels are scored even when its outputs overflowed
        if np.issubdtype(y_pred.dtype, np.floating) and not np.isfinite(y_pred).all():
            score = np.nan
        else:
            score = self._score_function(validation.y, y_pred, sample_weight=validation.sample_weight)
        Y = np.ascontiguousarray(validation.Y, dtype=network.dtype)
        weights = validation.weights(network.dtype)
        loss_name, loss_scale = self._kernel_loss()
        data_loss = kernels.weighted_loss_sum(
            output, Y, weights, kernels.LOSS_CODES[loss_name], float(np.finfo(network.dtype).eps),
            network.huber_delta,
        )
        penalty = kernels.squared_coef_norm(params, network.layers)
        weight_sum = float(weights.sum(dtype=np.float64))
        loss = loss_scale * data_loss / weight_sum + 0.5 * self.alpha * penalty / weight_sum
        return score, loss

    def _update_no_improvement_count(self, early_stopping, validation, validation_input, network, params):
        if validation is not None:
            val_score, val_loss = self._validation_output(validation, validation_input, network, params)
            self.validation_scores_.append(val_score)
            self.validation_loss_curve_.append(val_loss)
        if early_stopping:
            if self.verbose:
                print("Validation score: %f" % self.validation_scores_[-1])
            if self.early_stopping_metric == "loss":
                improved = val_loss < self.best_validation_loss_ - self.tol
                is_best = val_loss < self.best_validation_loss_
            else:
                improved = not (val_score < self.best_validation_score_ + self.tol)
                is_best = val_score > self.best_validation_score_
            self._no_improvement_count = 0 if improved else self._no_improvement_count + 1
            # a diverged classifier's labels may still score best; its weights are never kept
            if is_best and np.isfinite(params).all():
                self.best_validation_score_ = val_score
                self.best_validation_loss_ = val_loss
                self._best_params = params.copy()
        else:
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if self.loss_curve_[-1] < self.best_loss_:
                self.best_loss_ = self.loss_curve_[-1]

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None, X_val=None, y_val=None, sample_weight_val=None):
        """Fit the model to data matrix X and target(s) y.

        Parameters
        ----------
        X : {ndarray, sparse matrix} of shape (n_samples, n_features)
            The input data.
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            The target values (class labels in classification, real numbers in
            regression).
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.
        X_val : {ndarray, sparse matrix} of shape (n_val_samples, n_features), default=None
            A validation set of your own (names as in scikit-learn's
            HistGradientBoosting). With ``early_stopping=True`` it replaces the
            ``validation_fraction`` split (all of X is then trained on);
            either way ``validation_scores_`` and ``validation_loss_curve_``
            are recorded on it after every epoch. Not used by 'lbfgs'.
        y_val : array-like of shape (n_val_samples,) or (n_val_samples, n_outputs), default=None
            Targets of the validation set; required with ``X_val``.
        sample_weight_val : array-like of shape (n_val_samples,), default=None
            Weights of the validation rows.

        Returns
        -------
        self : object
            Returns a trained MLP model.
        """
        return self._fit(
            X, y, sample_weight=sample_weight, incremental=False,
            X_val=X_val, y_val=y_val, sample_weight_val=sample_weight_val,
        )

    def _start_partial_fit(self, y, classes):
        """Nothing to set up before a regressor's partial_fit."""

    def _check_solver(self):
        if self.solver not in _STOCHASTIC_SOLVERS:
            raise AttributeError(
                "partial_fit is only available for stochastic"
                " optimizers. %s is not stochastic." % self.solver
            )
        return True

    # ------------------------------------------------------------------
    # Prediction

    def _validate_prediction_input(self, X):
        """``validate_data(self, X, accept_sparse=["csr", "csc"], reset=False)``, with a fast path.

        A float32 or float64 ndarray with rows, the fitted number of
        columns and finite values, given to an estimator fitted without
        feature names, passes every check of ``validate_data`` unchanged;
        it is returned as is, since those checks cost more than a small
        prediction. Anything else goes through ``validate_data`` and gets
        its conversions, warnings and errors.
        """
        if (
            _plain_float_matrix(X)
            and X.shape[1] == getattr(self, "n_features_in_", None)
            and not hasattr(self, "feature_names_in_")
            and _all_finite(X)
        ):
            return X
        return validate_data(self, X, accept_sparse=["csr", "csc"], reset=False)

    def _validate_training_input(self, X, y, reset, **check_params):
        """Training X and y checked as ``validate_data`` checks them, with a fast path.

        The check is ``validate_data(self, X, y, accept_sparse=["csr", "csc"],
        multi_output=True, dtype=(np.float64, np.float32), reset=reset,
        **check_params)``. As for :meth:`_validate_prediction_input`: a
        float32 or float64 ndarray X with rows and columns (the fitted
        number of them unless ``reset``) and finite values, with an ndarray
        y of finite floats or of integers, 1-D or 2-D and as long as X,
        given to an estimator without feature names, passes every check
        unchanged; it is returned as is, with ``n_features_in_`` set when
        ``reset``, without the cost of those checks.
        """
        if (
            _plain_float_matrix(X)
            and (reset or X.shape[1] == getattr(self, "n_features_in_", None))
            and not hasattr(self, "feature_names_in_")
            and type(y) is np.ndarray
            and y.shape[:1] == X.shape[:1]
            and (y.ndim == 1 or (y.ndim == 2 and y.shape[1] > 0))
            and y.dtype.kind in "fiu"
            and _all_finite(X)
            and (y.dtype.kind != "f" or _all_finite(y))
        ):
            if reset:
                self.n_features_in_ = X.shape[1]
            return X, y
        return validate_data(
            self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
            dtype=(np.float64, np.float32), reset=reset, **check_params,
        )

    def _forward_pass_fast(self, X, labels=False):
        """Output-layer activations of X, of shape (n_samples, n_outputs).

        With ``labels`` (softmax networks only), the index of each row's
        first largest output instead, of shape (n_samples,): the softmax is
        then computed only for rows with near ties (see
        ``kernels.predict``).
        """
        X = self._validate_prediction_input(X)
        network = self._get_network()
        dtype = np.result_type(X.dtype, network.dtype)
        if dtype not in (np.float32, np.float64):
            dtype = np.float64
        X_input = KernelInput(X, dtype)
        indices = np.empty(X_input.n_samples, dtype=np.int64) if labels else None
        output = _engine.predict(network, X_input, labels=indices)
        return output if indices is None else indices

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


class MLPClassifier(ClassifierMixin, BaseMultilayerPerceptron):
    """Multi-layer Perceptron classifier, a drop-in for scikit-learn's on fused kernels.

    This model optimizes the log-loss function using LBFGS or stochastic
    gradient descent. Parameters, attributes and results from the same
    ``random_state`` are those of :class:`sklearn.neural_network.MLPClassifier`.

    Parameters
    ----------
    hidden_layer_sizes : array-like of shape (n_layers - 2,), default=(100,)
        The ith element represents the number of neurons in the ith hidden layer.
    activation : {'identity', 'logistic', 'tanh', 'relu', 'leaky_relu', 'gelu', 'silu', \
'softplus'} or tuple of str, default='relu'
        Activation function for the hidden layers: one name for all, or a
        tuple with one name per hidden layer such as ``('gelu', 'tanh')``.
        scikit-learn's four, and (fastbp additions) 'leaky_relu' (``z`` if
        ``z > 0`` else ``0.01 z``), 'gelu' (``z Phi(z)``, the exact form with
        the normal CDF ``Phi``), 'silu' (``z / (1 + exp(-z))``) and 'softplus'
        (``log(1 + exp(z))``).
    solver : {'lbfgs', 'sgd', 'adam'}, default='adam'
        The solver for weight optimization.
    alpha : float, default=0.0001
        Strength of the L2 regularization term, divided by the sample weight
        sum when added to the loss.
    batch_size : {'auto'} or int, default='auto'
        Size of minibatches for stochastic optimizers; 'auto' is
        ``min(200, n_samples)``.
    learning_rate : {'constant', 'invscaling', 'adaptive', 'cosine'}, default='constant'
        Learning rate schedule for weight updates: scikit-learn's three apply
        to 'sgd' only. 'cosine' (for 'sgd' and 'adam') decays the rate from
        ``learning_rate_init`` towards 0 over ``max_iter`` epochs, per
        mini-batch step: step t (numbered from 0 over the solver's life) of T
        = ``max_iter`` times the batches per epoch has the rate
        ``learning_rate_init * (1 + cos(pi * t / T)) / 2``, and 0 from step T
        on (``warmup_fraction`` adds a linear warm-up). A warm-started ``fit``
        starts the schedule again; each ``partial_fit`` call is one epoch of
        it, T counting that call's batches. (fastbp addition.)
    learning_rate_init : float, default=0.001
        The initial learning rate of 'sgd' and 'adam'.
    power_t : float, default=0.5
        The exponent of the 'invscaling' schedule.
    max_iter : int, default=200
        Maximum number of epochs (stochastic solvers) or iterations (lbfgs).
    shuffle : bool, default=True
        Whether to shuffle samples in each epoch.
    random_state : int, RandomState instance, default=None
        Seeds weight initialisation, the early-stopping split and shuffling.
    tol : float, default=1e-4
        Tolerance for the optimization.
    verbose : bool, default=False
        Whether to print progress messages to stdout: ``Iteration N, loss =
        L`` after each epoch of 'sgd' and 'adam' (as scikit-learn), and after
        each iteration of 'lbfgs' (which scikit-learn does not report), with
        the largest absolute component of the gradient, which L-BFGS stops on
        when it falls to ``tol``: ``Iteration N, loss = L, gradient inf-norm
        = G``. (fastbp addition for 'lbfgs'.)
    warm_start : bool, default=False
        Reuse the previous solution as initialization.
    momentum : float, default=0.9
        Momentum for 'sgd'.
    nesterovs_momentum : bool, default=True
        Whether to use Nesterov's momentum.
    early_stopping : bool, default=False
        Whether to hold out ``validation_fraction`` of the data and stop when
        the validation score stops improving.
        A fit whose loss or weights become non-finite then stops at that epoch
        with a ConvergenceWarning and keeps the best validation weights
        (without early stopping it raises ValueError).
    validation_fraction : float, default=0.1
        Proportion of training data set aside for early stopping.
    beta_1 : float, default=0.9
        Adam's first-moment decay.
    beta_2 : float, default=0.999
        Adam's second-moment decay.
    epsilon : float, default=1e-8
        Adam's numerical-stability term.
    n_iter_no_change : int, default=10
        Maximum number of epochs not meeting the ``tol`` improvement.
    max_fun : int, default=15000
        Maximum number of loss function calls of 'lbfgs'.
    early_stopping_metric : {'score', 'loss'}, default='score'
        What early stopping watches on the validation set: the accuracy
        (scikit-learn's rule) or the validation loss. The weights of the best
        epoch by that measure are restored. (fastbp addition.)
    class_weight : dict, list of dict, 'balanced' or None, default=None
        Weights of the classes, multiplied into ``sample_weight`` (and into
        ``sample_weight_val``): a dict ``{label: weight}`` (a list of dicts for
        multilabel ``y``), or 'balanced' for ``n_samples / (n_classes *
        bincount(y))``. A weight is a finite real number >= 0 and at least one
        class weighs more than 0; a class without a key weighs 1. 'balanced'
        is refused by ``partial_fit``. (fastbp addition.)
    dropout : float or array-like of shape (n_layers - 2,), default=0.0
        Rate of inverted dropout on the hidden layers' outputs, in [0, 1):
        in training, each hidden unit's output of each sample is multiplied
        by 0 with this probability and by ``1 / (1 - dropout)`` otherwise,
        and back-propagation multiplies by the same mask; predictions use
        every unit. One number for every hidden layer or one per hidden
        layer. The masks come from a generator seeded from ``random_state``
        and depend only on it, the epoch, the sample and the unit: a fit is
        reproducible and gives the same bits on any number of threads. The
        loss ``loss_curve_`` records is that of the masked network. Only
        with 'sgd' and 'adam' ('lbfgs' raises a ValueError). (fastbp
        addition.)
    max_grad_norm : float or None, default=None
        Clip each mini-batch's gradient (the L2 penalty's included) to this
        global L2 norm before the solver's step: it is multiplied by
        ``max_grad_norm / (norm + 1e-6)`` when that is below 1, as PyTorch's
        ``clip_grad_norm_`` does. Only used by 'sgd' and 'adam'. None does not
        clip. (fastbp addition.)
    warmup_fraction : float, default=0.0
        With ``learning_rate='cosine'``, the fraction of its T steps, W =
        ``floor(warmup_fraction * T)``, over which the rate rises linearly
        (step t < W has ``learning_rate_init * (t + 1) / W``) before the
        cosine decay over the other T - W steps. In [0, 1); above 0 only
        with 'cosine'. (fastbp addition.)

    Attributes
    ----------
    classes_ : ndarray or list of ndarray of shape (n_classes,)
        Class labels for each output.
    loss_ : float
        The current loss computed with the loss function.
    best_loss_ : float or None
        The minimum loss reached during fitting (None with early stopping).
    loss_curve_ : list of shape (`n_iter_`,)
        The loss at each epoch.
    validation_scores_ : list of shape (`n_iter_`,) or None
        Validation accuracy at each epoch whenever there is a validation set.
    best_validation_score_ : float or None
        Validation accuracy of the restored epoch when ``early_stopping=True``.
    validation_loss_curve_ : list of shape (`n_iter_`,) or None
        Validation loss after each epoch whenever there is a validation set
        (``X_val`` or the early-stopping split); None otherwise.
    best_validation_loss_ : float or None
        Validation loss of the restored epoch when ``early_stopping=True``.
    t_ : int
        The number of training samples seen by the solver during fitting.
    coefs_ : list of shape (n_layers - 1,)
        The ith element is the weight matrix of layer i, of shape
        (fan_in, fan_out); a view of the model's flat parameter buffer.
    intercepts_ : list of shape (n_layers - 1,)
        The ith element is the bias vector of layer i + 1.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during fit, when they are all strings.
    n_iter_ : int
        The number of iterations the solver has run.
    n_layers_ : int
        Number of layers.
    n_outputs_ : int
        Number of outputs.
    out_activation_ : str
        Name of the output activation function.

    See Also
    --------
    MLPRegressor : Multi-layer Perceptron regressor.

    Examples
    --------
    >>> from fastbp import MLPClassifier
    >>> from sklearn.datasets import make_classification
    >>> X, y = make_classification(n_samples=100, random_state=1)
    >>> clf = MLPClassifier(random_state=1, max_iter=300).fit(X, y)
    >>> clf.predict(X[:5]).shape
    (5,)
    """

    _parameter_constraints: dict = {
        **BaseMultilayerPerceptron._parameter_constraints,
        "class_weight": [dict, list, StrOptions({"balanced"}), None],
    }

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        early_stopping_metric="score",
        class_weight=None,
        dropout=0.0,
        max_grad_norm=None,
        warmup_fraction=0.0,
    ):
        self.class_weight = class_weight
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes,
            activation=activation,
            solver=solver,
            alpha=alpha,
            batch_size=batch_size,
            learning_rate=learning_rate,
            learning_rate_init=learning_rate_init,
            power_t=power_t,
            max_iter=max_iter,
            loss="log_loss",
            shuffle=shuffle,
            random_state=random_state,
            tol=tol,
            verbose=verbose,
            warm_start=warm_start,
            momentum=momentum,
            nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            n_iter_no_change=n_iter_no_change,
            max_fun=max_fun,
            early_stopping_metric=early_stopping_metric,
            dropout=dropout,
            max_grad_norm=max_grad_norm,
            warmup_fraction=warmup_fraction,
        )

    def _validate_input(self, X, y, incremental, reset):
        X, y = self._validate_training_input(X, y, reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)

        # incremental warm_start classes_ defined -> action (as scikit-learn):
        # first fit or refit defines classes_, warm_start checks the same
        # classes, partial_fit checks the classes are known.
        if (not hasattr(self, "classes_")) or (not self.warm_start and not incremental):
            self._label_binarizer = _fitted_label_binarizer(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            self._check_label_columns(y)
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError(
                        "warm_start can only be used where `y` has the same "
                        "classes as in the previous call to fit. Previously "
                        f"got {self.classes_}, `y` has {classes}"
                    )
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(
                    "`y` has classes not in `self.classes_`. "
                    f"`self.classes_` has {self.classes_}. 'y' has {classes}."
                )
        if incremental and isinstance(self.class_weight, str):
            raise ValueError(
                "class_weight='balanced' is not supported for partial_fit: the class "
                "frequencies of one batch are not those of the data. Pass a dict, e.g. "
                "from sklearn.utils.class_weight.compute_class_weight over all labels."
            )
        _check_class_weight(
            self.class_weight, self.classes_,
            self._label_binarizer.y_type_.startswith("multilabel"),
        )
        class_weights = self._class_weight_rows(y)
        # bool keeps float32 data from being upcast
        return X, self._encode_targets(y), class_weights

    def predict(self, X):
        """Predict using the multi-layer perceptron classifier.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        y : ndarray, shape (n_samples,) or (n_samples, n_classes)
            The predicted classes.
        """
        check_is_fitted(self)
        if self._labels_are_first_largest_outputs():
            return self._label_binarizer.classes_[self._forward_pass_fast(X, labels=True)]
        return self._predictions_from_output(self._forward_pass_fast(X))

    _score_function = staticmethod(accuracy_score)

    def _labels_are_first_largest_outputs(self):
        """Whether each row's label is the class of its first largest softmax output.

        True for the binarizer :meth:`_predictions_from_output` handles as
        multiclass, when the network's output layer is softmax: the labels
        then come from the kernels without most of the softmax.
        """
        binarizer = self._label_binarizer
        return (
            binarizer.y_type_ == "multiclass"
            and not binarizer.sparse_input_
            and isinstance(binarizer.classes_, np.ndarray)
            and self._get_network().activations[-1] == "softmax"
        )

    def _predictions_from_output(self, output):
        """Class labels from output-layer activations.

        ``self._label_binarizer.inverse_transform(output)``, with its two
        common cases written out, as the binarizer's generic path costs more
        than the work: multiclass takes the class of each row's first
        largest output, binary compares the one output with the threshold
        halfway between the binarizer's labels.
        """
        if self.n_outputs_ == 1:
            output = output.ravel()
        binarizer = self._label_binarizer
        classes = binarizer.classes_
        if not binarizer.sparse_input_ and isinstance(classes, np.ndarray):
            if binarizer.y_type_ == "multiclass":
                return classes[output.argmax(axis=1)]
            if binarizer.y_type_ == "binary" and output.ndim == 1 and len(classes) == 2:
                threshold = (binarizer.pos_label + binarizer.neg_label) / 2.0
                return classes[(output > threshold).astype(np.intp)]
        return binarizer.inverse_transform(output)

    def _decode_targets(self, Y):
        """Class labels from indicator rows."""
        return self._label_binarizer.inverse_transform(Y)

    def _encode_targets(self, y):
        """Indicator rows (bool) from class labels.

        ``self._label_binarizer.transform(y).astype(bool)``, with its
        common case written out, as the binarizer's generic path costs more
        than the work: one-dimensional labels of two or more classes, all in
        the sorted ``classes_``, mark each label's position in ``classes_``
        (binary: one column, True for the second class). Other targets
        (multilabel, one class, labels not in ``classes_``) go through the
        binarizer.
        """
        binarizer = self._label_binarizer
        classes = binarizer.classes_
        if sp.issparse(y):  # a multilabel indicator matrix
            return binarizer.transform(y).astype(bool)
        y = np.asarray(y)
        if (
            y.ndim == 1
            and binarizer.y_type_ in ("binary", "multiclass")
            and not binarizer.sparse_input_
            and isinstance(classes, np.ndarray)
            and len(classes) >= 2
        ):
            positions = self._class_positions(classes, y)
            if positions is not None:
                if len(classes) == 2:
                    return (positions == 1)[:, np.newaxis]
                Y = np.zeros((len(y), len(classes)), dtype=bool)
                Y[np.arange(len(y)), positions] = True
                return Y
        return binarizer.transform(y).astype(bool)

    @staticmethod
    def _class_positions(classes, y):
        """Position of each label of ``y`` in the sorted ``classes``; None if one is not there.

        Integer labels are looked up in a table with a slot for every value
        from the first class to the last when there are no more such values
        than labels, which is much faster than a binary search; other labels
        are found by binary search.
        """
        if classes.dtype.kind in "iu" and y.dtype.kind in "iu" and len(y):
            low, high = int(classes[0]), int(classes[-1])
            if high - low < len(y) and -(2**62) < low and high < 2**62:
                if int(y.min()) < low or int(y.max()) > high:
                    return None
                table = np.full(high - low + 1, -1, dtype=np.intp)
                table[classes.astype(np.intp) - low] = np.arange(len(classes))
                positions = table[y.astype(np.intp, copy=False) - low]
                return positions if positions.min() >= 0 else None
        positions = np.minimum(np.searchsorted(classes, y), len(classes) - 1)
        return positions if np.array_equal(classes[positions], y) else None

    def _validate_validation_targets(self, y_val, n_samples):
        y_val = column_or_1d(y_val, warn=True) if np.ndim(y_val) == 2 and np.shape(y_val)[1] == 1 else y_val
        y_val = np.asarray(y_val)
        if y_val.shape[0] != n_samples:
            raise ValueError(
                f"X_val has {n_samples} samples but y_val has {y_val.shape[0]}."
            )
        if self._label_binarizer.y_type_.startswith("multilabel"):
            return y_val
        unseen = np.setdiff1d(unique_labels(y_val), self.classes_)
        if len(unseen):
            raise ValueError(
                f"y_val has classes not seen in y: {unseen}. `self.classes_` has {self.classes_}."
            )
        return y_val

    def _class_weight_rows(self, y):
        """Weight of each row from ``class_weight`` (None when it is None)."""
        if self.class_weight is None:
            return None
        return compute_sample_weight(self.class_weight, y)

    @available_if(lambda est: est._check_solver())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """Update the model with a single iteration over the given data.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.
        y : {array-like, sparse matrix} of shape (n_samples,) or (n_samples, n_labels)
            The target values: class labels, or a multilabel indicator
            matrix of 0 and 1 (dense or sparse, as ``fit`` takes), of the
            same form in every call.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.
        classes : array of shape (n_classes,), default=None
            Classes across all calls to partial_fit; required on the first
            call. For class labels, ``np.unique(y_all)`` over the whole data
            (a call's ``y`` need not hold every class). For a multilabel
            indicator ``y``, the indices of its label columns,
            ``np.arange(n_labels)``: the ``classes_`` that ``fit`` gives; every
            call's ``y`` then has these ``n_labels`` columns. (scikit-learn
            does not check ``classes`` against a multilabel ``y``.)

        Returns
        -------
        self : object
            Trained MLP model.
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=True, classes=classes)

    def _start_partial_fit(self, y, classes):
        """Set up the labels on the first partial_fit call (checked on later ones).

        For a multilabel indicator ``y``, ``classes`` must be the indices of
        its label columns, ``np.arange(n_labels)``: the ``classes_`` that
        ``fit`` gives.
        """
        if _check_partial_fit_first_call(self, classes):
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                n_labels = np.shape(y)[1]
                # integers first: NumPy < 1.25 warns when it compares strings with numbers
                integers = self.classes_.dtype.kind in "iu"
                if not (integers and np.array_equal(self.classes_, np.arange(n_labels))):
                    raise ValueError(
                        f"y is a multilabel indicator matrix of {n_labels} label columns: "
                        f"classes must be the indices of its columns, np.arange({n_labels}) "
                        "(the classes_ that fit gives), and every later y must have the same "
                        f"columns; got classes={classes!r}."
                    )
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)

    def _check_label_columns(self, y):
        """Raise ValueError unless ``y`` has the form of the targets the model was fitted on.

        That is one label per row, or a multilabel indicator matrix with as
        many label columns as ``classes_``.
        """
        n_labels = len(self.classes_)
        if self._label_binarizer.y_type_.startswith("multilabel"):
            if y.ndim == 2 and y.shape[1] == n_labels:
                return
            fitted = f"a multilabel indicator matrix of {n_labels} label columns"
        else:
            if y.ndim == 1:
                return
            fitted = f"one label per row (classes_ = {self.classes_})"
        given = f"{y.shape[1]} columns" if y.ndim == 2 else "one label per row"
        raise ValueError(
            f"The model was fitted on {fitted}, but this y has {given}. Give targets of the "
            "same form, or fit a new model to change them."
        )

    def predict_log_proba(self, X):
        """Return the log of probability estimates.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        log_y_prob : ndarray of shape (n_samples, n_classes)
            The predicted log-probability of each class, ordered as in ``classes_``.
        """
        y_prob = self.predict_proba(X)
        return np.log(y_prob, out=y_prob)

    def predict_proba(self, X):
        """Probability estimates.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        y_prob : ndarray of shape (n_samples, n_classes)
            The predicted probability of each class, ordered as in ``classes_``.
        """
        check_is_fitted(self)
        y_pred = self._forward_pass_fast(X)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        if y_pred.ndim == 1:
            return np.vstack([1 - y_pred, y_pred]).T
        return y_pred

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, BaseMultilayerPerceptron):
    """Multi-layer Perceptron regressor, a drop-in for scikit-learn's on fused kernels.

    This model optimizes the squared error (or half Poisson deviance) using
    LBFGS or stochastic gradient descent. Parameters, attributes and results
    from the same ``random_state`` are those of
    :class:`sklearn.neural_network.MLPRegressor`.

    Parameters
    ----------
    loss : {'squared_error', 'poisson', 'absolute_error', 'huber'}, default='squared_error'
        The loss function: half squared error, or half Poisson deviance with
        an exponential output (requires ``y >= 0``), or (fastbp additions)
        the absolute error, or the Huber loss with threshold ``huber_delta``.
        With residuals ``r = prediction - y`` over ``k`` outputs, the loss of
        a sample is ``(1/k) sum |r|`` for 'absolute_error' and
        ``(1/k) sum h(r)`` for 'huber', ``h(r) = r^2 / 2`` if ``|r| <
        huber_delta`` else ``huber_delta (|r| - huber_delta / 2)``; the
        objective is the ``sample_weight``-weighted mean of the samples'
        losses plus the L2 term, as for the other losses (with unit weights,
        PyTorch's ``L1Loss()`` and ``HuberLoss(delta=huber_delta)``). The
        gradient of ``|r|`` at ``r = 0`` is taken as 0, as PyTorch does.
    hidden_layer_sizes : array-like of shape (n_layers - 2,), default=(100,)
        The ith element represents the number of neurons in the ith hidden layer.
    activation : {'identity', 'logistic', 'tanh', 'relu', 'leaky_relu', 'gelu', 'silu', \
'softplus'} or tuple of str, default='relu'
        Activation function for the hidden layers: one name for all, or a
        tuple with one name per hidden layer such as ``('gelu', 'tanh')``.
        scikit-learn's four, and (fastbp additions) 'leaky_relu' (``z`` if
        ``z > 0`` else ``0.01 z``), 'gelu' (``z Phi(z)``, the exact form with
        the normal CDF ``Phi``), 'silu' (``z / (1 + exp(-z))``) and 'softplus'
        (``log(1 + exp(z))``).
    solver : {'lbfgs', 'sgd', 'adam'}, default='adam'
        The solver for weight optimization.
    alpha : float, default=0.0001
        Strength of the L2 regularization term, divided by the sample weight
        sum when added to the loss.
    batch_size : {'auto'} or int, default='auto'
        Size of minibatches for stochastic optimizers; 'auto' is
        ``min(200, n_samples)``.
    learning_rate : {'constant', 'invscaling', 'adaptive', 'cosine'}, default='constant'
        Learning rate schedule for weight updates: scikit-learn's three apply
        to 'sgd' only. 'cosine' (for 'sgd' and 'adam') decays the rate from
        ``learning_rate_init`` towards 0 over ``max_iter`` epochs, per
        mini-batch step: step t (numbered from 0 over the solver's life) of T
        = ``max_iter`` times the batches per epoch has the rate
        ``learning_rate_init * (1 + cos(pi * t / T)) / 2``, and 0 from step T
        on (``warmup_fraction`` adds a linear warm-up). A warm-started ``fit``
        starts the schedule again; each ``partial_fit`` call is one epoch of
        it, T counting that call's batches. (fastbp addition.)
    learning_rate_init : float, default=0.001
        The initial learning rate of 'sgd' and 'adam'.
    power_t : float, default=0.5
        The exponent of the 'invscaling' schedule.
    max_iter : int, default=200
        Maximum number of epochs (stochastic solvers) or iterations (lbfgs).
    shuffle : bool, default=True
        Whether to shuffle samples in each epoch.
    random_state : int, RandomState instance, default=None
        Seeds weight initialisation, the early-stopping split and shuffling.
    tol : float, default=1e-4
        Tolerance for the optimization.
    verbose : bool, default=False
        Whether to print progress messages to stdout: ``Iteration N, loss =
        L`` after each epoch of 'sgd' and 'adam' (as scikit-learn), and after
        each iteration of 'lbfgs' (which scikit-learn does not report), with
        the largest absolute component of the gradient, which L-BFGS stops on
        when it falls to ``tol``: ``Iteration N, loss = L, gradient inf-norm
        = G``. (fastbp addition for 'lbfgs'.)
    warm_start : bool, default=False
        Reuse the previous solution as initialization.
    momentum : float, default=0.9
        Momentum for 'sgd'.
    nesterovs_momentum : bool, default=True
        Whether to use Nesterov's momentum.
    early_stopping : bool, default=False
        Whether to stop when the validation R2 score stops improving.
        A fit whose loss or weights become non-finite then stops at that epoch
        with a ConvergenceWarning and keeps the best validation weights
        (without early stopping it raises ValueError).
    validation_fraction : float, default=0.1
        Proportion of training data set aside for early stopping.
    beta_1 : float, default=0.9
        Adam's first-moment decay.
    beta_2 : float, default=0.999
        Adam's second-moment decay.
    epsilon : float, default=1e-8
        Adam's numerical-stability term.
    n_iter_no_change : int, default=10
        Maximum number of epochs not meeting the ``tol`` improvement.
    max_fun : int, default=15000
        Maximum number of loss function calls of 'lbfgs'.
    early_stopping_metric : {'score', 'loss'}, default='score'
        What early stopping watches on the validation set: the R2 score
        (scikit-learn's rule) or the validation loss. The weights of the best
        epoch by that measure are restored. (fastbp addition.)
    huber_delta : float, default=1.0
        Threshold of ``loss='huber'`` between its quadratic and its linear
        part, in units of the targets; ignored by the other losses. (fastbp
        addition.)
    dropout : float or array-like of shape (n_layers - 2,), default=0.0
        Rate of inverted dropout on the hidden layers' outputs, in [0, 1):
        in training, each hidden unit's output of each sample is multiplied
        by 0 with this probability and by ``1 / (1 - dropout)`` otherwise,
        and back-propagation multiplies by the same mask; predictions use
        every unit. One number for every hidden layer or one per hidden
        layer. The masks come from a generator seeded from ``random_state``
        and depend only on it, the epoch, the sample and the unit: a fit is
        reproducible and gives the same bits on any number of threads. The
        loss ``loss_curve_`` records is that of the masked network. Only
        with 'sgd' and 'adam' ('lbfgs' raises a ValueError). (fastbp
        addition.)
    max_grad_norm : float or None, default=None
        Clip each mini-batch's gradient (the L2 penalty's included) to this
        global L2 norm before the solver's step: it is multiplied by
        ``max_grad_norm / (norm + 1e-6)`` when that is below 1, as PyTorch's
        ``clip_grad_norm_`` does. Only used by 'sgd' and 'adam'. None does not
        clip. (fastbp addition.)
    warmup_fraction : float, default=0.0
        With ``learning_rate='cosine'``, the fraction of its T steps, W =
        ``floor(warmup_fraction * T)``, over which the rate rises linearly
        (step t < W has ``learning_rate_init * (t + 1) / W``) before the
        cosine decay over the other T - W steps. In [0, 1); above 0 only
        with 'cosine'. (fastbp addition.)

    Attributes
    ----------
    loss_ : float
        The current loss computed with the loss function.
    best_loss_ : float or None
        The minimum loss reached during fitting (None with early stopping).
    loss_curve_ : list of shape (`n_iter_`,)
        The loss at each epoch.
    validation_scores_ : list of shape (`n_iter_`,) or None
        Validation R2 at each epoch whenever there is a validation set.
    best_validation_score_ : float or None
        Validation R2 of the restored epoch when ``early_stopping=True``.
    validation_loss_curve_ : list of shape (`n_iter_`,) or None
        Validation loss after each epoch whenever there is a validation set
        (``X_val`` or the early-stopping split); None otherwise.
    best_validation_loss_ : float or None
        Validation loss of the restored epoch when ``early_stopping=True``.
    t_ : int
        The number of training samples seen by the solver during fitting.
    coefs_ : list of shape (n_layers - 1,)
        The ith element is the weight matrix of layer i; a view of the
        model's flat parameter buffer.
    intercepts_ : list of shape (n_layers - 1,)
        The ith element is the bias vector of layer i + 1.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during fit, when they are all strings.
    n_iter_ : int
        The number of iterations the solver has run.
    n_layers_ : int
        Number of layers.
    n_outputs_ : int
        Number of outputs.
    out_activation_ : str
        Name of the output activation function.

    See Also
    --------
    MLPClassifier : Multi-layer Perceptron classifier.

    Examples
    --------
    >>> from fastbp import MLPRegressor
    >>> from sklearn.datasets import make_regression
    >>> X, y = make_regression(n_samples=200, n_features=20, random_state=1)
    >>> regr = MLPRegressor(random_state=1, max_iter=2000, tol=0.1).fit(X, y)
    >>> regr.predict(X[:2]).shape
    (2,)
    """

    _parameter_constraints: dict = {
        **BaseMultilayerPerceptron._parameter_constraints,
        "loss": [StrOptions({"squared_error", "poisson", "absolute_error", "huber"})],
        "huber_delta": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(
        self,
        loss="squared_error",
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        early_stopping_metric="score",
        huber_delta=1.0,
        dropout=0.0,
        max_grad_norm=None,
        warmup_fraction=0.0,
    ):
        self.huber_delta = huber_delta
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes,
            activation=activation,
            solver=solver,
            alpha=alpha,
            batch_size=batch_size,
            learning_rate=learning_rate,
            learning_rate_init=learning_rate_init,
            power_t=power_t,
            max_iter=max_iter,
            loss=loss,
            shuffle=shuffle,
            random_state=random_state,
            tol=tol,
            verbose=verbose,
            warm_start=warm_start,
            momentum=momentum,
            nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            n_iter_no_change=n_iter_no_change,
            max_fun=max_fun,
            early_stopping_metric=early_stopping_metric,
            dropout=dropout,
            max_grad_norm=max_grad_norm,
            warmup_fraction=warmup_fraction,
        )

    def _loss_parameters(self):
        return {"huber_delta": float(self.huber_delta)} if self.loss == "huber" else {}

    def predict(self, X):
        """Predict using the multi-layer perceptron model.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            The predicted values.
        """
        check_is_fitted(self)
        return self._predictions_from_output(self._forward_pass_fast(X))

    _score_function = staticmethod(r2_score)

    def _predictions_from_output(self, output):
        """Predictions from output-layer activations."""
        return output.ravel() if output.shape[1] == 1 else output

    def _decode_targets(self, Y):
        """Targets for scoring from the fitted (2-D) targets."""
        return Y

    def _encode_targets(self, y):
        """Targets as 2-D rows."""
        y = np.asarray(y)
        return y.reshape(-1, 1) if y.ndim == 1 else y

    def _validate_validation_targets(self, y_val, n_samples):
        y_val = check_array(y_val, ensure_2d=False, dtype="numeric", input_name="y_val")
        if y_val.shape[0] != n_samples:
            raise ValueError(
                f"X_val has {n_samples} samples but y_val has {y_val.shape[0]}."
            )
        if y_val.ndim == 2 and y_val.shape[1] == 1:
            y_val = y_val.ravel()
        if (y_val.ndim == 1 and self.n_outputs_ != 1) or (
            y_val.ndim == 2 and y_val.shape[1] != self.n_outputs_
        ):
            raise ValueError(f"y_val must have {self.n_outputs_} output(s), like y.")
        if self.loss == "poisson" and np.any(y_val < 0):
            raise ValueError(
                "Some value(s) of y_val are negative which is not allowed for Poisson regression."
            )
        return y_val

    def _class_weight_rows(self, y):
        """Regressors have no class weights."""
        return None

    def _validate_input(self, X, y, incremental, reset):
        X, y = self._validate_training_input(X, y, reset, y_numeric=True)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if self.loss == "poisson" and np.any(y < 0):
            raise ValueError(
                "Some value(s) of y are negative which is not allowed for Poisson regression."
            )
        return X, y, None

    @available_if(lambda est: est._check_solver())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """Update the model with a single iteration over the given data.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.
        y : ndarray of shape (n_samples,)
            The target values.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

        Returns
        -------
        self : object
            Trained MLP model.
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

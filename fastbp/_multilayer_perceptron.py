"""Drop-in scikit-learn MLPClassifier and MLPRegressor on fastbp's fused kernels.

Parameters, defaults, fitted attributes, errors and the consumption of the
random state (initialisation, validation split, shuffles) are those of
``sklearn.neural_network``; the maths runs in ``fastbp.kernels``: one
compiled call per epoch, one per L-BFGS objective evaluation.
"""

import warnings
from numbers import Integral, Real

import numpy as np
import scipy.optimize
import scipy.sparse as sp
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
from sklearn.utils import check_random_state, column_or_1d, shuffle
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.fixes import parse_version, sp_version
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import _check_partial_fit_first_call, type_of_target, unique_labels
from sklearn.utils.optimize import _check_optimize_result
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from ._network import KernelInput, Network, Workspace, chunk_rows
from ._solvers import StochasticOptimizer, run_epoch

_STOCHASTIC_SOLVERS = ["sgd", "adam"]
_STOPPING_STATE = (
    "loss_curve_",
    "best_loss_",
    "validation_scores_",
    "best_validation_score_",
    "_no_improvement_count",
    "_best_params",
)


class BaseMultilayerPerceptron(BaseEstimator):
    """Shared machinery of :class:`MLPClassifier` and :class:`MLPRegressor`.

    Warning: This class should not be used directly. Use derived classes instead.
    """

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions({"identity", "logistic", "tanh", "relu"})],
        "solver": [StrOptions({"lbfgs", "sgd", "adam"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
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

    def _new_network(self, layer_units, dtype):
        network = Network(
            layer_units,
            activation=self.activation,
            out_activation=self.out_activation_,
            loss=self._kernel_loss()[0],
            dtype=dtype,
        )
        self._network = network
        self.coefs_ = network.coefs
        self.intercepts_ = network.intercepts
        return network

    def _get_network(self):
        """The network whose flat buffer ``coefs_`` / ``intercepts_`` view.

        When the user replaced those lists or their arrays (they are then no
        longer views of one buffer), their values are copied into a new
        network and ``coefs_`` / ``intercepts_`` become its views.
        """
        network = getattr(self, "_network", None)
        if network is not None and network.owns(self.coefs_, self.intercepts_):
            return network
        dtype = np.result_type(*self.coefs_, *self.intercepts_)
        if dtype not in (np.float32, np.float64):
            dtype = np.float64
        layer_units = [self.coefs_[0].shape[0]] + [c.shape[1] for c in self.coefs_]
        coefs, intercepts = self.coefs_, self.intercepts_
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
        # Glorot et al.'s uniform initialisation, drawn in float64 as scikit-learn does.
        factor = 2.0 if self.activation == "logistic" else 6.0
        init_bound = np.sqrt(factor / (fan_in + fan_out))
        coef_init = self._random_state.uniform(-init_bound, init_bound, (fan_in, fan_out))
        intercept_init = self._random_state.uniform(-init_bound, init_bound, fan_out)
        return coef_init, intercept_init

    def _fit(self, X, y, sample_weight=None, incremental=False):
        hidden_layer_sizes = self.hidden_layer_sizes
        if not hasattr(hidden_layer_sizes, "__iter__"):
            hidden_layer_sizes = [hidden_layer_sizes]
        hidden_layer_sizes = list(hidden_layer_sizes)
        if np.any(np.array(hidden_layer_sizes) <= 0):
            raise ValueError("hidden_layer_sizes must be > 0, got %s." % hidden_layer_sizes)
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)

        X, y = self._validate_input(X, y, incremental, reset=first_pass)
        n_samples, n_features = X.shape
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X)
        if y.ndim == 1:
            y = y.reshape((-1, 1))
        self.n_outputs_ = y.shape[1]
        layer_units = [n_features] + hidden_layer_sizes + [self.n_outputs_]

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

        if self.solver in _STOCHASTIC_SOLVERS:
            self._fit_stochastic(X, y, sample_weight, network, incremental)
        elif self.solver == "lbfgs":
            self._fit_lbfgs(X, y, sample_weight, network)

        if not np.isfinite(network.params).all():
            raise ValueError(
                "Solver produced non-finite parameter weights. The input data may"
                " contain large values and need to be preprocessed."
            )
        return self

    def _training_arrays(self, X, y, sample_weight, network):
        """Targets and sample weights in the network's dtype, C-contiguous."""
        Y = np.ascontiguousarray(y, dtype=network.dtype)
        if sample_weight is None:
            weights = np.ones(X.shape[0], dtype=network.dtype)
        else:
            weights = np.ascontiguousarray(sample_weight, dtype=network.dtype)
        return Y, weights

    def _fit_lbfgs(self, X, y, sample_weight, network):
        X_input = KernelInput(X, network.dtype)
        Y, weights = self._training_arrays(X, y, sample_weight, network)
        work = network._objective_workspace(X.shape[0])
        _, loss_scale = self._kernel_loss()

        def loss_grad(packed):
            network.params[:] = packed
            loss, grad = network._objective(X_input, Y, weights, self.alpha, loss_scale, work)
            return loss, grad.astype(np.float64)

        iprint = 1 if (self.verbose is True or self.verbose >= 1) else -1
        extra = {} if sp_version >= parse_version("1.15") else {"iprint": iprint}
        opt_res = scipy.optimize.minimize(
            loss_grad,
            network.params.astype(np.float64),
            method="L-BFGS-B",
            jac=True,
            options={"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol, **extra},
        )
        self.n_iter_ = _check_optimize_result("lbfgs", opt_res, self.max_iter)
        self.loss_ = opt_res.fun
        network.params[:] = opt_res.x

    def _validation_split(self, X, y, sample_weight):
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

    def _fit_stochastic(self, X, y, sample_weight, network, incremental):
        if not incremental or not hasattr(self, "_optimizer"):
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
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        early_stopping = self.early_stopping
        self._reset_stopping_state(network)
        X_input = KernelInput(X, network.dtype)
        Y, weights = self._training_arrays(X, y, sample_weight, network)
        if early_stopping:
            train_idx, val_idx = self._validation_split(X, y, sample_weight)
            X_val = X[val_idx]
            y_val = y[val_idx]
            if is_classifier(self):
                y_val = self._label_binarizer.inverse_transform(y_val)
            sample_weight_val = None if sample_weight is None else sample_weight[val_idx]
            train_rows = train_idx.astype(np.int64)
        else:
            X_val = y_val = sample_weight_val = None
            train_rows = None

        n_samples = X.shape[0] if train_rows is None else train_rows.shape[0]
        sample_idx = np.arange(n_samples, dtype=int)
        if self.batch_size == "auto":
            batch_size = min(200, n_samples)
        else:
            if self.batch_size > n_samples:
                warnings.warn(
                    "Got `batch_size` less than 1 or larger than "
                    "sample size. It is going to be clipped"
                )
            batch_size = int(np.clip(self.batch_size, 1, n_samples))
        work = Workspace(network, batch_size, sparse=X_input.sparse)
        _, loss_scale = self._kernel_loss()

        try:
            self.n_iter_ = 0
            for it in range(self.max_iter):
                if self.shuffle:
                    sample_idx = shuffle(sample_idx, random_state=self._random_state)
                order = sample_idx if train_rows is None else train_rows[sample_idx]
                loss_sum = run_epoch(
                    network, X_input, Y, weights, np.ascontiguousarray(order, dtype=np.int64),
                    batch_size, work, self._optimizer, self.alpha, loss_scale,
                )
                self.n_iter_ += 1
                self.loss_ = loss_sum / n_samples
                self.t_ += n_samples
                self.loss_curve_.append(self.loss_)
                if self.verbose:
                    print("Iteration %d, loss = %.8f" % (self.n_iter_, self.loss_))

                self._update_no_improvement_count(early_stopping, X_val, y_val, sample_weight_val)
                self._optimizer.iteration_ends(self.t_)

                if self._no_improvement_count > self.n_iter_no_change:
                    if early_stopping:
                        msg = (
                            "Validation score did not improve more than "
                            "tol=%f for %d consecutive epochs." % (self.tol, self.n_iter_no_change)
                        )
                    else:
                        msg = (
                            "Training loss did not improve more than tol=%f"
                            " for %d consecutive epochs." % (self.tol, self.n_iter_no_change)
                        )
                    if self._optimizer.trigger_stopping(msg, self.verbose):
                        break
                    self._no_improvement_count = 0

                if incremental:
                    break

                if self.n_iter_ == self.max_iter:
                    warnings.warn(
                        "Stochastic Optimizer: Maximum iterations (%d) "
                        "reached and the optimization hasn't converged yet." % self.max_iter,
                        ConvergenceWarning,
                    )
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.")

        if early_stopping:
            network.params[:] = self._best_params

    def _reset_stopping_state(self, network):
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
        if self.early_stopping:
            self._no_improvement_count = 0
            self.best_validation_score_ = -np.inf
            self._best_params = network.params.copy()
            self.best_loss_ = None
            if getattr(self, "validation_scores_", None) is None:
                self.validation_scores_ = []
        else:
            if getattr(self, "best_loss_", None) is None:
                self.best_loss_ = np.inf
            self.validation_scores_ = None
            self.best_validation_score_ = None

    def _update_no_improvement_count(self, early_stopping, X, y, sample_weight):
        if early_stopping:
            val_score = self._score(X, y, sample_weight=sample_weight)
            self.validation_scores_.append(val_score)
            if self.verbose:
                print("Validation score: %f" % self.validation_scores_[-1])
            last_valid_score = self.validation_scores_[-1]
            if last_valid_score < (self.best_validation_score_ + self.tol):
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if last_valid_score > self.best_validation_score_:
                self.best_validation_score_ = last_valid_score
                self._best_params = self._network.params.copy()
        else:
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if self.loss_curve_[-1] < self.best_loss_:
                self.best_loss_ = self.loss_curve_[-1]

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
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

        Returns
        -------
        self : object
            Returns a trained MLP model.
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    def _check_solver(self):
        if self.solver not in _STOCHASTIC_SOLVERS:
            raise AttributeError(
                "partial_fit is only available for stochastic"
                " optimizers. %s is not stochastic." % self.solver
            )
        return True

    # ------------------------------------------------------------------
    # Prediction

    def _forward_pass_fast(self, X, check_input=True):
        """Output-layer activations of X, of shape (n_samples, n_outputs)."""
        if check_input:
            X = validate_data(self, X, accept_sparse=["csr", "csc"], reset=False)
        network = self._get_network()
        dtype = np.result_type(X.dtype, network.dtype)
        if dtype not in (np.float32, np.float64):
            dtype = np.float64
        if dtype != network.dtype:
            network = network.copy(dtype)
        return network._output(KernelInput(X, dtype))

    def _score_with_function(self, X, y, sample_weight, score_function):
        """Score without input validation (keeps feature names out of the way)."""
        y_pred = self._predict(X, check_input=False)
        if np.issubdtype(y_pred.dtype, np.floating) and not np.isfinite(y_pred).all():
            return np.nan
        return score_function(y, y_pred, sample_weight=sample_weight)

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
    activation : {'identity', 'logistic', 'tanh', 'relu'}, default='relu'
        Activation function for the hidden layers.
    solver : {'lbfgs', 'sgd', 'adam'}, default='adam'
        The solver for weight optimization.
    alpha : float, default=0.0001
        Strength of the L2 regularization term, divided by the sample weight
        sum when added to the loss.
    batch_size : int, default='auto'
        Size of minibatches for stochastic optimizers; 'auto' is
        ``min(200, n_samples)``.
    learning_rate : {'constant', 'invscaling', 'adaptive'}, default='constant'
        Learning rate schedule for 'sgd'.
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
        Whether to print progress messages to stdout.
    warm_start : bool, default=False
        Reuse the previous solution as initialization.
    momentum : float, default=0.9
        Momentum for 'sgd'.
    nesterovs_momentum : bool, default=True
        Whether to use Nesterov's momentum.
    early_stopping : bool, default=False
        Whether to hold out ``validation_fraction`` of the data and stop when
        the validation score stops improving.
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
        Validation accuracy at each epoch when ``early_stopping=True``.
    best_validation_score_ : float or None
        Best validation accuracy when ``early_stopping=True``.
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
    ):
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
        )

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(
            self,
            X,
            y,
            accept_sparse=["csr", "csc"],
            multi_output=True,
            dtype=(np.float64, np.float32),
            reset=reset,
        )
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)

        # incremental warm_start classes_ defined -> action (as scikit-learn):
        # first fit or refit defines classes_, warm_start checks the same
        # classes, partial_fit checks the classes are known.
        if (not hasattr(self, "classes_")) or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
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
        # bool keeps float32 data from being upcast
        y = self._label_binarizer.transform(y).astype(bool)
        return X, y

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
        return self._predict(X)

    def _predict(self, X, check_input=True):
        y_pred = self._forward_pass_fast(X, check_input=check_input)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        return self._label_binarizer.inverse_transform(y_pred)

    def _score(self, X, y, sample_weight=None):
        return self._score_with_function(X, y, sample_weight, accuracy_score)

    @available_if(lambda est: est._check_solver())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """Update the model with a single iteration over the given data.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.
        y : array-like of shape (n_samples,)
            The target values.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.
        classes : array of shape (n_classes,), default=None
            Classes across all calls to partial_fit; required on the first call.

        Returns
        -------
        self : object
            Trained MLP model.
        """
        if _check_partial_fit_first_call(self, classes):
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

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
    loss : {'squared_error', 'poisson'}, default='squared_error'
        The loss function: half squared error, or half Poisson deviance with
        an exponential output (requires ``y >= 0``).
    hidden_layer_sizes : array-like of shape (n_layers - 2,), default=(100,)
        The ith element represents the number of neurons in the ith hidden layer.
    activation : {'identity', 'logistic', 'tanh', 'relu'}, default='relu'
        Activation function for the hidden layers.
    solver : {'lbfgs', 'sgd', 'adam'}, default='adam'
        The solver for weight optimization.
    alpha : float, default=0.0001
        Strength of the L2 regularization term.
    batch_size : int, default='auto'
        Size of minibatches for stochastic optimizers.
    learning_rate : {'constant', 'invscaling', 'adaptive'}, default='constant'
        Learning rate schedule for 'sgd'.
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
        Whether to print progress messages to stdout.
    warm_start : bool, default=False
        Reuse the previous solution as initialization.
    momentum : float, default=0.9
        Momentum for 'sgd'.
    nesterovs_momentum : bool, default=True
        Whether to use Nesterov's momentum.
    early_stopping : bool, default=False
        Whether to stop when the validation R2 score stops improving.
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

    Attributes
    ----------
    loss_ : float
        The current loss computed with the loss function.
    best_loss_ : float or None
        The minimum loss reached during fitting (None with early stopping).
    loss_curve_ : list of shape (`n_iter_`,)
        The loss at each epoch.
    validation_scores_ : list of shape (`n_iter_`,) or None
        Validation R2 at each epoch when ``early_stopping=True``.
    best_validation_score_ : float or None
        Best validation R2 when ``early_stopping=True``.
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
        "loss": [StrOptions({"squared_error", "poisson"})],
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
    ):
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
        )

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
        return self._predict(X)

    def _predict(self, X, check_input=True):
        y_pred = self._forward_pass_fast(X, check_input=check_input)
        if y_pred.shape[1] == 1:
            return y_pred.ravel()
        return y_pred

    def _score(self, X, y, sample_weight=None):
        return self._score_with_function(X, y, sample_weight, r2_score)

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(
            self,
            X,
            y,
            accept_sparse=["csr", "csc"],
            multi_output=True,
            y_numeric=True,
            dtype=(np.float64, np.float32),
            reset=reset,
        )
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if self.loss == "poisson" and np.any(y < 0):
            raise ValueError(
                "Some value(s) of y are negative which is not allowed for Poisson regression."
            )
        return X, y

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

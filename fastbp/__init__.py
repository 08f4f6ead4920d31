"""fastbp: Numba-accelerated backpropagation with a scikit-learn face.

``MLPClassifier`` and ``MLPRegressor`` are drop-in replacements for
scikit-learn's multi-layer perceptrons whose training runs in fused,
JIT-compiled kernels (``fastbp.kernels``); ``Network`` is the lower-level
network they are built on.
"""

from ._gradcheck import check_gradients
from ._interop import from_sklearn, to_sklearn
from ._io import ModelFileError, load, save
from ._multilayer_perceptron import MLPClassifier, MLPRegressor
from ._network import Network

__version__ = "0.2.0.dev0"

__all__ = [
    "MLPClassifier",
    "MLPRegressor",
    "ModelFileError",
    "Network",
    "__version__",
    "check_gradients",
    "from_sklearn",
    "load",
    "save",
    "to_sklearn",
]

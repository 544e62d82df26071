"""The pure-Python reference: every public function of divcore, computed in plain Python
(lists, floats, math.fsum, math.log1p) by divcore._refkernels.

Same signatures and semantics as the compiled functions - both are divcore.api.Functions,
sharing every argument rule (divcore._rules) - so that the tests can check the compiled
core against it, and so that divcore keeps working where the core cannot be built.
"""
from . import _refplans
from .api import PUBLIC, Decomposition, Functions, RowStats  # noqa: F401  (the tuples: public)

_functions = Functions(_refplans, "reference")

logsumexp = _functions.logsumexp
log_softmax = _functions.log_softmax
softmax = _functions.softmax
cross_entropy = _functions.cross_entropy
kl_divergence = _functions.kl_divergence
entropy = _functions.entropy
decompose = _functions.decompose
cross_entropy_and_grad = _functions.cross_entropy_and_grad
kl_divergence_and_grad = _functions.kl_divergence_and_grad
js_divergence = _functions.js_divergence
binary_cross_entropy = _functions.binary_cross_entropy
row_stats = _functions.row_stats

__all__ = ["Decomposition", "RowStats"] + sorted(PUBLIC + ("row_stats",))

# Type stub of divcore.reference: the same public functions, with the same signatures, as
# divcore itself (both are divcore.api.Functions, bound to different backends).
from divcore import (
    Decomposition as Decomposition,
    RowStats as RowStats,
    binary_cross_entropy as binary_cross_entropy,
    cross_entropy as cross_entropy,
    cross_entropy_and_grad as cross_entropy_and_grad,
    decompose as decompose,
    entropy as entropy,
    js_divergence as js_divergence,
    kl_divergence as kl_divergence,
    kl_divergence_and_grad as kl_divergence_and_grad,
    log_softmax as log_softmax,
    logsumexp as logsumexp,
    row_stats as row_stats,
    softmax as softmax,
)

__all__ = [
    "Decomposition",
    "RowStats",
    "binary_cross_entropy",
    "cross_entropy",
    "cross_entropy_and_grad",
    "decompose",
    "entropy",
    "js_divergence",
    "kl_divergence",
    "kl_divergence_and_grad",
    "log_softmax",
    "logsumexp",
    "row_stats",
    "softmax",
]

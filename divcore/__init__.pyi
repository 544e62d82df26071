# Type stub of divcore's public API (SPEC §3). The functions are divcore.api.Functions'
# methods bound to the live backend, or the compiled front's copies of them, chosen at
# import time, which static type checkers cannot follow; this stub states their signatures
# (with overloads for the result's type). tests/test_typing.py checks it against the runtime
# (mypy.stubtest) and type-checks a sample that uses the API.
from typing import Any, Literal, NamedTuple, SupportsIndex, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

__version__: str

__all__ = [
    "Decomposition",
    "RowStats",
    "TopK",
    "__version__",
    "backend",
    "binary_cross_entropy",
    "cross_entropy",
    "cross_entropy_and_grad",
    "decompose",
    "entropy",
    "get_include",
    "get_num_threads",
    "js_divergence",
    "kl_divergence",
    "kl_divergence_and_grad",
    "log_softmax",
    "logsumexp",
    "row_stats",
    "set_num_threads",
    "show_config",
    "softmax",
]

_Float = np.floating[Any]
_Array = NDArray[np.floating[Any]]
_Axes = SupportsIndex | tuple[SupportsIndex, ...] | None
_TargetType = Literal["auto", "labels", "probs", "log_probs", "logits"]
_InputType = Literal["logits", "probs", "log_probs"]
_Reduction = Literal["none", "sum", "mean"]
_Tail = Literal["bucket", "drop", "renormalize"]

class Decomposition(NamedTuple):
    """H(p, q) = H(p) + KL(p ‖ q), each reduced the same way."""

    cross_entropy: Any
    entropy: Any
    kl_divergence: Any

class TopK:
    """A sparse target: per row, k class indices and their log-probabilities or probabilities."""

    indices: Any
    values: Any
    kind: Literal["log_probs", "probs"]
    def __init__(self, indices: Any, values: Any, *,
                 kind: Literal["log_probs", "probs"] = "log_probs") -> None: ...
    @property
    def k(self) -> int: ...
    @classmethod
    def from_logits(cls, logits: ArrayLike, k: int, *, axis: SupportsIndex = -1,
                    temperature: float = 1.0, where: ArrayLike | None = None) -> TopK: ...

class RowStats(NamedTuple):
    """divcore.row_stats' per-row statistics, from one read of the logits."""

    logsumexp: Any
    log_prob: Any
    entropy: Any
    argmax: Any
    topk_indices: Any
    topk_log_probs: Any

def backend() -> Literal["compiled", "reference"]: ...
def get_include() -> str: ...
def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
def show_config() -> dict[str, Any]: ...
def logsumexp(x: ArrayLike, axis: _Axes = -1, *, keepdims: bool = False,
              where: ArrayLike | None = None) -> _Array | _Float: ...
def log_softmax(x: ArrayLike, axis: _Axes = -1, *, temperature: float = 1.0,
                where: ArrayLike | None = None, softcap: float | None = None,
                out: NDArray[Any] | None = None) -> _Array: ...
def softmax(x: ArrayLike, axis: _Axes = -1, *, temperature: float = 1.0,
            where: ArrayLike | None = None, softcap: float | None = None,
            out: NDArray[Any] | None = None) -> _Array: ...

@overload
def cross_entropy(
    logits: ArrayLike, target: ArrayLike | TopK, *, axis: SupportsIndex = -1,
    target_type: _TargetType = "auto", weight: ArrayLike | None = None,
    ignore_index: SupportsIndex | None = -100, label_smoothing: float = 0.0,
    temperature: float = 1.0, where: ArrayLike | None = None,
    reduction: Literal["none"],
    base: float | None = None, validate: bool = True, sum_tol: float | None = None,
    tail: _Tail = "bucket", sample_weight: ArrayLike | None = None, z_loss: float = 0.0,
    softcap: float | None = None,
) -> _Array | _Float: ...

@overload
def cross_entropy(
    logits: ArrayLike, target: ArrayLike | TopK, *, axis: SupportsIndex = -1,
    target_type: _TargetType = "auto", weight: ArrayLike | None = None,
    ignore_index: SupportsIndex | None = -100, label_smoothing: float = 0.0,
    temperature: float = 1.0, where: ArrayLike | None = None,
    reduction: Literal["sum", "mean"] = "mean",
    base: float | None = None, validate: bool = True, sum_tol: float | None = None,
    tail: _Tail = "bucket", sample_weight: ArrayLike | None = None, z_loss: float = 0.0,
    softcap: float | None = None,
) -> _Float: ...

@overload
def cross_entropy(
    logits: ArrayLike, target: ArrayLike | TopK, *, axis: SupportsIndex = -1,
    target_type: _TargetType = "auto", weight: ArrayLike | None = None,
    ignore_index: SupportsIndex | None = -100, label_smoothing: float = 0.0,
    temperature: float = 1.0, where: ArrayLike | None = None,
    reduction: _Reduction = "mean",
    base: float | None = None, validate: bool = True, sum_tol: float | None = None,
    tail: _Tail = "bucket", sample_weight: ArrayLike | None = None, z_loss: float = 0.0,
    softcap: float | None = None,
) -> _Array | _Float: ...

@overload
def kl_divergence(
    logits: ArrayLike, target: ArrayLike | TopK, *, axis: SupportsIndex = -1,
    target_type: _TargetType = "auto", reverse: bool = False, temperature: float = 1.0,
    where: ArrayLike | None = None,
    reduction: Literal["none"],
    base: float | None = None, validate: bool = True, sum_tol: float | None = None,
    tail: _Tail = "bucket", sample_weight: ArrayLike | None = None,
    softcap: float | None = None,
) -> _Array | _Float: ...

@overload
def kl_divergence(
    logits: ArrayLike, target: ArrayLike | TopK, *, axis: SupportsIndex = -1,
    target_type: _TargetType = "auto", reverse: bool = False, temperature: float = 1.0,
    where: ArrayLike | None = None,
    reduction: Literal["sum", "mean"] = "mean",
    base: float | None = None, validate: bool = True, sum_tol: float | None = None,
    tail: _Tail = "bucket", sample_weight: ArrayLike | None = None,
    softcap: float | None = None,
) -> _Float: ...

@overload
def kl_divergence(
    logits: ArrayLike, target: ArrayLike | TopK, *, axis: SupportsIndex = -1,
    target_type: _TargetType = "auto", reverse: bool = False, temperature: float = 1.0,
    where: ArrayLike | None = None,
    reduction: _Reduction = "mean",
    base: float | None = None, validate: bool = True, sum_tol: float | None = None,
    tail: _Tail = "bucket", sample_weight: ArrayLike | None = None,
    softcap: float | None = None,
) -> _Array | _Float: ...

@overload
def js_divergence(
    logits: ArrayLike, target: ArrayLike | TopK, *, axis: SupportsIndex = -1,
    target_type: _TargetType = "auto", beta: float = 0.5, temperature: float = 1.0,
    where: ArrayLike | None = None,
    reduction: Literal["none"],
    base: float | None = None, validate: bool = True, sum_tol: float | None = None,
    tail: _Tail = "bucket", sample_weight: ArrayLike | None = None,
    softcap: float | None = None,
) -> _Array | _Float: ...

@overload
def js_divergence(
    logits: ArrayLike, target: ArrayLike | TopK, *, axis: SupportsIndex = -1,
    target_type: _TargetType = "auto", beta: float = 0.5, temperature: float = 1.0,
    where: ArrayLike | None = None,
    reduction: Literal["sum", "mean"] = "mean",
    base: float | None = None, validate: bool = True, sum_tol: float | None = None,
    tail: _Tail = "bucket", sample_weight: ArrayLike | None = None,
    softcap: float | None = None,
) -> _Float: ...

@overload
def js_divergence(
    logits: ArrayLike, target: ArrayLike | TopK, *, axis: SupportsIndex = -1,
    target_type: _TargetType = "auto", beta: float = 0.5, temperature: float = 1.0,
    where: ArrayLike | None = None,
    reduction: _Reduction = "mean",
    base: float | None = None, validate: bool = True, sum_tol: float | None = None,
    tail: _Tail = "bucket", sample_weight: ArrayLike | None = None,
    softcap: float | None = None,
) -> _Array | _Float: ...

@overload
def binary_cross_entropy(
    logits: ArrayLike, target: ArrayLike, *, weight: ArrayLike | None = None,
    pos_weight: ArrayLike | None = None,
    reduction: Literal["none"],
    base: float | None = None,
    sample_weight: ArrayLike | None = None,
) -> _Array | _Float: ...

@overload
def binary_cross_entropy(
    logits: ArrayLike, target: ArrayLike, *, weight: ArrayLike | None = None,
    pos_weight: ArrayLike | None = None,
    reduction: Literal["sum", "mean"] = "mean",
    base: float | None = None,
    sample_weight: ArrayLike | None = None,
) -> _Float: ...

@overload
def binary_cross_entropy(
    logits: ArrayLike, target: ArrayLike, *, weight: ArrayLike | None = None,
    pos_weight: ArrayLike | None = None,
    reduction: _Reduction = "mean",
    base: float | None = None,
    sample_weight: ArrayLike | None = None,
) -> _Array | _Float: ...

@overload
def entropy(
    x: ArrayLike, *, axis: SupportsIndex = -1, input_type: _InputType = "logits",
    temperature: float = 1.0, where: ArrayLike | None = None,
    reduction: Literal["none"] = "none",
    base: float | None = None, sum_tol: float | None = None,
    sample_weight: ArrayLike | None = None, softcap: float | None = None,
) -> _Array | _Float: ...

@overload
def entropy(
    x: ArrayLike, *, axis: SupportsIndex = -1, input_type: _InputType = "logits",
    temperature: float = 1.0, where: ArrayLike | None = None,
    reduction: Literal["sum", "mean"],
    base: float | None = None, sum_tol: float | None = None,
    sample_weight: ArrayLike | None = None, softcap: float | None = None,
) -> _Float: ...

@overload
def entropy(
    x: ArrayLike, *, axis: SupportsIndex = -1, input_type: _InputType = "logits",
    temperature: float = 1.0, where: ArrayLike | None = None,
    reduction: _Reduction = "none",
    base: float | None = None, sum_tol: float | None = None,
    sample_weight: ArrayLike | None = None, softcap: float | None = None,
) -> _Array | _Float: ...

def decompose(
    logits: ArrayLike, target: ArrayLike | TopK, *, axis: SupportsIndex = -1,
    target_type: _TargetType = "auto", weight: ArrayLike | None = None,
    ignore_index: SupportsIndex | None = -100, label_smoothing: float = 0.0,
    temperature: float = 1.0, where: ArrayLike | None = None,
    reduction: _Reduction = "mean",
    base: float | None = None, validate: bool = True, sum_tol: float | None = None,
    tail: _Tail = "bucket", sample_weight: ArrayLike | None = None,
    softcap: float | None = None,
) -> Decomposition: ...

def cross_entropy_and_grad(
    logits: ArrayLike, target: ArrayLike | TopK, *, axis: SupportsIndex = -1,
    target_type: _TargetType = "auto", weight: ArrayLike | None = None,
    ignore_index: SupportsIndex | None = -100, label_smoothing: float = 0.0,
    temperature: float = 1.0, where: ArrayLike | None = None,
    reduction: _Reduction = "mean",
    base: float | None = None, validate: bool = True, sum_tol: float | None = None,
    tail: _Tail = "bucket", sample_weight: ArrayLike | None = None, z_loss: float = 0.0,
    softcap: float | None = None, out: NDArray[Any] | None = None,
) -> tuple[_Array | _Float, _Array]: ...

def kl_divergence_and_grad(
    logits: ArrayLike, target: ArrayLike | TopK, *, axis: SupportsIndex = -1,
    target_type: _TargetType = "auto", reverse: bool = False, temperature: float = 1.0,
    where: ArrayLike | None = None,
    reduction: _Reduction = "mean",
    base: float | None = None, validate: bool = True, sum_tol: float | None = None,
    tail: _Tail = "bucket", sample_weight: ArrayLike | None = None,
    softcap: float | None = None, out: NDArray[Any] | None = None,
) -> tuple[_Array | _Float, _Array]: ...

def row_stats(logits: ArrayLike, labels: ArrayLike | None = None, *,
              axis: SupportsIndex = -1, k: SupportsIndex = 0, temperature: float = 1.0,
              where: ArrayLike | None = None) -> RowStats: ...

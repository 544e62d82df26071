"""divcore.TopK: a sparse teacher, per row k class indices and their log-probabilities or
probabilities (SPEC §7), as distillation sets store what a serving engine returns."""

KINDS = ("log_probs", "probs")


class TopK:
    """A sparse target: per row, `k` class indices and their log-probabilities or probabilities.

    Parameters
    ----------
    indices : array_like of int
        The logits' shape without the class axis, plus k: the k classes given per row (no
        duplicates within a row).
    values : array_like
        Of `indices`' shape: their log-probabilities (kind='log_probs', <= 0) or
        probabilities (kind='probs').
    kind : {'log_probs', 'probs'}, default 'log_probs'
        What `values` holds.

    Accepted as `target` by cross_entropy, kl_divergence, js_divergence, decompose and the
    *_and_grad functions; `tail` says how the teacher's missing mass counts.
    """

    __slots__ = ("indices", "values", "kind")

    def __init__(self, indices, values, *, kind="log_probs"):
        if kind not in KINDS:
            raise ValueError(f"kind must be 'log_probs' or 'probs', got {kind!r}")
        self.indices = indices
        self.values = values
        self.kind = kind

    @property
    def k(self):
        """The number of classes given per row."""
        return self.indices.shape[-1]

    def __repr__(self):
        shape = getattr(self.indices, "shape", None)
        return f"TopK(indices of shape {tuple(shape) if shape is not None else '?'}, kind={self.kind!r})"

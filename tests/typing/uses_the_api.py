"""Type-checked by tests/test_typing.py (mypy): ordinary uses of divcore's public API must
pass, and reveal the result types the stubs promise. Not collected by pytest."""
import numpy as np
import numpy.typing as npt

import divcore
import divcore.reference

logits = np.random.default_rng(0).standard_normal((4, 3))
labels = np.array([0, 2, 1, -100])
probs = divcore.softmax(logits[::-1])

mean: np.floating = divcore.cross_entropy(logits, labels, weight=[1.0, 2.0, 0.5])
total: np.floating = divcore.kl_divergence(logits, probs, reduction="sum", base=2)
rows = divcore.cross_entropy(logits, probs, target_type="probs", reduction="none")
per_row: npt.NDArray[np.floating] | np.floating = rows
h = divcore.entropy(logits)  # reduction="none" by default
js: np.floating = divcore.js_divergence(logits, labels.clip(0), beta=0.3)
bce: np.floating = divcore.binary_cross_entropy(logits, probs, pos_weight=[1.0, 2.0, 3.0])
lse = divcore.logsumexp(logits, axis=(0, 1), keepdims=True)
log_q: npt.NDArray[np.floating] = divcore.log_softmax(logits, temperature=2.0)
ce, ent, kl = divcore.decompose(logits, probs, reduction="none")
parts: divcore.Decomposition = divcore.decompose(logits, labels)
loss, grad = divcore.cross_entropy_and_grad(logits, labels, label_smoothing=0.1)
grad_shape: tuple[int, ...] = grad.shape
ref: np.floating = divcore.reference.cross_entropy(logits, labels)
kind: str = divcore.backend()
folder: str = divcore.get_include()
divcore.set_num_threads(0)
n: int = divcore.get_num_threads()
version: str = divcore.__version__

"""Type-checked by tests/test_typing.py (mypy): every marked line must be an error."""
import numpy as np

import divcore

x = np.zeros((2, 3))
divcore.cross_entropy(x, [0, 1], reduction="batchmean")  # E: reduction
divcore.cross_entropy(x, [0, 1], target_type="onehot")  # E: target_type
divcore.cross_entropy(x, [0, 1], 1)  # E: keyword-only
divcore.kl_divergence(x, x, weight=None)  # E: no weight keyword
divcore.entropy(x, input_type="labels")  # E: input_type
value: float = divcore.cross_entropy(x, [0, 1], reduction="none")  # E: maybe an array

"""Parameter descriptions shared by several public functions' docstrings (numpy style).

A docstring line holding only `$name` (indented) stands for the entry `name` below, indented
the same; divcore.api fills them in once, when it builds the functions, so each description
is written once and reads the same everywhere."""
import re

SHARED = {
    'x_values': """\
x : array_like
    Values (logits); any real dtype, any strides. The class axis is `axis`.""",
    'x_axes': """\
axis : int, tuple of ints or None, default -1
    The class axis (or axes, merged into one; None: all axes).""",
    'x_where': """\
where : array_like of bool, optional
    Broadcastable to `x`; False entries are left out of the distribution, exactly as a
    logit of -inf would be.""",
    'x_temperature': """\
temperature : float, default 1.0
    T > 0: `x` is divided by T before the softmax.""",
    'out': """\
out : ndarray, optional
    Where to write the result: an array of the result's shape, float16, bfloat16
    (ml_dtypes), float32 or float64, e.g. the input's own half dtype. The float32 (float64)
    result is rounded once into it, to nearest even, and `out` is returned. Without it the
    result is a new array of the compute dtype.""",
    'raises_x': """\
ValueError
    0-d input, a temperature that is not a finite number > 0, or a bad mask.
TypeError
    Complex or non-numeric input.""",
    'logits': """\
logits : array_like
    The model's raw scores; the class axis is `axis`. float32 computes in float32,
    float64 in float64, float16/bfloat16 in float32, integers and bools in float64.""",
    'class_axis': """\
axis : int, default -1
    The class axis of `logits` (and of a soft target).""",
    'target_type': """\
target_type : {'auto', 'labels', 'probs', 'log_probs', 'logits'}, default 'auto'
    How to read `target`. 'auto': an integer dtype means labels, a floating one
    probabilities; a teacher's logits are never guessed (say 'logits'), and are divided
    by the same temperature.""",
    'temperature': """\
temperature : float, default 1.0
    T > 0 divides the logits (and a logits target) before the softmax; no T² factor.""",
    'where': """\
where : array_like of bool, optional
    Broadcastable to `logits`; False entries are removed from the distribution q (and from
    a logits target), as a logit of -inf would be.""",
    'base': """\
base : float, optional
    Unit of the result: None (or e) for nats, 2 for bits, any positive number ≠ 1.""",
    'validate': """\
validate : bool, default True
    Check probability (and log-probability) targets inside the same pass: an entry that
    is negative or NaN, or a row whose sum is off 1 by more than `sum_tol`, raises
    ValueError naming the first bad row. Nothing is renormalised or clipped.""",
    'sum_tol': """\
sum_tol : float, optional
    How far a probability row's sum may be from 1. None (the default): max(√eps of the
    least precise dtype, 1e-4), which accepts probabilities stored with 6 decimals and
    refuses sums like 0.99 or 1.1.""",
    'returns_loss': """\
loss : numpy scalar or ndarray
    A scalar of the compute dtype for 'sum' and 'mean'; for 'none' one value per row, of
    the logits' shape without the class axis.""",
    'raises_loss': """\
IndexError
    A label outside [0, C) that is not `ignore_index` (always checked).
ValueError
    A bad keyword value, mismatched shapes, or (with `validate`) a target row that is not
    a probability distribution.
TypeError
    Complex, object or non-numeric input; labels that are not integers.""",
    'target': """\
target : array_like
    Integer class labels (the logits' shape without the class axis), or probabilities,
    log-probabilities or a teacher's logits of the logits' shape (see `target_type`).
    Labels mean one-hot targets.""",
    'reduction_mean': """\
reduction : {'none', 'sum', 'mean'}, default 'mean'
    'none': one value per row; 'sum'; 'mean': over rows (never over elements), nan for an
    empty batch.""",
    'tail': """\
tail : {'bucket', 'drop', 'renormalize'}, default 'bucket'
    With a `divcore.TopK` target, how the teacher's mass outside its k classes counts:
    'bucket' compares it with the student's mass there as one more class (a proper
    divergence, never above the full one); 'drop' renormalises the teacher on its k
    classes; 'renormalize' renormalises both on them. Any other target: 'bucket' only.""",
    'sample_weight': """\
sample_weight : array_like, optional
    Per-row weights s_i >= 0 (broadcast to the logits' shape without the class axis):
    'none' gives s_i·l_i, 'sum' Σ s_i·l_i, 'mean' Σ s_i·l_i / Σ s_i (with class weights
    Σ s_i·w_yi·l_i / Σ s_i·w_yi). A row of weight 0 contributes exactly 0.""",
    'z_loss': """\
z_loss : float, default 0.0
    z >= 0 adds z·lse² per row, lse = logsumexp(logits / T) (keeps the softmax normaliser
    near 1); ignored rows add nothing.""",
    'softcap': """\
softcap : float, optional
    c > 0: the logits pass through c·tanh(logits / c) before the temperature and the
    softmax (gradients include the factor 1 - tanh²); -inf stays -inf (a masked class).
    A teacher's logits target is not capped.""",
}


def fill(doc):
    """`doc` with each `$name` line replaced by SHARED[name] at that line's indentation."""
    if not doc:
        return doc

    def entry(match):
        indent, name = match.group(1), match.group(2)
        return "\n".join(indent + line if line else line for line in SHARED[name].split("\n"))

    return re.sub(r"^([ \t]*)\$(\w+)[ \t]*$", entry, doc, flags=re.MULTILINE)

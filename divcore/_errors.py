"""Error messages shared by every layer, so both backends raise the same words.

Each message names the argument at fault, and the row and value where one is to blame.
Rows are numbered as the flattened leading axes (the class axis removed), in C order.
"""


def label_out_of_range(row, value, n_classes):
    """IndexError for a label outside [0, n_classes) that is not ignore_index."""
    return IndexError(
        f"target: label {value} at row {row} is out of range for {n_classes} classes "
        f"(valid labels are 0..{n_classes - 1}, or ignore_index)"
    )


BAD_ENTRY = "has a negative or NaN entry"


def bad_sum(total, tol):
    """The reason for a row whose sum is off 1 by more than `tol`."""
    return f"sums to {total!r} (|sum - 1| > {tol:.3g})"


def bad_target_row(argument, row, reason, *, can_skip=True):
    """ValueError for a probability row that is not a distribution.

    `reason` is BAD_ENTRY or bad_sum(...). The advice comes in the order that gives right
    numbers: a target of another kind first (log-probabilities and a teacher's logits
    have negative entries and do not sum to 1), then the tolerance for probabilities
    rounded in storage; `can_skip` adds validate=False last (offered only by functions
    with a `validate` keyword, and only for probabilities, which it then reads as given).
    """
    if can_skip:
        hint = (" (log-probabilities or a teacher's logits? pass target_type='log_probs' or "
                "target_type='logits'; probabilities rounded in storage? pass a larger "
                "sum_tol; validate=False skips this check for probabilities)")
    else:
        hint = " (probabilities rounded in storage? pass a larger sum_tol)"
    return ValueError(
        f"{argument}: row {row} is not a probability distribution: it {reason}{hint}"
    )

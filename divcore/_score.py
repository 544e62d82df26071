"""`divcore score`: losses of logits stored in files against a target stored in files.

Reading: .npy (memory-mapped, so a file larger than memory is read one block of rows at a
time), .npz (one member, chosen with --key / --target-key when there are several),
.csv (comma-separated) and .txt (whitespace-separated); a text file may start with a row
of column names (what pandas' to_csv writes, with or without its index column).

Computing: every metric is computed per row with the library's own functions
(`decompose` for cross-entropy, the target's entropy H(p) and KL(p || q);
`js_divergence`) and reduced here in float64 over the whole file. Keeping the per-row
values of all blocks and reducing them once makes the blockwise result bit-identical to a
single call, whatever the block size.
"""
import math
import os
import re
import sys
import warnings
import zipfile

import numpy as np

import divcore

METRICS = ("cross_entropy", "entropy", "kl_divergence", "js_divergence")
# With labels (and every metric), `divcore score` also reports the model's own statistics
# from divcore.row_stats: exp(-mean log q_y), the share of rows whose argmax is the label,
# and the mean entropy of q (in the chosen base), over the rows that are not ignored.
LABEL_STATS = ("perplexity", "accuracy", "model_entropy")
# decompose returns these three from one pass
_DECOMPOSED = ("cross_entropy", "entropy", "kl_divergence")
# A memory-mapped logits array is read in blocks of about this many bytes
DEFAULT_BLOCK_BYTES = 64 << 20
BLOCK_ROWS_ENV = "DIVCORE_SCORE_BLOCK_ROWS"
_TEXT_SUFFIXES = {".csv": ",", ".txt": None}


class ScoreError(Exception):
    """A problem with the user's files or options: reported as one line, no traceback."""


# ------------------------------------------------------------------------ reading

def load_array(path, key=None, what="logits"):
    """The array stored in `path` (.npy memory-mapped, .npz member `key`, .csv, .txt)."""
    if not os.path.exists(path):
        raise ScoreError(f"{what} file not found: {path}")
    if os.path.isdir(path):
        raise ScoreError(f"{what} file is a directory: {path}")
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".npy":
        array = _load_npy(path)
    elif suffix == ".npz":
        array = _load_npz_member(path, key)
    elif suffix in _TEXT_SUFFIXES:
        array = _load_text(path, _TEXT_SUFFIXES[suffix])
    else:
        raise ScoreError(f"{path}: unknown file type {suffix or '(no suffix)'!r} "
                         "(expected .npy, .npz, .csv or .txt)")
    if key is not None and suffix != ".npz":
        raise ScoreError(f"{path}: a key ({key!r}) only applies to .npz files")
    if array.dtype.kind not in "fiub":
        raise ScoreError(f"{path}: expected an array of numbers, got dtype {array.dtype}")
    return array


def _load_npy(path):
    try:
        # mmap: nothing is read until a block of rows is used
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ScoreError(f"{path}: not a readable .npy file ({_one_line(exc)})") from None


def _load_npz_member(path, key):
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = list(archive.files)
            if key is None:
                if len(names) != 1:
                    raise ScoreError(f"{path}: holds {len(names)} arrays "
                                     f"({', '.join(names) or 'none'}); choose one with a key")
                key = names[0]
            if key not in names:
                raise ScoreError(f"{path}: no array named {key!r} "
                                 f"(it holds: {', '.join(names) or 'none'})")
            return archive[key]
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ScoreError(f"{path}: not a readable .npz file ({_one_line(exc)})") from None


def _load_text(path, delimiter):
    try:
        skip, columns = _text_header(path, delimiter)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "input contained no data": reported below
            array = np.loadtxt(path, delimiter=delimiter, dtype=np.float64, ndmin=1,
                               skiprows=skip, usecols=columns, encoding="utf-8-sig")
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise ScoreError(f"{path}: not a table of numbers ({_one_line(exc)})") from None
    if array.size == 0:
        raise ScoreError(f"{path}: holds no numbers")
    if columns is not None and array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]  # one named column (a pandas Series): a vector, as without names
    return array


# pandas' to_csv names its (unnamed) index column "" and reads it back as "Unnamed: 0"
_INDEX_NAMES = ("", "Unnamed: 0")


def _text_header(path, delimiter):
    """(lines to skip, columns to read or None) for a text file whose first line may be a
    row of column names: a first line (after blank and '#' lines) with a field that is not
    a number is a header; when its first name is empty (pandas' unnamed index, `to_csv`'s
    default) the first column is the index and is left out. A header of numbers (pandas'
    default column names 0, 1, ... with index=False) cannot be told from data."""
    with open(path, encoding="utf-8-sig") as f:
        for number, line in enumerate(f):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            fields = [v.strip().strip('"') for v in
                      (line.rstrip("\r\n").split(delimiter) if delimiter else line.split())]
            if all(_is_number(v) for v in fields):
                return 0, None
            if delimiter and fields[0] in _INDEX_NAMES and len(fields) > 1:
                return number + 1, range(1, len(fields))
            return number + 1, None
    return 0, None


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def load_topk(path):
    """A `divcore topk` file (an .npz holding `indices` and `log_probs`, or `indices` and
    `probs`) as a divcore.TopK target; None for any other file."""
    if os.path.splitext(path)[1].lower() != ".npz" or not os.path.isfile(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = set(archive.files)
            for kind in ("log_probs", "probs"):
                if names == {"indices", kind}:
                    return divcore.TopK(archive["indices"], archive[kind], kind=kind)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile):
        return None  # load_array says what is wrong with it
    return None


def _one_line(exc):
    return " ".join(str(exc).split()) or type(exc).__name__


def is_text_file(path):
    return os.path.splitext(path)[1].lower() in _TEXT_SUFFIXES


def resolve_target_type(logits, target, target_type, target_from_text):
    """The target type to pass on. Text files hold floats only, so there 'auto' reads a
    target with one dimension less than the logits (no class axis) as integer labels."""
    if target_type != "auto" or not target_from_text:
        return target_type
    if target.ndim == logits.ndim - 1 or (logits.ndim == 1 and target.shape == (1,)):
        return "labels"
    return "probs"


def as_labels(target, path, logits_ndim):
    """Labels as integers: float values (a text file holds floats) must be whole numbers.
    A text file cannot hold a 0-d array: one label for one row of logits comes back as
    shape (1,) and is taken as the row's label."""
    if logits_ndim == 1 and target.shape == (1,):
        target = target.reshape(())
    if target.dtype.kind in "iu":
        return target
    values = np.asarray(target)
    whole = np.isfinite(values) & (values == np.round(values))
    if not whole.all():
        bad = int(np.argmax(~whole.reshape(-1)))
        raise ScoreError(f"{path}: labels must be whole numbers, got {values.reshape(-1)[bad]!r}"
                         f" at row {bad}")
    return values.astype(np.int64)


# ---------------------------------------------------------------------- computing

def block_rows_for(logits, block_rows=None):
    """How many rows (along the blocked axis) one block holds; None: all in one call.

    Only a memory-mapped array is split (one in memory is already read); an explicit
    `block_rows`, or DIVCORE_SCORE_BLOCK_ROWS, forces blocks of that size.
    """
    if block_rows is None:
        env = os.environ.get(BLOCK_ROWS_ENV, "").strip()
        if env:
            try:
                block_rows = int(env)
            except ValueError:
                raise ScoreError(f"{BLOCK_ROWS_ENV}={env!r} is not a whole number") from None
    if block_rows is not None:
        if block_rows < 1:
            raise ScoreError(f"the block size must be at least 1 row, got {block_rows}")
        return block_rows
    if not isinstance(logits, np.memmap) or logits.nbytes <= DEFAULT_BLOCK_BYTES:
        return None
    row_bytes = max(1, logits.nbytes // max(1, logits.shape[0]))
    return max(1, DEFAULT_BLOCK_BYTES // row_bytes)


def _block_axis(ndim, class_axis):
    """The axis cut into blocks: the first one that is not the class axis."""
    return 1 if class_axis == 0 else 0


class Progress:
    """A one-line progress report on stderr, shown only when stderr is a terminal."""

    def __init__(self, total, stream=None, label="scoring"):
        self.stream = stream if stream is not None else sys.stderr
        self.label = label
        self.total = total
        self.shown = bool(getattr(self.stream, "isatty", lambda: False)()) and total > 0

    def update(self, done):
        if self.shown:
            width = 30
            filled = int(width * done / self.total)
            self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] "
                              f"{done}/{self.total} rows")
            self.stream.flush()

    def close(self):
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()


def score(logits, target, *, metrics=METRICS, axis=-1, target_type="auto", reduction="mean",
          base=None, temperature=1.0, ignore_index=-100, validate=True, sum_tol=None,
          block_rows=None, progress=None, label_stats=False, tail="bucket"):
    """Per-row values and reduced values of `metrics` for logits against target.

    label_stats: with labels and reduction 'mean' or 'sum', `reduced` also holds
    LABEL_STATS (means over the rows that count, whatever the reduction).

    Returns (reduced, per_row): dicts keyed by metric; per_row values are float64 arrays
    of the logits' shape without the class axis, reduced values are floats (or the
    per-row arrays when reduction='none').
    """
    if logits.ndim == 0:
        raise ScoreError("logits must have at least one dimension (the class axis)")
    if not -logits.ndim <= axis < logits.ndim:
        raise ScoreError(f"axis {axis} is out of range for logits of shape {logits.shape}")
    class_axis = axis % logits.ndim
    lead_shape = logits.shape[:class_axis] + logits.shape[class_axis + 1:]
    blocked = _block_axis(logits.ndim, class_axis)
    keywords = dict(axis=axis, temperature=temperature, base=base, validate=validate,
                    sum_tol=sum_tol)
    if isinstance(target, divcore.TopK):  # a `divcore topk` file: cut its arrays' rows
        _check_topk_shape(target, logits, axis, lead_shape)
        labels = False
        keywords["tail"] = tail

        def target_rows(rows):
            return divcore.TopK(np.asarray(target.indices[rows]),
                                np.asarray(target.values[rows]), kind=target.kind)
    else:
        labels = target_type == "labels" or (target_type == "auto"
                                             and target.dtype.kind in "iu")
        _check_target_shape(target, logits, axis, lead_shape, labels)
        keywords["target_type"] = target_type

        def target_rows(rows):
            return _take(target, 0 if labels else blocked, rows)

    per_row = {m: np.empty(lead_shape, dtype=np.float64) for m in metrics}
    kept = np.ones(lead_shape, dtype=bool)  # rows that count in the mean
    stats = _LabelStats() if labels and label_stats and reduction != "none" else None
    if not lead_shape:  # one row, no blocks
        _score_block(logits, target, labels, metrics, keywords, ignore_index,
                     per_row, kept, (), stats)
    else:
        n = lead_shape[0]
        step = block_rows_for(logits, block_rows) or max(n, 1)
        bar = Progress(n) if progress is None else progress
        for start in range(0, n, step):
            rows = slice(start, min(start + step, n))
            _score_block(_take(logits, blocked, rows), target_rows(rows), labels, metrics,
                         keywords, ignore_index, per_row, kept, rows, stats)
            bar.update(rows.stop)
        bar.close()

    return _reduced(per_row, kept, reduction, stats, base)


def _check_target_shape(target, logits, axis, lead_shape, labels):
    """Checked here, not only by the library: blocks cut both arrays, and a block of a
    mis-shaped target could still look right."""
    expected = lead_shape if labels else logits.shape
    if target.shape != expected:
        what = "labels" if labels else "a target of probabilities / logits"
        hint = ""
        if not labels and target.shape == lead_shape:
            hint = " (floats read as labels need --target-type labels)"
        raise ScoreError(f"target shape {target.shape} does not fit logits of shape "
                         f"{logits.shape} with class axis {axis}: {what} must have shape "
                         f"{expected}{hint}")


def _check_topk_shape(target, logits, axis, lead_shape):
    """A top-k file's arrays: the logits' rows, plus k."""
    k = target.indices.shape[-1] if np.ndim(target.indices) else 0
    for name, a in (("indices", target.indices), ("values", target.values)):
        if np.shape(a) != lead_shape + (k,):
            raise ScoreError(f"top-k {name} of shape {np.shape(a)} do not fit logits of "
                             f"shape {logits.shape} with class axis {axis}: expected "
                             f"{lead_shape + (k,)}")


def _reduced(per_row, kept, reduction, stats, base):
    """(reduced, per_row) as score() returns them."""
    if reduction == "none":
        return dict(per_row), per_row
    reduced = {}
    count = int(np.count_nonzero(kept))
    for m, values in per_row.items():
        total = float(np.sum(values))
        if reduction == "sum":
            reduced[m] = total
        else:
            reduced[m] = total / count if count else math.nan
    if stats is not None:
        reduced.update(stats.result(base))
    return reduced, per_row


class _LabelStats:
    """LABEL_STATS summed over the blocks: Σ log q_y, rows right, Σ H(q), rows counted."""

    def __init__(self):
        self.log_prob, self.entropy = [], []
        self.right = self.count = 0

    def add(self, logits, labels, kept, axis, temperature):
        """One block: row_stats of the rows that count (ignored labels are left out)."""
        moved = np.moveaxis(np.asarray(logits), axis % np.ndim(logits), -1)
        labels = np.asarray(labels)
        if not np.all(kept):
            moved, labels = moved[kept], labels[kept]
        st = divcore.row_stats(moved, labels, temperature=temperature)
        self.log_prob.append(np.sum(st.log_prob, dtype=np.float64))
        self.entropy.append(np.sum(st.entropy, dtype=np.float64))
        self.right += int(np.count_nonzero(st.argmax == labels))
        self.count += int(np.size(labels))

    def result(self, base):
        if not self.count:
            return dict.fromkeys(LABEL_STATS, math.nan)
        unit = math.log(base) if base is not None else 1.0
        mean_log_prob = math.fsum(self.log_prob) / self.count
        return {"perplexity": math.exp(-mean_log_prob) if -mean_log_prob < 709 else math.inf,
                "accuracy": self.right / self.count,
                "model_entropy": math.fsum(self.entropy) / self.count / unit}


def _take(array, axis, rows):
    index = [slice(None)] * array.ndim
    index[axis] = rows
    # np.asarray reads the block of a memmap into memory once
    return np.asarray(array[tuple(index)])


def _score_block(logits, target, labels, metrics, keywords, ignore_index, per_row, kept, rows,
                 stats=None):
    """Fill per_row[metric][rows] and kept[rows] for one block (and add its rows to the
    label statistics `stats`)."""
    try:
        if labels:
            ignored = np.asarray(target) == ignore_index if ignore_index is not None else False
            kept[rows] = ~np.asarray(ignored)
        if any(m in _DECOMPOSED for m in metrics):
            ce_keywords = dict(keywords)
            if labels:
                ce_keywords["ignore_index"] = ignore_index
            parts = divcore.decompose(logits, target, reduction="none", **ce_keywords)
            for m in _DECOMPOSED:
                if m in per_row:
                    per_row[m][rows] = getattr(parts, m)
        if "js_divergence" in metrics:
            per_row["js_divergence"][rows] = _js_rows(logits, target, labels, keywords,
                                                      kept[rows])
        if stats is not None:
            stats.add(logits, target, kept[rows], keywords["axis"], keywords["temperature"])
    except (ValueError, TypeError, IndexError, np.exceptions.AxisError) as exc:
        start = rows.start if isinstance(rows, slice) else 0
        message = command_line_words(_one_line(exc))
        if isinstance(exc, ValueError) and not labels and not isinstance(target,
                                                                         divcore.TopK):
            message = _target_type_hint(message, target, keywords["target_type"])
        raise ScoreError(_with_row_offset(message, start)) from None


# The library's keywords as `divcore score` spells them: an error message of the API that
# gives advice in Python (target_type='logits', validate=False) is reworded for the command
# line (--target-type logits, --no-validate). A keyword with no flag is left as it is.
CLI_FLAGS = {"target_type": "--target-type", "axis": "--axis", "reduction": "--reduction",
             "base": "--base", "temperature": "--temperature",
             "ignore_index": "--ignore-index", "sum_tol": "--sum-tol"}
CLI_SWITCHES = {"validate=False": "--no-validate"}
_KEYWORD = re.compile(r"\b(?P<name>[a-z_]+)=(?P<value>'[^']*'|\"[^\"]*\"|[-+\w.]+)")


def command_line_words(message):
    """`message` with the Python keywords that have a `divcore score` flag written as that
    flag: target_type='log_probs' -> --target-type log_probs, validate=False ->
    --no-validate (also "target_type" quoted in double quotes, or without quotes)."""
    def flag(match):
        name, value = match.group("name"), match.group("value")
        switch = CLI_SWITCHES.get(f"{name}={value}")
        if switch:
            return switch
        if name in CLI_FLAGS:
            return f"{CLI_FLAGS[name]} {value.strip(chr(39) + chr(34))}"
        return match.group(0)

    message = _KEYWORD.sub(flag, message)
    message = re.sub(r"(?<![-\w])sum_tol\b", "--sum-tol", message)  # "a larger sum_tol"
    # "--target-type log_probs or 'logits'": the alternatives given as bare values too
    return _ALTERNATIVES.sub(
        lambda m: m.group(1) + _QUOTED.sub(r"--target-type \g<v>", m.group(2)), message)


_QUOTED = re.compile(r"(['\"])(?P<v>\w+)\1")
_ALTERNATIVES = re.compile(r"(--target-type \w+)((?:(?:,| or|, or) (['\"])\w+\3)+)")


def _target_type_hint(message, target, target_type):
    """A float target with negative entries that failed the probability check is likely
    log-probabilities or a teacher's logits: say which flag reads it as such, first (the
    library's own message may say so already, then it is left alone)."""
    if ("--target-type" in message or target_type not in ("auto", "probs")
            or "probability distribution" not in message):
        return message
    values = np.asarray(target)
    if values.dtype.kind != "f" or not np.any(values < 0):
        return message
    hint = ("; if TARGET holds log-probabilities, pass --target-type log_probs, if a "
            "teacher's logits, --target-type logits")
    # before the library's other advice ("(pass --no-validate to skip this check)"),
    # which would give wrong numbers for such a target
    where = message.find(" (", message.find("probability distribution"))
    if where < 0:
        return message + hint
    return message[:where] + hint + message[where:]


def _js_rows(logits, target, labels, keywords, kept):
    """JS per row; ignored label rows count 0, as in cross-entropy (js_divergence itself
    has no ignore_index: a label of -100 would be out of range)."""
    if not labels or np.all(kept):
        return divcore.js_divergence(logits, target, reduction="none", **keywords)
    out = np.zeros(kept.shape, dtype=np.float64)
    class_axis = keywords["axis"] % logits.ndim
    moved = np.moveaxis(logits, class_axis, -1)
    if kept.any():
        kw = dict(keywords, axis=-1)
        out[kept] = divcore.js_divergence(moved[kept], np.asarray(target)[kept],
                                          reduction="none", **kw)
    return out


def _with_row_offset(message, start):
    """A library error names the row within the block; say so when it is not row 0."""
    if start:
        return f"{message} (in the block of rows starting at row {start})"
    return message


# -------------------------------------------------------------------------- top-k

def topk(logits, k, *, axis=-1, temperature=1.0, block_rows=None, progress=None):
    """`divcore topk`: (indices int64, log_probs float32), each of the logits' shape
    without the class axis plus (k,): each row's k largest log softmax(logits / T), best
    first (divcore.row_stats), computed a block of rows at a time (a memory-mapped file is
    read one block at a time)."""
    if logits.ndim == 0:
        raise ScoreError("logits must have at least one dimension (the class axis)")
    if not -logits.ndim <= axis < logits.ndim:
        raise ScoreError(f"axis {axis} is out of range for logits of shape {logits.shape}")
    class_axis = axis % logits.ndim
    n_classes = logits.shape[class_axis]
    if not 0 <= k <= n_classes:
        raise ScoreError(f"-k must be in [0, {n_classes}] (the number of classes), got {k}")
    if logits.ndim == 1:
        st = _row_stats_block(np.asarray(logits), k, -1, temperature, 0)
        return st.topk_indices, st.topk_log_probs.astype(np.float32)
    moved = np.moveaxis(logits, class_axis, -1)
    lead = moved.shape[:-1]
    indices = np.empty(lead + (k,), dtype=np.int64)
    log_probs = np.empty(lead + (k,), dtype=np.float32)
    n = lead[0]
    step = block_rows_for(logits, block_rows) or max(n, 1)
    bar = Progress(n, label="topk") if progress is None else progress
    for start in range(0, n, step):
        rows = slice(start, min(start + step, n))
        st = _row_stats_block(np.asarray(moved[rows]), k, -1, temperature, start)
        indices[rows] = st.topk_indices
        log_probs[rows] = st.topk_log_probs
        bar.update(rows.stop)
    bar.close()
    return indices, log_probs


def _row_stats_block(block, k, axis, temperature, start):
    try:
        return divcore.row_stats(block, axis=axis, k=k, temperature=temperature)
    except (ValueError, TypeError, IndexError) as exc:
        raise ScoreError(_with_row_offset(command_line_words(_one_line(exc)), start)) \
            from None


def write_topk(path, indices, log_probs):
    """OUT.npz with the arrays `indices` and `log_probs`."""
    if os.path.splitext(path)[1].lower() != ".npz":
        raise ScoreError(f"-o {path}: the output is an .npz file (name it OUT.npz)")
    try:
        with open(path, "wb") as f:
            np.savez(f, indices=indices, log_probs=log_probs)
    except OSError as exc:
        raise ScoreError(f"-o {path}: cannot write ({_one_line(exc)})") from None


# ------------------------------------------------------------------------ writing

def write_per_row(path, per_row):
    """Save per-row values: .npy (one metric: its array; several: stacked on a last axis
    in the order given), .npz (one array per metric, named after it), .csv / .txt (one
    column each, in the order given, under a '#'-commented header of the metric names that
    np.loadtxt skips and np.genfromtxt(names=True) reads)."""
    names = list(per_row)
    suffix = os.path.splitext(path)[1].lower()
    try:
        if suffix == ".npz":
            np.savez(path, **per_row)
        elif suffix == ".npy":
            values = per_row[names[0]] if len(names) == 1 else np.stack(
                [per_row[m] for m in names], axis=-1)
            np.save(path, values)
        elif suffix in _TEXT_SUFFIXES:
            columns = np.stack([per_row[m].reshape(-1) for m in names], axis=-1)
            delimiter = "," if suffix == ".csv" else " "
            np.savetxt(path, columns, delimiter=delimiter, header=delimiter.join(names),
                       comments="# ", fmt="%.17g")
        else:
            raise ScoreError(f"--out {path}: unknown file type {suffix or '(no suffix)'!r} "
                             "(expected .npy, .npz, .csv or .txt)")
    except OSError as exc:
        raise ScoreError(f"--out {path}: cannot write ({_one_line(exc)})") from None

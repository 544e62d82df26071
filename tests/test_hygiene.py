"""Repository hygiene (issue 12, item 11): every MANIFEST.in pattern matches a file, the
built site is ignored by git, and the test run prints nothing between its progress dots."""
import fnmatch
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SKIP_DIRS = {".git", "build", "dist", "site", "__pycache__", ".hypothesis", ".pytest_cache"}


def _files_under(folder):
    for root, dirs, files in os.walk(os.path.join(REPO, folder)):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info")]
        for name in files:
            yield name


def test_every_manifest_pattern_matches_a_file():
    dead = []
    with open(os.path.join(REPO, "MANIFEST.in"), encoding="utf-8") as f:
        for line in f:
            words = line.split("#")[0].split()
            if not words:
                continue
            command, args = words[0], words[1:]
            if command == "include":
                dead += [p for p in args if not os.path.exists(os.path.join(REPO, p))]
            elif command == "recursive-include":
                folder, patterns = args[0], args[1:]
                names = list(_files_under(folder))
                dead += [f"{folder}/{p}" for p in patterns
                         if not any(fnmatch.fnmatch(n, p) for n in names)]
    assert dead == [], f"MANIFEST.in patterns that match nothing: {dead}"


def test_built_site_is_ignored():
    with open(os.path.join(REPO, ".gitignore"), encoding="utf-8") as f:
        ignored = {line.strip() for line in f}
    assert "site/" in ignored  # what `mkdocs build` writes


def test_nothing_is_printed_between_the_dots():
    # the wall-clock report of test_concurrency goes to the summary at the end
    test = "tests/test_concurrency.py::test_two_threads_wall_clock_is_reported"
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             test], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    progress = [i for i, line in enumerate(lines) if "[100%]" in line]
    assert progress and lines[progress[0]].startswith("."), result.stdout
    before = "\n".join(lines[:progress[0]])
    assert "GIL release" not in before and "speed-up" not in before, result.stdout
    summary = "\n".join(lines[progress[0]:])
    assert "divcore measurements" in summary and "GIL release" in summary, result.stdout

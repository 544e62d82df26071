"""The generated glue (issue 11): tools/generate.py makes the kernel declarations of
src/divcore/dispatch_table.h, the .pxd files and divcore/_kernels_decl.pxi from one table,
tools/kernel_table.py. The committed files must be what the table makes now: regenerate in
memory and compare (fix a failure with `python tools/generate.py`)."""
import glob
import os
import re
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = os.path.join(ROOT, "tools")

if not os.path.isfile(os.path.join(TOOLS, "generate.py")):  # e.g. an installed wheel's tests
    pytest.skip("tools/generate.py is not here", allow_module_level=True)

sys.path.insert(0, TOOLS)
import generate  # noqa: E402
import kernel_table  # noqa: E402


@pytest.mark.parametrize("rel", sorted(generate.outputs()))
def test_generated_file_is_current(rel):
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        committed = f.read()
    assert committed == generate.outputs()[rel], (
        f"{rel} is stale: run python tools/generate.py and commit the result")


def test_stale_file_is_detected(tmp_path, monkeypatch):
    """The check can fail: a generated file edited by hand is reported."""
    for rel, text in generate.outputs().items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    monkeypatch.setattr(generate, "ROOT", str(tmp_path))
    assert generate.stale() == []
    edited = tmp_path / "src" / "divcore" / "dispatch_table.h"
    edited.write_text(edited.read_text(encoding="utf-8") + "/* by hand */\n", encoding="utf-8")
    assert generate.stale() == ["src/divcore/dispatch_table.h"]


def test_every_public_kernel_is_declared_everywhere():
    """Each public kernel of the table, for both types: a dispatched wrapper and a public
    name in C, a declaration in kernels.pxd; its template is defined in the headers under
    the name a profiler shows (grep finds it)."""
    texts = generate.outputs()
    table_h = texts["src/divcore/dispatch_table.h"]
    pxd = texts["divcore/kernels.pxd"]
    templates = "".join(open(os.path.join(ROOT, "src", "divcore", name), encoding="utf-8").read()
                        for name in os.listdir(os.path.join(ROOT, "src", "divcore"))
                        if name.endswith("_t.h"))
    for k in kernel_table.PUBLIC:
        assert re.search(rf"DC_FN\({k.name}\)", templates), k.name
        for sfx in ("f32", "f64"):
            assert re.search(rf"DC_DISPATCH(_VOID)?\((\w+, )?{k.name}_{sfx}, ", table_h)
            assert re.search(rf"DC_PUBLIC(_VOID)?\((\w+, )?{k.name}_{sfx}, ", table_h)
            assert re.search(rf"\b{k.name}_{sfx}\(", pxd), (k.name, sfx)
    for k in kernel_table.HALF:  # half-precision storage: their own template, half_t.h
        assert re.search(rf"DC_HFN\({k.name}\)", templates), k.name
        for sfx in kernel_table.HALF_TYPES:
            assert re.search(rf"DC_DISPATCH(_VOID)?\((\w+, )?{k.name}_{sfx}, ", table_h)
            assert re.search(rf"DC_PUBLIC(_VOID)?\((\w+, )?{k.name}_{sfx}, ", table_h)
            assert re.search(rf"\b{k.name}_{sfx}\(", pxd), (k.name, sfx)


def test_core_declarations_cover_what_core_uses():
    """Every dc*/DC_ name divcore._core uses (_core.pyx and the parts it includes) is
    declared in the generated .pxi, or in the package's own small headers."""
    parts = [os.path.join(ROOT, "divcore", "_core.pyx")] + sorted(
        p for p in glob.glob(os.path.join(ROOT, "divcore", "_*.pxi"))
        if not p.endswith("_kernels_decl.pxi"))
    core = ""
    for path in parts:
        with open(path, encoding="utf-8") as f:
            core += f.read() + "\n"
    pxi = generate.outputs()["divcore/_kernels_decl.pxi"]
    own = set()
    for header in ("_threads.h", "_half.h", "_gather.h"):
        block = core.split(f'cdef extern from "{header}"')[1].split("\n\n")[0]
        own |= set(re.findall(r"\b(dc_\w+)\(", block))
    used = set(re.findall(r"\b(dcd?_\w+)\(", core)) | set(re.findall(r"\bDC_[A-Z_]*[A-Z]\b", core))
    declared = set(re.findall(r"\b((?:dcd?|DC)_\w+)", pxi))
    assert used - own, "no kernel call found in divcore._core"
    assert used - own <= declared, sorted(used - own - declared)
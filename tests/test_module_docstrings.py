"""Every source file of the package opens by stating its responsibility: a
docstring for ``.py``, ``.pyi``, ``.pyx`` and ``.pxd`` (after any ``# cython:``
directive line), a leading comment for the ``.pxi`` files ``_core.pyx`` includes."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "bytepiece"
SOURCES = sorted(p for ext in ("py", "pyi", "pyx", "pxd", "pxi") for p in PACKAGE.glob(f"*.{ext}"))


def _opening(path: Path) -> str:
    lines = path.read_text(encoding="utf-8").splitlines()
    while lines and lines[0].startswith("# cython:"):
        lines.pop(0)
    return "\n".join(lines)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_module_opens_with_its_responsibility(path):
    text = _opening(path)
    if path.suffix == ".pxi":
        first = text.lstrip().splitlines()[0] if text.strip() else ""
        assert first.startswith("# ") and len(first) > 20, f"{path.name}: no opening comment"
        return
    if path.suffix == ".py" or path.suffix == ".pyi":
        doc = ast.get_docstring(ast.parse(text))
    else:  # Cython: the docstring is the first statement, a string literal
        stripped = text.lstrip()
        doc = stripped[3:stripped.index('"""', 3)] if stripped.startswith('"""') else None
    assert doc and len(doc.split("\n")[0]) > 20, f"{path.name}: no docstring stating its responsibility"


def test_sources_are_found():
    assert {"trainer.py", "_core.pyx", "_core.pxd", "_trie.pxi"} <= {p.name for p in SOURCES}

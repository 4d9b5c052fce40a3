"""No import cycle between the package's modules.

The graph has an edge ``a -> b`` for every *module-level* ``from .b import ...``,
``from . import b``, ``import bytepiece.b`` or ``from bytepiece.b import ...`` in
``bytepiece/a.py`` (statements at the top of the module, including those inside
a module-level ``if``/``try``). Imports inside functions are left out on purpose:
they run only when called, so they cannot make importing a module fail, and a
few of them (the trainer dispatching to an algorithm) are the intended way to
keep the module-level graph a tree.
"""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "bytepiece"


def _module_level(tree: ast.Module):
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, (ast.If, ast.Try)):
            stack.extend(getattr(node, "body", []) + getattr(node, "orelse", [])
                         + getattr(node, "finalbody", []))
            for handler in getattr(node, "handlers", []):
                stack.extend(handler.body)


def import_graph(package: Path = PACKAGE):
    modules = {path.stem for path in package.glob("*.py")}
    graph = {name: set() for name in modules}
    for path in package.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in _module_level(tree):
            targets = []
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level == 1:
                    targets = [base.split(".")[0]] if base else [alias.name for alias in node.names]
                elif node.level == 0 and base.startswith("bytepiece."):
                    targets = [base.split(".")[1]]
            else:
                targets = [alias.name.split(".")[1] for alias in node.names
                           if alias.name.startswith("bytepiece.")]
            graph[path.stem].update(t for t in targets if t in modules and t != path.stem)
    return graph


def find_cycle(graph):
    """A list of modules forming a cycle, or ``None``."""
    state = {}

    def visit(node, trail):
        state[node] = "open"
        trail.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return trail[trail.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt, trail)
                if found:
                    return found
        trail.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node, [])
            if found:
                return found
    return None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_graph_sees_the_package():
    graph = import_graph()
    assert "chunking" in graph["trainer"] and "chunking" in graph["compress"]


def test_no_module_level_import_cycle():
    graph = import_graph()
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_compress_does_not_import_the_trainer_at_module_level():
    assert "trainer" not in import_graph()["compress"]

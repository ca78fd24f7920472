"""Point the instructor at submitted code that reaches into the grading machinery.

Scores cannot be forged from the kernel (grader/scoring.py), but a notebook can still switch
off the tripwire inside its own kernel, or try things that have no place in a CNN assignment
(IPython's input transformers, ``ctypes``, ``gc``, closures, comparison overrides).  So that a
person sees them, the code cells a student wrote are read (not run) with ``ast``, and what
matches the rules of grader/rules.py becomes a "review by hand" note in the export's message.
The score is left alone; the note asks a person to read the notebook.
"""
from __future__ import annotations

import ast
from pathlib import Path

from .rules import ATTRIBUTES, CALLS, DUNDERS, DYNAMIC_GETATTR, ENGINE_ANSWERS, MAGIC_CALLS, MODULES, TEST_NAMES

MAX_FINDINGS = 5


def _python(source: str) -> str:
    """The cell as Python: IPython's magics and shell escapes turned into calls."""
    from IPython.core.inputtransformer2 import TransformerManager
    return TransformerManager().transform_cell(source)


def _parse(source: str) -> ast.Module | None:
    try:
        return ast.parse(_python(source))
    except SyntaxError:
        return None  # a cell that does not parse cannot run either


def _engine_answer(module: str) -> bool:
    parts = module.split(".")
    return len(parts) > 1 and parts[0] == "cnnlib" and parts[1] in ENGINE_ANSWERS


def _module_names(tree: ast.Module) -> set[str]:
    """Names an import statement binds (``np`` for ``import numpy as np``)."""
    return {(a.asname or a.name).split(".")[0] for node in ast.walk(tree)
            if isinstance(node, (ast.Import, ast.ImportFrom)) for a in node.names}


def findings(source: str | ast.Module | None, modules: set[str] = frozenset()) -> list[str]:
    """What in one code cell (its source, or its parsed tree) looks like tampering, in words
    ("imports ctypes", ...). ``modules``: names bound to modules by other cells (``np``)."""
    tree = _parse(source) if isinstance(source, str) else source
    if tree is None:
        return []
    modules = set(modules) | _module_names(tree)
    found: list[str] = []

    def say(text: str) -> None:
        if text not in found:
            found.append(text)

    # IPython writes a magic (%timeit) as get_ipython().run_line_magic(...): not the student's doing
    magics = {id(node.value.func) for node in ast.walk(tree)
              if isinstance(node, ast.Attribute) and node.attr in MAGIC_CALLS
              and isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Name)}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if isinstance(node, ast.ImportFrom) and node.module == "cnnlib":
                names += [f"cnnlib.{a.name}" for a in node.names]
            for name in names:
                if name.split(".")[0] in MODULES or _engine_answer(name):
                    say(f"imports {name}")
        elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
              and node.value.id == "cnnlib" and node.attr in ENGINE_ANSWERS):
            say(f"uses cnnlib.{node.attr}")
        elif isinstance(node, ast.Attribute) and node.attr in ATTRIBUTES:
            say(f"uses .{node.attr}")
        elif isinstance(node, ast.FunctionDef) and (node.name in ATTRIBUTES or node.name in DUNDERS):
            say(f"defines {node.name}")
        elif isinstance(node, ast.Name) and node.id == "get_ipython" and id(node) not in magics:
            say("uses get_ipython")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in CALLS:
            say(f"calls {node.func.id}()")
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id == DYNAMIC_GETATTR and len(node.args) >= 2
              and not isinstance(node.args[1], ast.Constant)):
            say("calls getattr() with a computed name")
        # Assigning to an attribute of an imported module (np.allclose = ...) changes it for the tests.
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else [])
        for target in targets:
            if isinstance(target, ast.Name) and target.id in TEST_NAMES:
                say(f"rebinds {target.id}")
            nested = (ast.Subscript, ast.Attribute)
            while isinstance(target, nested) and isinstance(target.value, nested):
                target = target.value
            while isinstance(target, ast.Subscript):
                target = target.value
            if (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)
                    and target.value.id in modules):
                say(f"assigns {target.value.id}.{target.attr}")
    return found


def review_note(notebook: Path) -> str | None:
    """One export note for a submitted notebook, or None when nothing looks like tampering.

    Only the cells the student wrote are read: the instructor's test and read-only cells
    are restored before grading anyway, and what they do is the grader's business."""
    import nbformat

    try:
        nb = nbformat.read(notebook, as_version=4)
    except Exception:
        return None  # an unreadable notebook is reported as failed elsewhere
    code = [(cell, _parse(cell.get("source", ""))) for cell in nb.cells if cell.get("cell_type") == "code"]
    modules = set().union(*(_module_names(tree) for _, tree in code if tree))
    flagged = []
    for cell, tree in code:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("locked") or (meta.get("grade") and not meta.get("solution")):
            continue
        what = findings(tree, modules)
        if what:
            flagged.append(f"{meta.get('grade_id', cell.get('id', '?'))}: {', '.join(what)}")
    if not flagged:
        return None
    more = f" (and {len(flagged) - MAX_FINDINGS} more cells)" if len(flagged) > MAX_FINDINGS else ""
    return ("review by hand, the code reaches into the grading machinery: "
            + "; ".join(flagged[:MAX_FINDINGS]) + more)

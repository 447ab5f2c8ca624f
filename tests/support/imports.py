"""What a source file imports, read from its syntax tree (the library-boundary tests)."""

from __future__ import annotations

import ast
from pathlib import Path


def imported_top_level_names(path: Path, module_level_only: bool = False) -> set:
    tree = ast.parse(path.read_text())
    nodes = tree.body if module_level_only else ast.walk(tree)
    names = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return names

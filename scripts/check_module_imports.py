"""Import directions for the top-level modules, which import-linter cannot analyse.

DESIGN.md: interfaces -> graph -> agents -> tools; policies import nothing of
ours but state; state and settings import nothing of ours. import-linter
checks the packages (pyproject.toml); this checks graph.py, state.py,
settings.py and telemetry.py.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

OURS = {
    "interfaces",
    "graph",
    "agents",
    "tools",
    "policies",
    "memory",
    "twin",
    "evals",
    "state",
    "settings",
    "telemetry",
}
ALLOWED = {
    "graph": {"agents", "state", "settings", "telemetry", "policies", "memory", "tools"},
    "state": set(),
    "settings": set(),
    "telemetry": {"settings"},
}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots & OURS


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    failures = []
    for module, allowed in ALLOWED.items():
        path = root / f"{module}.py"
        if not path.exists():
            continue
        bad = imported_roots(path) - allowed - {module}
        if bad:
            failures.append(f"{module}.py may not import {', '.join(sorted(bad))}")
    for line in failures:
        print(line)
    if not failures:
        print(f"top-level module imports: {len(ALLOWED)} contracts kept")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

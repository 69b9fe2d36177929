"""The package declares what it imports: a user install (runtime dependencies only) must run."""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCAL = {"etl", "contracts"}


def imported_modules(folder: Path) -> set[str]:
    names = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def test_every_third_party_import_is_a_runtime_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = set()
    for requirement in project["dependencies"]:
        name = requirement.split(";")[0].split("[")[0]
        for mark in "<>=!~ ":
            name = name.split(mark)[0]
        declared.add(name.strip().lower().replace("-", "_"))
    # An optional extra (not the test tools) may be imported where it is needed, saying how to install it.
    for extra, requirements in project["optional-dependencies"].items():
        if extra != "dev":
            declared |= {
                req.split("[")[0].split(">")[0].split("=")[0].strip().replace("-", "_") for req in requirements
            }
    used = imported_modules(ROOT / "etl") | imported_modules(ROOT / "contracts")
    third_party = {name for name in used if name not in sys.stdlib_module_names and name not in LOCAL}
    assert third_party, "the scan found no imports"
    assert third_party <= declared, f"imported but not declared in [project] dependencies: {third_party - declared}"

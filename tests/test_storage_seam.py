"""Only the storage layer touches files: every other module goes through `etl.storage`.

A module outside `etl/storage/` that opens, renames, stats, lists or deletes a file (or hands a
path to a polars or pyarrow reader or writer) fails this test, naming the line.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "etl"
STORAGE = PACKAGE / "storage"
# The README generator behind `make contract-docs`: a developer's tool that edits this repository; and
# the tests' fault points, whose kill-once marker is a local file by design (a test's, not data).
EXEMPT = {ROOT / "contracts" / "docs.py", PACKAGE / "faults.py"}

# Calls that reach the filesystem, by the name they are called with.
FILE_FUNCTIONS = {"open", "os.open", "os.replace", "os.rename", "os.remove", "os.unlink", "os.stat", "os.lstat"}
FILE_FUNCTIONS |= {"os.walk", "os.listdir", "os.scandir", "os.makedirs", "os.mkdir", "os.rmdir", "os.link"}
FILE_FUNCTIONS |= {"os.path.exists", "os.path.isfile", "os.path.isdir", "os.path.getsize", "os.path.getmtime"}
FILE_FUNCTIONS |= {"os.path.realpath", "os.path.islink", "os.chmod", "os.symlink", "os.truncate"}
OS_FILE_NAMES = {name.rsplit(".", 1)[-1] for name in FILE_FUNCTIONS if name.startswith("os.")}
# Modules whose every use is file access (pyarrow.json is not: it parses bytes held in memory).
FILE_MODULES = {"shutil", "tempfile", "glob", "pq", "pyarrow.parquet", "pyarrow.dataset", "pyarrow.fs", "obstore"}
POLARS_IO = {"read_parquet", "scan_parquet", "write_parquet", "sink_parquet", "read_json", "read_ndjson"}
POLARS_IO |= {"scan_ndjson", "read_csv", "scan_csv", "write_csv", "write_json", "read_ipc", "scan_ipc"}
POLARS_IO |= {"sink_csv", "sink_ndjson", "sink_ipc", "write_ndjson", "write_ipc", "read_parquet_schema"}
PATH_METHODS = {"open", "read_text", "read_bytes", "write_text", "write_bytes", "stat", "lstat", "unlink", "rename"}
PATH_METHODS |= {"replace", "mkdir", "rmdir", "exists", "is_file", "is_dir", "iterdir", "glob", "rglob", "touch"}
PATH_METHODS |= {"is_symlink", "resolve", "symlink_to", "chmod", "walk", "readlink", "hardlink_to"}


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return "?"


def file_access(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    from_os = {  # names imported from os (`from dataclasses import replace` is no file call)
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module in ("os", "os.path")
        for alias in node.names
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            found += [(node.lineno, f"import {name}") for name in names if _file_module(name)]
            if isinstance(node, ast.ImportFrom) and node.module in ("os", "os.path"):
                found += [(node.lineno, f"from os import {a.name}") for a in node.names if a.name in OS_FILE_NAMES]
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        receiver, _, method = name.rpartition(".")
        owner = receiver.rsplit(".", 1)[-1]
        if owner == "storage" or owner.endswith("store") or _writes_to_a_string(node, method):
            continue  # the storage layer's own interface; a frame written to text
        is_path_method = isinstance(node.func, ast.Attribute) and method in PATH_METHODS and name != "str.replace"
        if (
            name in FILE_FUNCTIONS
            or _file_module(name.rsplit(".", 1)[0])
            or (name in from_os and name in OS_FILE_NAMES)
            or (name.startswith(("pl.", "polars.")) and method in POLARS_IO)
            or method in {"write_parquet", "sink_parquet", "write_csv", "write_ipc", "write_ndjson", "write_json"}
            or method in {"sink_csv", "sink_ndjson", "sink_ipc"}
            or (is_path_method and not _is_text_call(node))
        ):
            found.append((node.lineno, name))
    return found


def _file_module(name: str) -> bool:
    return any(name == module or name.startswith(f"{module}.") for module in FILE_MODULES)


def _writes_to_a_string(node: ast.Call, method: str) -> bool:
    return method in {"write_csv", "write_json"} and not node.args and not node.keywords


def _is_text_call(node: ast.Call) -> bool:
    """`text.replace(a, b)`, `"…".replace`, `dict.replace`-like calls with arguments are not file calls;
    `Path.replace(target)` takes one argument and `str.replace` two."""
    func = node.func
    assert isinstance(func, ast.Attribute)
    if func.attr == "replace":
        return len(node.args) != 1 or isinstance(func.value, ast.Constant)
    if func.attr in {"resolve", "glob", "stat", "open"} and isinstance(func.value, ast.Name):
        return func.value.id in {"pl", "re", "np"}
    return False


def test_no_module_outside_storage_touches_files() -> None:
    offences = []
    for path in sorted([*PACKAGE.rglob("*.py"), *(ROOT / "contracts").rglob("*.py")]):
        if STORAGE in path.parents or path in EXEMPT:
            continue
        for line, call in file_access(ast.parse(path.read_text(), str(path))):
            offences.append(f"{path.relative_to(ROOT)}:{line}: {call}")
    assert offences == []


def test_the_check_sees_file_access() -> None:
    source = """
import shutil
from pathlib import Path
open("x")
Path("x").read_text()
p.unlink()
os.replace(a, b)
frame.write_parquet(p)
pl.scan_parquet("x")
"""
    calls = sorted(call for _, call in file_access(ast.parse(source)))
    expected = ["?.read_text", "frame.write_parquet", "import shutil", "open", "os.replace", "p.unlink"]
    assert calls == sorted([*expected, "pl.scan_parquet"])
    harmless = "text.replace('a', 'b'); frame.select(pl.col('x')); frame.write_csv(); layout.store.read_bytes('k')"
    assert file_access(ast.parse(harmless)) == []
    more = """
import pyarrow.parquet
from pyarrow.parquet import read_table
from os import remove
lf.sink_csv(p)
pl.read_parquet_schema(p)
folder.walk()
os.path.realpath(p)
"""
    assert len(file_access(ast.parse(more))) == 7
    assert file_access(ast.parse("from dataclasses import replace\nreplace(file, sha256=s)")) == []
    assert len(file_access(ast.parse("from os import remove\nremove(p)"))) == 2
    assert file_access(ast.parse("import pyarrow.json as pj\npj.read_json(io.BytesIO(b))")) == []

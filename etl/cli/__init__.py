"""The command line: a thin shell around the library."""

import os

# Polars allocates through its own jemalloc, which by default keeps several arenas per core. One
# arena held about 60 MB less at the peak of a 2M-event run (NDJSON 490 -> 430 MB, arrays 600 ->
# 540 MB) at the same speed. jemalloc reads this once, when polars loads, so it is set here, before
# any command module imports polars. Polars itself exports its defaults in this variable, so a
# parent process that imported polars hands them down: the arena setting is added to what is there,
# unless that already chooses the arenas. See also `etl.cli.process`.
_ALLOCATOR = "_RJEM_MALLOC_CONF"
if "narenas" not in os.environ.get(_ALLOCATOR, ""):
    os.environ[_ALLOCATOR] = ",".join(filter(None, [os.environ.get(_ALLOCATOR), "narenas:1"]))


def _import_the_contract_without_pandas() -> None:
    """Import pandera without its pandas backend, which this process never uses (the contract runs on
    polars): pandera imports pandas whenever it is installed, as in most analysts' environments, and
    that cost every run about a second (importing the CLI: 1.8 s -> 0.8 s, measured). Pandera is
    shown pandas as missing, exactly as where it is not installed, and only while pandera loads and
    looks for its pandas check backends (since pandera 0.35 it does that once, at the first check:
    0.46 s then): pandas stays importable afterwards (pandera's pandas API does not, which this
    process never uses). Should that path fail, pandera is imported as usual."""
    import sys

    if "pandas" in sys.modules or "pandera" in sys.modules:
        return
    hidden = _PandasMissing()
    sys.meta_path.insert(0, hidden)
    try:
        import pandera.polars  # noqa: F401

        _find_pandas_check_backends()
    except Exception:  # (its pandas-free path changed): the next import loads it normally
        for name in [name for name in sys.modules if name.startswith("pandera")]:
            del sys.modules[name]
    finally:
        sys.meta_path.remove(hidden)


def _find_pandas_check_backends() -> None:
    """Pandera's one look for pandas (cached: it finds none, and looks no more)."""
    from pandera.backends import register_checks

    look = getattr(register_checks, "_load_get_backend_types_from_mro", None)
    if look is not None:  # (pandera before 0.35 looked when it loaded)
        look()


class _PandasMissing:
    """An import finder that says what Python says when pandas is not installed."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


_import_the_contract_without_pandas()

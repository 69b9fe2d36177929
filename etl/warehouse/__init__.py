"""The warehouse: where each table lives (`layout`), which landing content was ingested (`registry`),
how a run publishes all its objects at once (`journal`) and how one run at a time holds it (`lock`)."""

from etl.warehouse.journal import Journal, apply_plan, recover, staging_key
from etl.warehouse.layout import Layout
from etl.warehouse.lock import LeaseLost, hold_warehouse, writer_lock
from etl.warehouse.registry import (
    REGISTRY_VERSION,
    RegisteredFile,
    load_passed_over,
    load_registry,
    registry_document,
    registry_version,
)

__all__ = [
    "REGISTRY_VERSION",
    "Journal",
    "Layout",
    "LeaseLost",
    "RegisteredFile",
    "apply_plan",
    "hold_warehouse",
    "load_passed_over",
    "load_registry",
    "recover",
    "registry_document",
    "registry_version",
    "staging_key",
    "writer_lock",
]

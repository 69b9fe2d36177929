"""`etl validate` as a library call: files found as a run finds them, valid events only counted."""

from __future__ import annotations

from pathlib import Path

import pytest

from etl.contract_check import validate_locations
from etl.errors import UsageError
from tests.helpers import day_file_records, record, write


def test_a_folder_is_searched_as_the_landing_zone_is(tmp_path: Path) -> None:
    outside = write(tmp_path / "outside", "secret.json", [record("u0")])
    zone = tmp_path / "zone"
    write(zone, "2024-05-01/a.json", [*day_file_records(1, range(2)), record(event="nope")])
    write(zone, "notes.txt", "not a feed")
    (zone / "link.json").symlink_to(outside)
    report = validate_locations([str(zone)])
    assert [(f.name, f.read, f.valid, f.rejected) for f in report.files] == [(str(zone / "2024-05-01/a.json"), 5, 4, 1)]
    assert report.problems == [
        f"{zone / '2024-05-01/a.json'} element 4: unknown_event: event 'nope' is not one of the eight message events"
    ]
    assert report.notes == [f"{zone}/link.json: skipped, a symbolic link pointing outside the landing zone"]
    assert not report.notes_are_errors


def test_a_file_named_explicitly_is_checked_whatever_its_name(tmp_path: Path) -> None:
    path = write(tmp_path, "export.txt", [record("u1")])
    report = validate_locations([str(path)])
    assert [(f.name, f.read, f.valid) for f in report.files] == [(str(path), 1, 1)]
    with pytest.raises(UsageError, match="does not exist"):
        validate_locations([str(tmp_path / "missing.json")])

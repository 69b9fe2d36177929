"""The run manifest (`_runs/<run_id>.json`): what a run read, loaded, quarantined and rebuilt, and
its verdict (exit code and outcome)."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from etl.errors import EXIT_OK, EXIT_REJECTED

FileStatus = Literal["new", "reprocessed", "rejected", "copy"]


@dataclass
class FileEntry:
    """One landing file the run read: read = loaded + quarantined + duplicates + ignored."""

    name: str
    sha256: str
    size: int
    status: FileStatus
    read: int
    loaded: int
    quarantined: int
    duplicates: int
    rejected_reason: str | None = None
    notes: list[str] = field(default_factory=list)
    copy_of: str | None = None  # a copy: the file of this run with the same bytes (read once, there)
    ignored: int = 0  # provider events its mapping leaves out on purpose (SPEC §4)
    ignored_events: dict[str, dict[str, int]] = field(default_factory=dict)  # provider -> event name -> count


@dataclass
class Totals:
    read: int = 0
    loaded: int = 0
    quarantined: int = 0
    duplicates: int = 0
    ignored: int = 0
    files_new: int = 0
    files_reprocessed: int = 0
    files_skipped: int = 0
    files_rejected: int = 0
    files_copies: int = 0

    @staticmethod
    def of(files: list[FileEntry], new: int, reprocessed: int, skipped: int) -> Totals:
        return Totals(
            read=sum(f.read for f in files),
            loaded=sum(f.loaded for f in files),
            quarantined=sum(f.quarantined for f in files),
            duplicates=sum(f.duplicates for f in files),
            ignored=sum(f.ignored for f in files),
            files_new=new,
            files_reprocessed=reprocessed,
            files_skipped=skipped,
            files_rejected=sum(1 for f in files if f.status == "rejected"),
            files_copies=sum(1 for f in files if f.status == "copy"),
        )


@dataclass
class Manifest:
    run_id: str
    mode: Literal["run", "reprocess"]
    window: dict[str, str] | None
    landing: str
    warehouse: str
    started_at: str
    totals: Totals
    files: list[FileEntry]
    dates_written: list[str]  # event dates
    dates_deleted: list[str]
    quarantine_reasons: dict[str, int]
    notes: list[str]
    outcome: str = ""
    finished_at: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    ignored_by_provider: dict[str, dict[str, int]] = field(default_factory=dict)  # provider -> event -> count
    send_dates_written: list[str] = field(default_factory=list)  # messages and daily funnel partitions
    send_dates_deleted: list[str] = field(default_factory=list)

    def document(self) -> dict[str, Any]:
        """The manifest as written to `_runs/<run_id>.json`."""
        return asdict(self)


def ignored_counts(per_file: list[dict[str, dict[str, int]]]) -> dict[str, dict[str, int]]:
    """Ignored provider events over all files: provider -> provider event name -> count."""
    total: dict[str, Counter[str]] = {}
    for ignored in per_file:
        for provider, events in ignored.items():
            total.setdefault(provider, Counter()).update(events)
    return {provider: dict(sorted(events.items())) for provider, events in sorted(total.items())}


def reason_counts(per_file: list[dict[str, int]]) -> dict[str, int]:
    """Quarantine reasons over all files, most frequent first."""
    total: Counter[str] = Counter()
    for reasons in per_file:
        total.update(reasons)
    return dict(total.most_common())


def verdict(totals: Totals, max_reject_rate: float | None) -> tuple[int, str]:
    """The exit code and outcome of a finished run (SPEC §8: 3 when a whole file was rejected, or
    when more than `max_reject_rate` of the records were quarantined)."""
    if totals.files_rejected:
        return EXIT_REJECTED, "done, with rejected files"
    if max_reject_rate is not None and totals.read:
        rate = totals.quarantined / totals.read
        if rate > max_reject_rate:
            return EXIT_REJECTED, f"done, but {rate:.1%} of records were quarantined (limit {max_reject_rate:.1%})"
    return EXIT_OK, "done"

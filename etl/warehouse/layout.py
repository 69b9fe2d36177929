"""Where each table and each piece of state lives in the warehouse (SPEC §6), as object keys."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from etl.storage import Store

EVENTS = "events"
MESSAGES = "messages"
QUARANTINE = "quarantine"
DAILY_FUNNEL = "campaign_daily_funnel"
LIFETIME_FUNNEL = "campaign_funnel"
RUNS = "_runs"
STATE = "_state"
PART = "part-0.parquet"
JOURNAL = f"{STATE}/journal"
TABLES = (EVENTS, QUARANTINE, MESSAGES, DAILY_FUNNEL, LIFETIME_FUNNEL)


@dataclass(frozen=True)
class Layout:
    """The keys of the warehouse's objects, and the store that holds them."""

    store: Store

    @staticmethod
    def partition(table: str, key: str, day: date) -> str:
        # Keys come only from validated dates, never from data values.
        return f"{table}/{key}={day.isoformat()}/{PART}"

    def event_partition(self, day: date) -> str:
        return self.partition(EVENTS, "event_date", day)

    def message_partition(self, day: date) -> str:
        return self.partition(MESSAGES, "send_date", day)

    def daily_funnel_partition(self, day: date) -> str:
        return self.partition(DAILY_FUNNEL, "send_date", day)

    def quarantine_partition(self, day: date) -> str:
        return self.partition(QUARANTINE, "ingest_date", day)

    @property
    def lifetime_funnel(self) -> str:
        return f"{LIFETIME_FUNNEL}/{PART}"

    @staticmethod
    def manifest(run_id: str) -> str:
        return f"{RUNS}/{run_id}.json"

    @property
    def registry(self) -> str:
        return f"{STATE}/registry.json"

    @staticmethod
    def staged(sha256: str) -> str:
        """A landing file's valid events as read (duplicates included), one row group per date of
        each batch."""
        return f"{STATE}/staged/{sha256}.parquet"

    @property
    def message_dates(self) -> str:
        """Pairs (event date, send date) of the messages: where a message's events are (etl.sends)."""
        return f"{STATE}/message_dates.parquet"

    @property
    def journal_root(self) -> str:
        return JOURNAL

    @property
    def lock(self) -> str:
        return f"{STATE}/lock.json"

    def event_dates(self) -> list[date]:
        """The dates that have a published events partition."""
        return partition_dates(self.store, EVENTS, "event_date")

    def send_dates(self) -> list[date]:
        """The dates that have a published messages partition."""
        return partition_dates(self.store, MESSAGES, "send_date")

    def funnels_by_event_date(self) -> list[str]:
        """Daily funnel partitions by event date, as versions before send dates wrote them."""
        return [
            self.partition(DAILY_FUNNEL, "event_date", day)
            for day in partition_dates(self.store, DAILY_FUNNEL, "event_date")
        ]

    def is_warehouse(self) -> bool:
        """Whether anything of a warehouse is here (a table, a run manifest or the state)."""
        return any(self.store.list(name) for name in (*TABLES, RUNS, STATE))


def partition_dates(store: Store, table: str, key: str) -> list[date]:
    days = []
    for info in store.list(table):
        parts = info.key.split("/")
        if len(parts) == 3 and parts[2] == PART and parts[1].startswith(f"{key}="):
            try:
                days.append(date.fromisoformat(parts[1].split("=", 1)[1]))
            except ValueError:
                continue
    return sorted(days)

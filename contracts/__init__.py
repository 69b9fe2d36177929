"""The event contract as pandera models: the one source of truth for columns, types, rules and docs."""

from contracts.events import (
    Event,
    EventCandidate,
    event_columns,
    partition_columns,
    required_columns,
    staged_event_schema,
)
from contracts.funnel import DailyFunnel, LifetimeFunnel, column_labels, rate_definitions
from contracts.messages import FIRST_AT, Message
from contracts.quarantine import QuarantineRecord
from contracts.reasons import REASON_CODES, REASONS, Reason
from contracts.vocabulary import EVENT_BY_KEY, EVENT_NAMES, FUNNEL_NAMES, TIMESTAMP_FORMS, event_key

__all__ = [
    "EVENT_BY_KEY",
    "EVENT_NAMES",
    "FIRST_AT",
    "FUNNEL_NAMES",
    "REASONS",
    "REASON_CODES",
    "TIMESTAMP_FORMS",
    "DailyFunnel",
    "Event",
    "EventCandidate",
    "LifetimeFunnel",
    "Message",
    "QuarantineRecord",
    "Reason",
    "column_labels",
    "event_columns",
    "event_key",
    "partition_columns",
    "rate_definitions",
    "required_columns",
    "staged_event_schema",
]

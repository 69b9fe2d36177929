"""Errors a user can act on, and the exit codes of every command (SPEC §8)."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_REJECTED = 3


class EtlError(Exception):
    """A failure the user can act on; its message is one sentence."""


class WarehouseBusy(EtlError):
    """Another run holds the warehouse."""


class Interrupted(KeyboardInterrupt):
    """A run stopped by Ctrl-C (or SIGTERM, as the CLI takes it) before it finished: still a
    KeyboardInterrupt for its caller, now with a message saying what the run left."""


class UsageError(EtlError):
    """A command was given something it cannot use (exit 2), such as a path that does not exist."""

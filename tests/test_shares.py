"""Shares: how many passes a count makes for the slots that run them at once."""

from __future__ import annotations

import pytest

from etl.shares import passes_for


@pytest.mark.parametrize(
    ("shares", "slots", "max_passes", "passes"),
    [
        (1, 2, 8, 1),  # one share: nothing to split
        (7, 2, 8, 8),  # the seventh would run alone
        (3, 2, 8, 4),
        (8, 2, 8, 8),
        (3, 1, 8, 3),  # one slot: as counted
        (5, 4, 8, 8),
        (3, 32, 8, 3),  # 32 passes over every partition would cost more than an idle tail
        (9, 2, 8, 9),  # past max_passes: as counted (the callers split instead)
    ],
)
def test_passes_are_a_multiple_of_the_slots_within_max_passes(
    shares: int, slots: int, max_passes: int, passes: int
) -> None:
    assert passes_for(shares, slots, max_passes) == passes

"""Multiwindow, multi-burn-rate alerting (Google SRE workbook, ch. 5) as exact arithmetic.

An alert tier fires when the error ratio over a long window *and* over a short one (a twelfth of it, so the
alert resets quickly) exceeds ``factor × error budget``. The factor is the burn rate at which the alert spends a
given fraction of the whole SLO window's budget within the long window:
``factor = budget_consumed × slo_window / long_window``. For a 30d window that gives the workbook's
14.4 / 6 / 3 / 1; for 28d it gives 13.44 / 5.6 / 2.8 / 14/15 — computed here with ``fractions.Fraction`` so
that no float noise reaches a rule (``decimal_text`` writes a terminating fraction as a decimal and any other
as ``n/d``, which PromQL evaluates).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache
from typing import Final

from .specs.common import duration_seconds

TIER_PAGE: Final = "page"
TIER_TICKET: Final = "ticket"


@dataclass(frozen=True)
class BurnWindow:
    """One condition of a tier: both windows burn faster than ``factor``; it spends ``budget_consumed``."""

    long: str
    short: str
    budget_consumed: Fraction


TIERS: Final[dict[str, tuple[BurnWindow, ...]]] = {
    TIER_PAGE: (
        BurnWindow("1h", "5m", Fraction(2, 100)),
        BurnWindow("6h", "30m", Fraction(5, 100)),
    ),
    TIER_TICKET: (
        BurnWindow("1d", "2h", Fraction(10, 100)),
        BurnWindow("3d", "6h", Fraction(10, 100)),
    ),
}

# Every window an SLO records its error ratio over (each tier's long and short windows), shortest first.
WINDOWS: Final = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")


@lru_cache(maxsize=4096)  # pure, and called for every rule of every SLO
def exact(value: float | str) -> Fraction:
    """The decimal a person wrote (``0.999``), not the binary float nearest to it."""
    return Fraction(Decimal(repr(value) if isinstance(value, float) else value))


@lru_cache(maxsize=4096)
def error_budget(objective: float) -> Fraction:
    """``1 - objective``, exactly: 0.999 → 1/1000."""
    return 1 - exact(objective)


@lru_cache(maxsize=4096)
def burn_factor(slo_window: str, window: BurnWindow) -> Fraction:
    """How many times faster than sustainable the budget burns when this condition holds."""
    seconds = Fraction(int(duration_seconds(slo_window)))
    return window.budget_consumed * seconds / int(duration_seconds(window.long))


@lru_cache(maxsize=4096)
def lowest_factor(slo_window: str, tier: str) -> Fraction:
    return min(burn_factor(slo_window, window) for window in TIERS[tier])


@lru_cache(maxsize=4096)
def decimal_text(value: Fraction) -> str:
    """A fraction as PromQL text: ``13.44``, ``6``, ``0.001``, or ``14/15`` when no finite decimal equals it."""
    denominator = value.denominator
    for prime in (2, 5):
        while denominator % prime == 0:
            denominator //= prime
    if denominator != 1:
        return f"{value.numerator}/{value.denominator}"
    digits = 0
    while (value * 10**digits).denominator != 1:
        digits += 1
    text = format(Decimal(value.numerator * 10**digits // value.denominator).scaleb(-digits), "f")
    return text

"""Cron schedules as Argo Workflows and Kubernetes read them (robfig/cron's standard five-field parser).

``minute hour day-of-month month day-of-week``: each field ``*``, ``?`` (day fields), a value, a range
``a-b``, a step ``*/n``, ``a-b/n`` or ``a/n`` (from ``a`` to the field's end), or a comma list of those; months
``JAN``-``DEC`` and days ``SUN``-``SAT`` by name; or one of the macros ``@yearly``/``@annually``, ``@monthly``,
``@weekly``, ``@daily``/``@midnight``, ``@hourly``. When both day fields are restricted, a day matches if
either does (Vixie cron's rule, which robfig/cron follows).

:func:`max_interval_seconds` gives the longest gap between two consecutive runs: how long silence from a
scheduled job is normal, so a staleness alert can wait exactly that long.
"""

from __future__ import annotations

import datetime
import itertools
from functools import lru_cache

PATTERN = r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|(\S+ +){4}\S+)$"
MACROS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}
FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 6))
NAMES = {
    3: {name: index + 1 for index, name in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"))},
    4: {name: index for index, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))},
}
# Four years hold every combination of weekday, month and leap day, so the longest gap shows within them.
_HORIZON_DAYS = 4 * 366 + 7


class CronError(ValueError):
    """A schedule robfig/cron would refuse; the message says which field and why."""


def _value(text: str, index: int) -> int:
    name, low, high = FIELDS[index]
    upper = text.upper()
    if upper in NAMES.get(index, {}):
        return NAMES[index][upper]
    if not text.isdigit():
        raise CronError(f"`{text}` is not a number in the {name} field")
    value = int(text)
    if not low <= value <= high:
        raise CronError(f"{value} is out of range for the {name} field ({low}-{high})")
    return value


def _field(text: str, index: int) -> tuple[frozenset[int], bool]:
    """The values one field allows, and whether it is unrestricted (``*`` or ``?``)."""
    name, low, high = FIELDS[index]
    values: set[int] = set()
    star = False
    for part in text.split(","):
        if not part:
            raise CronError(f"empty list item in the {name} field")
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"`{step_text}` is not a positive step in the {name} field")
            step = int(step_text)
        if base in ("*", "?"):
            if base == "?" and index not in (2, 4):
                raise CronError(f"`?` is only allowed in the day fields, not the {name} field")
            start, end = low, high
            star = star or not step_text
        elif "-" in base:
            first, _, last = base.partition("-")
            start, end = _value(first, index), _value(last, index)
            if start > end:
                raise CronError(f"range `{base}` runs backwards in the {name} field")
        else:
            start = _value(base, index)
            end = high if step_text else start
        values.update(range(start, end + 1, step))
    return frozenset(values), star


@lru_cache(maxsize=1024)
def parse(schedule: str) -> tuple[tuple[frozenset[int], bool], ...]:
    """The five fields of ``schedule`` as sets of allowed values; raises :class:`CronError`."""
    text = MACROS.get(schedule, schedule)
    if text.startswith("@"):
        raise CronError(f"`{schedule}` is not a known macro (@yearly, @monthly, @weekly, @daily, @hourly)")
    if text != text.strip() or "\t" in text or "\n" in text:
        raise CronError("a schedule is five fields separated by spaces, without leading or trailing whitespace")
    parts = text.split()
    if len(parts) != 5:
        raise CronError(f"a schedule has 5 fields (minute hour day-of-month month day-of-week), not {len(parts)}")
    return tuple(_field(part, index) for index, part in enumerate(parts))


def problem(schedule: str) -> str | None:
    """Why ``schedule`` is not a valid cron schedule, or None."""
    shown = schedule.encode("unicode_escape").decode()
    try:
        parse(schedule)
    except CronError as error:
        return f"`{shown}` is not a cron schedule such as `*/30 * * * *` or `@hourly`: {error}"
    try:
        max_interval_seconds(schedule)
    except CronError as error:
        return str(error)
    return None


@lru_cache(maxsize=1024)
def max_interval_seconds(schedule: str) -> int:
    """The longest time between two consecutive runs of ``schedule``, in seconds (UTC, no DST).

    Raises :class:`CronError` for an invalid schedule or one that never runs (``0 0 31 2 *``)."""
    (minutes, _), (hours, _), (days, any_day), (months, _), (weekdays, any_weekday) = parse(schedule)
    times = sorted(hour * 60 + minute for hour in hours for minute in minutes)
    start = datetime.date(2024, 1, 1)  # the horizon covers a leap year
    run_days = []
    for offset in range(_HORIZON_DAYS):
        day = start + datetime.timedelta(days=offset)
        if day.month not in months:
            continue
        day_match = day.day in days
        weekday_match = (day.isoweekday() % 7) in weekdays
        if (day_match and weekday_match) if (any_day or any_weekday) else (day_match or weekday_match):
            run_days.append(offset)
    if not run_days:
        raise CronError(f"`{schedule}` never runs: no date has that day of the month in that month")
    gap = max((later - earlier for earlier, later in itertools.pairwise(times)), default=0)
    for earlier, later in itertools.pairwise(run_days):
        gap = max(gap, (later - earlier) * 1440 + times[0] - times[-1])
    if len(run_days) == 1:
        raise CronError(f"`{schedule}` runs less than once in four years")
    return gap * 60

"""Server-drawn SVG charts: geometry computed here, drawn by templates (no script, no CDN).

Each state has a fill pattern as well as a colour, and every chart sits beside a table of its
numbers, so nothing is read from colour alone; WeasyPrint prints the same SVG.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from provisions.models import CoverageState

STATES = [state.value for state in CoverageState]
STATE_LABELS = {state.value: state.label for state in CoverageState}


@dataclass(frozen=True)
class Segment:
    state: str
    label: str
    count: int
    x: float
    width: float


@dataclass(frozen=True)
class Bar:
    label: str
    code: str
    total: int
    y: float
    segments: list[Segment]


def coverage_bars(
    rows: list[dict[str, Any]], *, width: float = 600, row_height: float = 26
) -> dict[str, Any]:
    """One stacked bar per domain: its capabilities by coverage state, as shares of the widest."""
    widest = max((row["capabilities"] for row in rows), default=0) or 1
    bars = []
    for index, row in enumerate(rows):
        x = 0.0
        segments = []
        for state in STATES:
            count = row["capabilities_by_state"][state]
            segment_width = width * count / widest
            segments.append(Segment(state, STATE_LABELS[state], count, x, segment_width))
            x += segment_width
        bars.append(Bar(row["name"], row["domain"], row["capabilities"], index * row_height, segments))
    return {"bars": bars, "width": width, "height": max(len(rows), 1) * row_height, "row_height": row_height}


@dataclass(frozen=True)
class Mark:
    x: float
    label: str
    state: str
    row: int

    @property
    def label_y(self) -> int:
        return 30 + self.row * 34


def lapse_timeline(
    lapses: list[Any], *, as_of: datetime.date, width: float = 600, horizon_days: int = 365
) -> dict[str, Any]:
    """Capabilities placed by lapse date on a line from the as-of date to the horizon."""
    marks = []
    last_x_by_row: dict[int, float] = {}
    for lapse in lapses:
        days = min(max(lapse.days, 0), horizon_days)
        x = width * days / horizon_days
        row = 0
        while x - last_x_by_row.get(row, -1e9) < 70:  # keep labels apart
            row += 1
        last_x_by_row[row] = x
        marks.append(Mark(x, lapse.code, lapse.state, row))
    rows = max((mark.row for mark in marks), default=0) + 1
    end = as_of + datetime.timedelta(days=horizon_days)
    return {"marks": marks, "width": width, "height": 30 + rows * 34, "start": as_of, "end": end}


@dataclass(frozen=True)
class Line:
    state: str
    label: str
    points: str  # "x,y x,y ..." for <polyline>
    markers: list[tuple[float, float, int]]


def _step(top: int) -> int:
    """A round step (1, 2 or 5 times a power of ten) giving four or five ticks up to the top."""
    raw = max(top / 4, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    return next(int(m * magnitude) for m in (1, 2, 5, 10) if m * magnitude >= raw)


def coverage_over_time(
    snapshots: list[Any],
    *,
    milestones: Sequence[tuple[datetime.date, str]] = (),
    width: float = 600,
    height: float = 180,
) -> dict[str, Any] | None:
    """One line per coverage state across the recorded days (None with fewer than two), with a
    y-axis in round steps, the years marked on the x-axis and the partnership's milestones in the
    period as numbered dashed lines (listed under the chart)."""
    if len(snapshots) < 2:
        return None
    first, last = snapshots[0].as_of, snapshots[-1].as_of
    span = max((last - first).days, 1)
    highest = max(max(getattr(s, state) for state in STATES) for s in snapshots) or 1
    step = _step(highest)
    top = math.ceil(highest / step) * step

    def x(day: datetime.date) -> float:
        return width * (day - first).days / span

    lines = []
    for state in STATES:
        marks = [
            (x(s.as_of), height - height * getattr(s, state) / top, getattr(s, state)) for s in snapshots
        ]
        lines.append(
            Line(state, STATE_LABELS[state], " ".join(f"{px:.1f},{py:.1f}" for px, py, _ in marks), marks)
        )
    years = [
        (x(datetime.date(year, 1, 1)), str(year))
        for year in range(first.year + 1, last.year + 1)
        if first < datetime.date(year, 1, 1) < last
    ]
    shown = [(day, title) for day, title in milestones if first <= day <= last]
    return {
        "lines": lines,
        "width": width,
        "height": height,
        "first": first,
        "last": last,
        "top": top,
        "y_ticks": [(height - height * value / top, value) for value in range(0, top + 1, step)],
        "years": years,
        "milestones": [(x(day), number, day, title) for number, (day, title) in enumerate(shown, start=1)],
    }


@dataclass(frozen=True)
class Span:
    """A stretch of time in one coverage state, placed on the timeline."""

    state: str
    label: str
    start: datetime.date
    end: datetime.date
    x: float
    width: float


def state_timeline(
    states: list[tuple[datetime.date, str]], *, end: datetime.date, width: float = 600
) -> dict[str, Any]:
    """A capability's coverage state over time: (day it began, state) in date order, until `end`,
    as spans on a line, with a tick at each first of January."""
    if not states:
        return {"spans": [], "ticks": [], "width": width}
    start = states[0][0]
    total = max((end - start).days, 1)

    def x(day: datetime.date) -> float:
        return round((day - start).days / total * width, 1)

    spans = []
    for (day, state), following in zip(states, [*states[1:], (end, "")], strict=True):
        if following[0] > day:
            spans.append(
                Span(state, STATE_LABELS[state], day, following[0], x(day), x(following[0]) - x(day))
            )
    ticks = [
        (x(datetime.date(year, 1, 1)), str(year))
        for year in range(start.year + 1, end.year + 1)
        if start < datetime.date(year, 1, 1) < end
    ]
    return {"spans": spans, "ticks": ticks, "width": width}

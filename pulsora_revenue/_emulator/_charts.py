"""The page's charts: inline SVG drawn on the server, from exact amounts.

Amounts come in as ``Decimal`` and leave as coordinates rounded to a tenth of a
pixel; the labels write the amounts themselves, exactly. The x axis has a slot
per day, from the first day to the last. No script, and nothing is fetched.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from html import escape

import attrs

from ._format import money

#: The size of a chart, and the room around its plot for the labels, in pixels.
WIDTH, HEIGHT = 560, 200
LEFT, RIGHT, TOP, BOTTOM = 130, 12, 12, 28
PLOT_WIDTH, PLOT_HEIGHT = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

#: The widest a bar is drawn, however few days there are.
MAX_BAR = 40

#: How close two amount labels may be, in pixels, before the later one is left out.
LABEL_GAP = 12

#: An amount on a day.
Point = tuple[date, Decimal]

_ZERO = Decimal(0)


@attrs.frozen
class Scale:
    """Where a day and an amount are drawn: days from *first* to *last*, amounts *low* to *high*."""

    first: date
    last: date
    low: Decimal
    high: Decimal

    @classmethod
    def of(cls, points: Sequence[Point], first: date, last: date) -> Scale:
        """The scale that shows *points* and zero, on the days from *first* to *last*."""
        values = [value for _, value in points]
        low, high = min([_ZERO, *values]), max([_ZERO, *values])
        return cls(first, last, low, high if high > low else low + 1)

    @property
    def slot(self) -> Decimal:
        """The width of one day."""
        return Decimal(PLOT_WIDTH) / ((self.last - self.first).days + 1)

    def x(self, day: date) -> Decimal:
        """The left edge of *day*'s slot."""
        return LEFT + (day - self.first).days * self.slot

    def y(self, value: Decimal) -> Decimal:
        """The height of *value*."""
        return TOP + (self.high - value) * PLOT_HEIGHT / (self.high - self.low)


def revenue_bars(points: Sequence[Point], currency: str, first: date, last: date) -> str:
    """Draw revenue per day as bars up from zero (a day of more refunds goes below).

    *points* (at least one) are days from *first* to *last*, oldest first.
    """
    scale = Scale.of(points, first, last)
    width = min(scale.slot * Decimal("0.8"), Decimal(MAX_BAR))
    bars = []
    for day, value in points:
        top, bottom = sorted([scale.y(value), scale.y(_ZERO)])
        colour = "#c0504d" if value < 0 else "#4a7bd0"
        bars.append(
            f'<rect x="{_n(scale.x(day) + (scale.slot - width) / 2)}" y="{_n(top)}"'
            f' width="{_n(width)}" height="{_n(max(bottom - top, Decimal("0.5")))}"'
            f' fill="{colour}">{_title(f"{day}: {money(value, currency)}")}</rect>'
        )
    best = max(points, key=lambda point: point[1])
    summary = (
        f"Revenue per day in {currency}, {_span(first, last)}:"
        f" highest {money(best[1], currency)} on {best[0]}"
    )
    return _svg(summary, scale, points, currency, "".join(bars))


def mrr_steps(points: Sequence[Point], currency: str, first: date, last: date) -> str:
    """Draw MRR over time as steps: zero at first, then each day's MRR until the next change.

    *points* (at least one) are days from *first* to *last*, oldest first.
    """
    scale = Scale.of(points, first, last)
    path = [f"M{_n(scale.x(first))} {_n(scale.y(_ZERO))}"]
    dots = []
    for day, value in points:
        x, y = scale.x(day), scale.y(value)
        path.append(f"H{_n(x)} V{_n(y)}")
        dots.append(
            f'<circle cx="{_n(x)}" cy="{_n(y)}" r="2.5" fill="#2a9d6f">'
            f"{_title(f'{day}: {money(value, currency)}')}</circle>"
        )
    path.append(f"H{LEFT + PLOT_WIDTH}")
    line = f'<path d="{" ".join(path)}" fill="none" stroke="#2a9d6f" stroke-width="2"/>'
    summary = (
        f"MRR in {currency}, {_span(first, last)}: {money(points[-1][1], currency)} at the end"
    )
    return _svg(summary, scale, points, currency, line + "".join(dots))


def _svg(summary: str, scale: Scale, points: Sequence[Point], currency: str, marks: str) -> str:
    label = escape(summary)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}"'
        f' width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{label}"'
        f' font-family="system-ui, sans-serif" font-size="11" fill="#555">'
        f"<title>{label}</title>{_amount_axis(scale, points, currency)}"
        f"{_day_axis(scale)}{marks}</svg>"
    )


def _amount_axis(scale: Scale, points: Sequence[Point], currency: str) -> str:
    """A line and a label at zero, at the highest amount, and at the lowest if below zero."""
    values = [_ZERO, *(value for _, value in points)]
    wanted = [_ZERO, max(values), min(values)]
    placed: list[Decimal] = []
    marks = []
    for value in wanted:
        y = scale.y(value)
        if any(abs(y - other) < LABEL_GAP for other in placed):
            continue  # at, or too near, a label already there (zero's is always there)
        placed.append(y)
        stroke = "#999" if value == 0 else "#e2e2e2"
        marks.append(
            f'<line x1="{LEFT}" x2="{LEFT + PLOT_WIDTH}" y1="{_n(y)}" y2="{_n(y)}"'
            f' stroke="{stroke}"/><text x="{LEFT - 6}" y="{_n(y + 4)}" text-anchor="end">'
            f"{escape(money(value, currency))}</text>"
        )
    return "".join(marks)


def _day_axis(scale: Scale) -> str:
    """The first day under the left end of the plot, the last under its right end."""
    y = TOP + PLOT_HEIGHT + 18
    if scale.first == scale.last:
        middle = LEFT + PLOT_WIDTH // 2
        return f'<text x="{middle}" y="{y}" text-anchor="middle">{scale.first}</text>'
    return (
        f'<text x="{LEFT}" y="{y}">{scale.first}</text>'
        f'<text x="{LEFT + PLOT_WIDTH}" y="{y}" text-anchor="end">{scale.last}</text>'
    )


def _span(first: date, last: date) -> str:
    return f"on {first}" if first == last else f"{first} to {last}"


def _title(text: str) -> str:
    return f"<title>{escape(text)}</title>"


def _n(value: Decimal | int) -> str:
    """A coordinate, to a tenth of a pixel."""
    return f"{Decimal(value):.1f}"

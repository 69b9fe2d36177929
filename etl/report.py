"""A self-contained HTML funnel report: inline SVG charts, inline CSS, no script and no network."""

from __future__ import annotations

import html
from datetime import UTC, date, datetime
from typing import Any

import polars as pl

from contracts import REASONS, rate_definitions
from etl import storage, tables
from etl.storage import Store

STAGES = ("sent", "delivered", "viewed", "clicked")
EXITS = ("soft_bounced", "hard_bounced", "unsubscribed", "marked_as_spam")
TREND = {"sent": "#2b6cb0", "viewed": "#2f855a", "clicked": "#b7791f"}


def render_report(warehouse: Store, generated: datetime | None = None) -> str:
    """The whole report as one HTML page."""
    lifetime = tables.lifetime(warehouse).sort("sent", "campaign_id", descending=[True, False], nulls_last=True)
    daily = tables.daily(warehouse)
    quarantine = tables.quarantine(warehouse)
    stamp = (generated or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    days = daily["event_date"].unique().sort().to_list()
    span = f"{days[0]} to {days[-1]}" if days else "no dates yet"
    parts = [
        "<header><h1>Campaign funnels</h1>"
        f"<p class=meta>{lifetime.height} campaigns · {tables.event_count(warehouse):,} events · {span} · "
        f"{quarantine.height:,} records in quarantine · generated {stamp}</p></header>",
        _overview(lifetime),
        _overall_trend(daily),
        *(_campaign(row, daily) for row in lifetime.iter_rows(named=True)),
        _quarantine(quarantine),
    ]
    return _PAGE.format(body="\n".join(parts))


def write_report(warehouse: Store, out: Store, key: str) -> str:
    """Write the report as the object `key` of `out`; where it went, as a user would write it."""
    storage.write_text(out, render_report(warehouse), key)
    return out.describe(key)


def _overview(lifetime: pl.DataFrame) -> str:
    if lifetime.is_empty():
        return "<section><h2>All campaigns</h2><p>No events yet: run <code>etl run</code> first.</p></section>"
    head = "".join(
        f"<th>{h}</th>" for h in ("#", "campaign", "sent", "delivered", "open", "click", "bounce", "unsub.", "")
    )
    rows = []
    for rank, row in enumerate(lifetime.iter_rows(named=True), start=1):
        flag = "<span class=flag>delivery estimated</span>" if row["delivered_estimated"] else ""
        rows.append(
            f"<tr><td>{rank}</td>"
            f"<td><a href='#c-{_anchor(row['campaign_id'])}'>{_name(row['campaign_id'])}</a></td>"
            f"<td class=num>{row['sent']:,}</td><td class=num>{row['delivered']:,}</td>"
            f"<td class=num>{_pct(row['open_rate'])}</td><td class=num>{_pct(row['click_rate'])}</td>"
            f"<td class=num>{_pct(row['bounce_rate'])}</td><td class=num>{_pct(row['unsubscribe_rate'])}</td>"
            f"<td>{flag}</td></tr>"
        )
    return (
        "<section><h2>All campaigns <small>ranked by messages sent</small></h2>"
        f"<table class=overview><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></section>"
    )


def _overall_trend(daily: pl.DataFrame) -> str:
    if daily.is_empty():
        return ""
    per_day = daily.group_by("event_date").agg(pl.col(list(TREND)).sum()).sort("event_date")
    return "<section><h2>Daily trend, all campaigns</h2>" + _trend_svg(per_day) + "</section>"


def _campaign(row: dict[str, Any], daily: pl.DataFrame) -> str:
    rates = "".join(
        f"<tr><td>{name.replace('_', ' ')}</td><td class=num>{_pct(row[name])}</td><td class=def>{definition}</td></tr>"
        for name, definition in rate_definitions().items()  # as the contract describes them
    )
    note = (
        "<p class=note>This campaign has no Delivered events (its provider does not report them): the "
        f"delivered base is estimated as sent minus bounces = {row['delivered_base']:,}.</p>"
        if row["delivered_estimated"]
        else ""
    )
    mine = daily.filter(
        pl.col("campaign_id").is_null() if row["campaign_id"] is None else pl.col("campaign_id") == row["campaign_id"]
    ).sort("event_date")
    return (
        f"<section id='c-{_anchor(row['campaign_id'])}' class=campaign>"
        f"<h2>Campaign {_name(row['campaign_id'])}</h2>{note}"
        f"<div class=cols><div><h3>Funnel</h3>{_funnel_svg(row)}</div>"
        f"<div><h3>Rates</h3><table class=rates>{rates}</table></div></div>"
        f"<h3>Per day</h3>{_trend_svg(mine)}</section>"
    )


def _funnel_svg(row: dict[str, Any]) -> str:
    """Stages as descending bars with the step conversion, then the exits in another colour."""
    top = max([int(row[name]) for name in (*STAGES, *EXITS)] + [1])
    width, bar, gap, label = 520, 24, 8, 120
    room = width - label - 150
    items, y = [], 0
    previous: int | None = None
    for name in (*STAGES, *EXITS):
        value = int(row[name])
        if name == EXITS[0]:
            y += 14
            items.append(f"<text class=section x='0' y='{y}'>exits</text>")
            y += 6
        length = round(room * value / top) if value else 0
        color = "#2b6cb0" if name in STAGES else "#c05621"
        step = f" ({value / previous:.0%} of previous)" if name in STAGES[1:] and previous else ""
        items.append(
            f"<text x='0' y='{y + 16}'>{name.replace('_', ' ')}</text>"
            f"<rect class=bar x='{label}' y='{y}' width='{max(length, 1)}' height='{bar}' fill='{color}'>"
            f"<title>{name}: {value:,}</title></rect>"
            f"<text x='{label + length + 6}' y='{y + 16}'>{value:,}{step}</text>"
        )
        previous = value if name in STAGES else previous
        y += bar + gap
    return _svg("funnel", width, y, items)


def _trend_svg(per_day: pl.DataFrame) -> str:
    """Sent, viewed and clicked per day as lines with points."""
    if per_day.is_empty():
        return "<p class=meta>No daily data.</p>"
    days: list[date] = per_day["event_date"].to_list()
    width, height, left, bottom, top_pad = 640, 200, 56, 28, 12
    peak = max(1, *(int(v) for name in TREND for v in per_day[name].to_list()))
    plot_w, plot_h = width - left - 16, height - bottom - top_pad

    def x(i: int) -> float:
        return left + (plot_w * i / (len(days) - 1) if len(days) > 1 else plot_w / 2)

    def y(v: int) -> float:
        return top_pad + plot_h * (1 - v / peak)

    parts = [
        f"<line class=axis x1='{left}' y1='{y(0):.1f}' x2='{width - 16}' y2='{y(0):.1f}'/>",
        f"<text x='{left - 6}' y='{y(peak) + 4:.1f}' text-anchor='end'>{peak:,}</text>",
        f"<text x='{left - 6}' y='{y(0) + 4:.1f}' text-anchor='end'>0</text>",
    ]
    labelled = range(len(days)) if len(days) <= 8 else (0, len(days) - 1)
    for i in labelled:
        anchor = "start" if i == 0 and len(days) > 1 else "end" if i == len(days) - 1 and len(days) > 1 else "middle"
        parts.append(f"<text x='{x(i):.1f}' y='{height - 8}' text-anchor='{anchor}'>{days[i]}</text>")
    for index, (name, color) in enumerate(TREND.items()):
        values = [int(v) for v in per_day[name].to_list()]
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values))
        parts.append(f"<polyline class=line points='{points}' fill='none' stroke='{color}' stroke-width='2'/>")
        parts += [
            f"<circle cx='{x(i):.1f}' cy='{y(v):.1f}' r='3' fill='{color}'>"
            f"<title>{days[i]} {name}: {v:,}</title></circle>"
            for i, v in enumerate(values)
        ]
        parts.append(
            f"<rect x='{left + 8 + index * 90}' y='2' width='10' height='10' fill='{color}'/>"
            f"<text x='{left + 22 + index * 90}' y='11'>{name}</text>"
        )
    return _svg("trend", width, height, parts)


def _svg(kind: str, width: int, height: int, parts: list[str]) -> str:
    size = f"width='{width}' height='{height}' viewBox='0 0 {width} {height}'"
    return f"<svg class={kind} {size} role='img'>{''.join(parts)}</svg>"


def _quarantine(quarantine: pl.DataFrame) -> str:
    if quarantine.is_empty():
        return "<section><h2>Quarantine</h2><p>No records were rejected.</p></section>"
    fixes = {reason.code: (reason.meaning, reason.fix) for reason in REASONS}
    counts = quarantine.group_by("reason").agg(pl.len().alias("n")).sort("n", "reason", descending=[True, False])
    rows = "".join(
        f"<tr><td><code>{html.escape(r)}</code></td><td class=num>{n:,}</td>"
        f"<td>{html.escape(fixes.get(r, ('', ''))[0])}</td><td>{html.escape(fixes.get(r, ('', ''))[1])}</td></tr>"
        for r, n in counts.iter_rows()
    )
    examples = "".join(
        f"<tr><td>{html.escape(f)}</td><td>{html.escape(p)}</td><td><code>{html.escape(r)}</code></td>"
        f"<td>{html.escape(d)}</td></tr>"
        for f, p, r, d in quarantine.sort("source_file", "position")
        .select("source_file", "position", "reason", "detail")
        .head(25)
        .iter_rows()
    )
    return (
        f"<section><h2>Quarantine <small>{quarantine.height:,} records</small></h2>"
        "<table><tr><th>reason</th><th>records</th><th>meaning</th><th>what the sender should fix</th></tr>"
        f"{rows}</table><h3>Examples</h3>"
        f"<table><tr><th>file</th><th>position</th><th>reason</th><th>detail</th></tr>{examples}</table></section>"
    )


def _pct(value: object) -> str:
    return "—" if value is None else f"{float(value):.1%}"  # type: ignore[arg-type]


def _name(campaign: object) -> str:
    return "(no campaign)" if campaign is None else html.escape(str(campaign))


def _anchor(campaign: object) -> str:
    return "none" if campaign is None else "".join(ch if ch.isalnum() else "-" for ch in str(campaign))


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Campaign funnels</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 68rem;
       padding: 0 1rem; color: #1a202c; }}
h1 {{ margin-bottom: .2rem; }} h2 small, .meta, .def {{ color: #718096; font-weight: normal; }}
table {{ border-collapse: collapse; margin: .4rem 0 1.2rem; }}
th, td {{ padding: .25rem .6rem; border-bottom: 1px solid #e2e8f0; text-align: left; vertical-align: top; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
.flag {{ background: #fefcbf; color: #744210; border-radius: 3px; padding: 0 .3rem; font-size: 12px; }}
.note {{ color: #c05621; }}
section {{ border-top: 2px solid #e2e8f0; margin-top: 1.5rem; }}
.cols {{ display: flex; flex-wrap: wrap; gap: 2rem; }}
svg text {{ font-size: 12px; fill: #2d3748; }} svg text.section {{ fill: #c05621; font-style: italic; }}
svg .axis {{ stroke: #a0aec0; }}
</style></head><body>
{body}
</body></html>
"""

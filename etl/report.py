"""A self-contained HTML funnel report: inline SVG charts, inline CSS, no script and no network."""

from __future__ import annotations

import html
from datetime import UTC, date, datetime
from typing import Any

import polars as pl

from contracts import REASONS, rate_definitions
from etl import storage, tables
from etl.storage import Store

#: The funnel of a campaign's messages: each stage a share of its messages (SPEC §5).
STAGES = {"messages": "messages", "delivered_base": "delivered", "viewed": "opened", "clicked": "clicked"}
EXITS = {"bounced": "bounced", "unsubscribed": "unsubscribed", "marked_as_spam": "marked as spam"}
COHORT = {"messages": "#2b6cb0", "viewed": "#2f855a", "clicked": "#b7791f"}
HUMAN_COLOR = "#68d391"


def render_report(warehouse: Store, generated: datetime | None = None) -> str:
    """The whole report as one HTML page."""
    lifetime = tables.lifetime(warehouse).sort("messages", "campaign_id", descending=[True, False], nulls_last=True)
    daily = tables.daily(warehouse)
    quarantine = tables.quarantine(warehouse)
    stamp = (generated or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    days = daily["send_date"].unique().sort().to_list()
    span = f"sent {days[0]} to {days[-1]}" if days else "no messages yet"
    messages = int(lifetime["messages"].sum()) if lifetime.height else 0
    parts = [
        "<header><h1>Campaign funnels</h1>"
        f"<p class=meta>{lifetime.height} campaigns · {messages:,} messages · "
        f"{tables.row_count(warehouse):,} events · {span} · "
        f"{quarantine.height:,} records in quarantine · generated {stamp}</p>"
        f"<p class=meta>{_HOW_COUNTED}</p></header>",
        _overview(lifetime),
        _overall_cohorts(daily),
        *(_campaign(row, daily) for row in lifetime.iter_rows(named=True)),
        _quarantine(quarantine),
    ]
    return _PAGE.format(body="\n".join(parts))


_HOW_COUNTED = (
    "Every number counts messages (one send of a campaign to one user), on the date the message was sent, "
    "with everything that happened to it later: a click counts as an open, and any engagement as a delivery. "
    "Rates are shares of the messages delivered, so none can pass 100 %."
)


def write_report(warehouse: Store, out: Store, key: str) -> str:
    """Write the report as the object `key` of `out`; where it went, as a user would write it."""
    storage.write_text(out, render_report(warehouse), key)
    return out.describe(key)


def _machine_opens_flagged(frame: pl.DataFrame) -> bool:
    """Whether some open was flagged as a machine's (then human opens are shown beside opens)."""
    return frame.height > 0 and bool((frame["viewed_human"] < frame["viewed"]).any())


def _overview(lifetime: pl.DataFrame) -> str:
    if lifetime.is_empty():
        return "<section><h2>All campaigns</h2><p>No events yet: run <code>etl run</code> first.</p></section>"
    human = _machine_opens_flagged(lifetime)
    headings = ["#", "campaign", "messages", "delivered", "open", *(["human open"] if human else []), "click"]
    head = "".join(f"<th>{h}</th>" for h in (*headings, "bounce", "unsub.", ""))
    rows = []
    for rank, row in enumerate(lifetime.iter_rows(named=True), start=1):
        flag = "<span class=flag>delivery estimated</span>" if row["delivered_estimated"] else ""
        human_cell = f"<td class=num>{_pct(row['human_open_rate'])}</td>" if human else ""
        rows.append(
            f"<tr><td>{rank}</td>"
            f"<td><a href='#c-{_anchor(row['campaign_id'])}'>{_name(row['campaign_id'])}</a></td>"
            f"<td class=num>{row['messages']:,}</td><td class=num>{row['delivered_base']:,}</td>"
            f"<td class=num>{_pct(row['open_rate'])}</td>{human_cell}<td class=num>{_pct(row['click_rate'])}</td>"
            f"<td class=num>{_pct(row['bounce_rate'])}</td><td class=num>{_pct(row['unsubscribe_rate'])}</td>"
            f"<td>{flag}</td></tr>"
        )
    return (
        "<section><h2>All campaigns <small>ranked by messages</small></h2>"
        f"<table class=overview><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></section>"
    )


def _overall_cohorts(daily: pl.DataFrame) -> str:
    if daily.is_empty():
        return ""
    per_day = daily.group_by("send_date").agg(pl.col(*COHORT, "viewed_human").sum()).sort("send_date")
    return (
        "<section><h2>Messages by send date, all campaigns</h2>"
        "<p class=meta>Each point is the messages sent that day, and how many of them were opened and clicked "
        "(at any time since).</p>" + _cohort_svg(per_day) + "</section>"
    )


def _campaign(row: dict[str, Any], daily: pl.DataFrame) -> str:
    rates = "".join(
        f"<tr><td>{name.replace('_', ' ')}</td><td class=num>{_pct(row[name])}</td><td class=def>{definition}</td></tr>"
        for name, definition in rate_definitions().items()  # as the contract describes them
    )
    note = (
        "<p class=note>No message of this campaign has a Delivered event (its provider does not report them): "
        f"the delivered base is estimated as the messages not bounced = {row['delivered_base']:,}.</p>"
        if row["delivered_estimated"]
        else ""
    )
    mine = daily.filter(
        pl.col("campaign_id").is_null() if row["campaign_id"] is None else pl.col("campaign_id") == row["campaign_id"]
    ).sort("send_date")
    return (
        f"<section id='c-{_anchor(row['campaign_id'])}' class=campaign>"
        f"<h2>Campaign {_name(row['campaign_id'])}</h2>{note}"
        f"<div class=cols><div><h3>Funnel <small>share of messages</small></h3>{_funnel_svg(row)}</div>"
        f"<div><h3>Rates</h3><table class=rates>{rates}</table></div></div>"
        f"<h3>By send date</h3>{_cohort_svg(mine)}</section>"
    )


def _funnel_svg(row: dict[str, Any]) -> str:
    """Stages as descending bars, each with its share of the messages; then the exits in another
    colour; human opens beside opens when some opens were machine opens."""
    total = max(int(row["messages"]), 1)
    width, bar, gap, label = 560, 24, 8, 120
    room = width - label - 170
    stages = dict(STAGES)
    if int(row["viewed_human"]) < int(row["viewed"]):
        stages = {**{k: v for k, v in STAGES.items() if k != "clicked"}, "viewed_human": "opened by people"}
        stages["clicked"] = STAGES["clicked"]
    items, y = [], 0
    for name, title in (*stages.items(), *EXITS.items()):
        value = int(row[name])
        if name == next(iter(EXITS)):
            y += 14
            items.append(f"<text class=section x='0' y='{y}'>exits</text>")
            y += 6
        length = round(room * value / total) if value else 0
        color = HUMAN_COLOR if name == "viewed_human" else "#2b6cb0" if name in stages else "#c05621"
        share = f" ({value / total:.0%} of messages)" if name != "messages" else ""
        items.append(
            f"<text x='0' y='{y + 16}'>{title}</text>"
            f"<rect class=bar x='{label}' y='{y}' width='{max(length, 1)}' height='{bar}' fill='{color}'>"
            f"<title>{title}: {value:,}</title></rect>"
            f"<text x='{label + length + 6}' y='{y + 16}'>{value:,}{share}</text>"
        )
        y += bar + gap
    return _svg("funnel", width, y, items)


def _cohort_svg(per_day: pl.DataFrame) -> str:
    """Messages, opened and clicked by send date; the date axis is proportional to time (a gap of
    days shows as a gap)."""
    if per_day.is_empty():
        return "<p class=meta>No messages.</p>"
    days: list[date] = per_day["send_date"].to_list()
    span = max((days[-1] - days[0]).days, 1)
    width, height, left, bottom, top_pad = 640, 200, 56, 28, 16
    series = dict(COHORT)
    if bool((per_day["viewed_human"] < per_day["viewed"]).any()):
        series["viewed_human"] = HUMAN_COLOR
    peak = max(1, *(int(v) for name in series for v in per_day[name].to_list()))
    plot_w, plot_h = width - left - 16, height - bottom - top_pad

    def x(day: date) -> float:
        return left + (plot_w * (day - days[0]).days / span if len(days) > 1 else plot_w / 2)

    def y(v: int) -> float:
        return top_pad + plot_h * (1 - v / peak)

    parts = [
        f"<line class=axis x1='{left}' y1='{y(0):.1f}' x2='{width - 16}' y2='{y(0):.1f}'/>",
        f"<text x='{left - 6}' y='{y(peak) + 4:.1f}' text-anchor='end'>{peak:,}</text>",
        f"<text x='{left - 6}' y='{y(0) + 4:.1f}' text-anchor='end'>0</text>",
    ]
    for day in _axis_days(days):
        anchor = (
            "start" if day == days[0] and len(days) > 1 else "end" if day == days[-1] and len(days) > 1 else "middle"
        )
        parts.append(f"<text x='{x(day):.1f}' y='{height - 8}' text-anchor='{anchor}'>{day}</text>")
    names = {"messages": "messages", "viewed": "opened", "clicked": "clicked", "viewed_human": "opened by people"}
    for index, (name, color) in enumerate(series.items()):
        values = [int(v) for v in per_day[name].to_list()]
        for run in _consecutive(list(zip(days, values, strict=True))):  # a gap of days breaks the line
            points = " ".join(f"{x(d):.1f},{y(v):.1f}" for d, v in run)
            parts.append(f"<polyline class=line points='{points}' fill='none' stroke='{color}' stroke-width='2'/>")
        parts += [
            f"<circle cx='{x(d):.1f}' cy='{y(v):.1f}' r='3' fill='{color}'>"
            f"<title>sent {d}: {v:,} {names[name]}</title></circle>"
            for d, v in zip(days, values, strict=True)
        ]
        parts.append(
            f"<rect x='{left + 8 + index * 120}' y='2' width='10' height='10' fill='{color}'/>"
            f"<text x='{left + 22 + index * 120}' y='11'>{names[name]}</text>"
        )
    return _svg("trend", width, height, parts)


def _consecutive(points: list[tuple[date, int]]) -> list[list[tuple[date, int]]]:
    """The points in runs of consecutive days."""
    runs: list[list[tuple[date, int]]] = []
    for point in points:
        if runs and (point[0] - runs[-1][-1][0]).days == 1:
            runs[-1].append(point)
        else:
            runs.append([point])
    return runs


def _axis_days(days: list[date]) -> list[date]:
    """The dates labelled on the axis: all of a few, else the first and the last."""
    return days if len(days) <= 6 else [days[0], days[-1]]


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
    return tables.NO_CAMPAIGN if campaign is None else html.escape(str(campaign))


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

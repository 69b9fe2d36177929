"""A self-contained HTML funnel report (inline SVG, no scripts from the network)."""

from __future__ import annotations

import html
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from etl import metrics as tables

STAGES = ("sent", "delivered", "viewed", "clicked")
EXITS = ("soft_bounced", "hard_bounced", "unsubscribed", "marked_as_spam")
RATE_DEFINITIONS = {
    "delivery_rate": "delivered / sent",
    "open_rate": "unique viewers / delivered base",
    "click_rate": "unique clickers / delivered base",
    "click_to_open_rate": "unique clickers / unique viewers",
    "bounce_rate": "(soft + hard bounces) / sent",
    "unsubscribe_rate": "unique unsubscribers / delivered base",
    "spam_rate": "unique spam reporters / delivered base",
}


def render_report(warehouse: Path) -> str:
    lifetime = tables.lifetime(warehouse).sort("sent", descending=True)
    quarantine = tables.quarantine(warehouse)
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        f"<h1>Campaign funnels</h1><p class=meta>{lifetime.height} campaigns · "
        f"{tables.event_count(warehouse):,} events · generated {generated}</p>",
        _overview(lifetime),
        *(_campaign(row) for row in lifetime.iter_rows(named=True)),
        _quarantine(quarantine),
    ]
    return _PAGE.format(body="\n".join(parts))


def write_report(warehouse: Path, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_report(warehouse), encoding="utf-8")
    return out


def _overview(lifetime: pl.DataFrame) -> str:
    head = "".join(f"<th>{h}</th>" for h in ("campaign", "sent", "delivered", "open", "click", "bounce", "flags"))
    rows = []
    for row in lifetime.iter_rows(named=True):
        rows.append(
            "<tr>"
            f"<td><a href='#c-{_anchor(row['campaign_id'])}'>{_name(row['campaign_id'])}</a></td>"
            f"<td>{row['sent']:,}</td><td>{row['delivered']:,}</td>"
            f"<td>{_pct(row['open_rate'])}</td><td>{_pct(row['click_rate'])}</td><td>{_pct(row['bounce_rate'])}</td>"
            f"<td>{'delivery estimated' if row['delivered_estimated'] else ''}</td></tr>"
        )
    return f"<h2>All campaigns</h2><table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _campaign(row: dict[str, object]) -> str:
    rates = "".join(
        f"<tr><td>{name.replace('_', ' ')}</td><td>{_pct(row[name])}</td><td class=def>{definition}</td></tr>"
        for name, definition in RATE_DEFINITIONS.items()
    )
    note = (
        "<p class=note>No Delivered events: the delivered base is estimated as sent minus bounces.</p>"
        if row["delivered_estimated"]
        else ""
    )
    return (
        f"<section id='c-{_anchor(row['campaign_id'])}'><h2>Campaign {_name(row['campaign_id'])}</h2>"
        f"{_funnel_svg(row)}{note}<table class=rates>{rates}</table></section>"
    )


def _funnel_svg(row: dict[str, object]) -> str:
    bars = [(name, int(row[name])) for name in (*STAGES, *EXITS)]  # type: ignore[call-overload]
    top = max([value for _, value in bars] + [1])
    width, bar_height, label_width = 640, 22, 130
    items = []
    for index, (name, value) in enumerate(bars):
        y = index * (bar_height + 6)
        length = max(1, round((width - label_width - 80) * value / top)) if value else 0
        color = "#2b6cb0" if name in STAGES else "#c05621"
        items.append(
            f"<text x='0' y='{y + 16}'>{name.replace('_', ' ')}</text>"
            f"<rect class=bar x='{label_width}' y='{y}' width='{length}' height='{bar_height}' fill='{color}'/>"
            f"<text x='{label_width + length + 6}' y='{y + 16}'>{value:,}</text>"
        )
    height = len(bars) * (bar_height + 6)
    return f"<svg class=funnel width='{width}' height='{height}' role='img'>{''.join(items)}</svg>"


def _quarantine(quarantine: pl.DataFrame) -> str:
    if quarantine.is_empty():
        return "<h2>Quarantine</h2><p>No records were rejected.</p>"
    counts = quarantine.group_by("reason").agg(pl.len().alias("n")).sort("n", descending=True)
    rows = "".join(f"<tr><td>{html.escape(r)}</td><td>{n:,}</td></tr>" for r, n in counts.iter_rows())
    examples = "".join(
        f"<tr><td>{html.escape(f)}</td><td>{html.escape(p)}</td><td>{html.escape(r)}</td><td>{html.escape(d)}</td></tr>"
        for f, p, r, d in quarantine.select("source_file", "position", "reason", "detail").head(20).iter_rows()
    )
    return (
        f"<h2>Quarantine</h2><table><tr><th>reason</th><th>records</th></tr>{rows}</table>"
        f"<h3>Examples</h3><table><tr><th>file</th><th>position</th><th>reason</th><th>detail</th></tr>{examples}</table>"
    )


def _pct(value: object) -> str:
    return "—" if value is None else f"{float(value):.1%}"  # type: ignore[arg-type]


def _name(campaign: object) -> str:
    return "(no campaign)" if campaign is None else html.escape(str(campaign))


def _anchor(campaign: object) -> str:
    return "none" if campaign is None else "".join(ch if ch.isalnum() else "-" for ch in str(campaign))


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Campaign funnels</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #1a202c; }}
table {{ border-collapse: collapse; margin: .5rem 0 1.5rem; }}
th, td {{ padding: .25rem .6rem; border-bottom: 1px solid #e2e8f0; text-align: left; }}
.meta, .def {{ color: #718096; }} .note {{ color: #c05621; }}
svg text {{ font-size: 12px; fill: #2d3748; }}
section {{ border-top: 2px solid #e2e8f0; margin-top: 1.5rem; }}
</style></head><body>
{body}
</body></html>
"""

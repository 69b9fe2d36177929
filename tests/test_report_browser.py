"""The HTML report rendered in a real browser (headless Chromium): charts drawn, no console errors.

The report is made as a user makes it, with `etl run` and `etl report` (in this process). The two tests that
start Chromium (about a second each, and a browser installed) are marked heavy: `make test-fast` leaves them out.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.cli import invoke

GOLDEN_LANDING = Path(__file__).parent / "fixtures" / "golden_landing"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]

PROBE = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(String(e.message)));
['error', 'warn'].forEach(level => {
  const original = console[level];
  console[level] = (...args) => { window.__errors.push(args.join(' ')); original.apply(console, args); };
});
window.addEventListener('load', () => {
  const box = el => { const r = el.getBoundingClientRect(); return [r.width, r.height]; };
  const result = {
    svgs: [...document.querySelectorAll('svg')].map(s => [s.getAttribute('class'), ...box(s)]),
    bars: [...document.querySelectorAll('svg.funnel rect.bar')].map(r => box(r)[0]),
    lines: [...document.querySelectorAll('svg.trend polyline')].map(p => p.getBBox().width),
    points: document.querySelectorAll('svg.trend circle').length,
    campaigns: [...document.querySelectorAll('section.campaign h2')].map(h => h.textContent),
    errors: window.__errors,
  };
  const pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = JSON.stringify(result);
  document.body.appendChild(pre);
});
</script>"""


def browser() -> str:
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is not installed: .ci/run installs it with apt-get")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    return CHROMIUM


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("report")
    shutil.copytree(GOLDEN_LANDING, root / "landing")
    ran = invoke("run", "--landing", str(root / "landing"), "--warehouse", str(root / "wh"), "-q")
    assert ran.exit_code == 0, ran.stderr
    written = invoke("report", "--warehouse", str(root / "wh"), "--out", str(root / "report.html"))
    assert written.exit_code == 0, written.stderr
    return root / "report.html"


@pytest.mark.heavy
def test_report_draws_its_charts_without_console_errors(report: Path, tmp_path: Path) -> None:
    probed = tmp_path / "probed.html"
    probed.write_text(report.read_text().replace("<head>", "<head>" + PROBE, 1))
    done = subprocess.run(
        [browser(), *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
         "--virtual-time-budget=3000", "--dump-dom", probed.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    match = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, re.S)
    assert match, f"the page did not finish loading: {done.stderr[-2000:]}"
    result = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert result["errors"] == []
    assert not [line for line in done.stderr.splitlines() if ":CONSOLE(" in line]
    assert result["campaigns"] == ["Campaign A", "Campaign B", "Campaign (no campaign)"]
    funnels = [s for s in result["svgs"] if s[0] == "funnel"]
    trends = [s for s in result["svgs"] if s[0] == "trend"]
    assert len(funnels) == 3 and len(trends) == 4  # one trend for all campaigns, one per campaign
    assert all(width > 100 and height > 100 for _, width, height in funnels + trends)
    assert len(result["bars"]) == 3 * 7 and max(result["bars"]) > 100  # 4 stages and 3 exits each
    assert all(width > 0 for width in result["lines"][:3])  # the all-campaign lines span two days
    assert result["points"] > 0


@pytest.mark.heavy
def test_report_screenshot(report: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    subprocess.run(
        [browser(), *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1100,1600",
         f"--screenshot={shot}", report.as_uri()],
        capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert shot.is_file() and shot.stat().st_size > 20_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_is_self_contained(report: Path) -> None:
    page = report.read_text()
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert "<link" not in page and "@import" not in page and "url(" not in page

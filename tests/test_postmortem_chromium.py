"""The HTML post-mortem in headless Chromium: it renders without a console error, with its SVG."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from interfaces.postmortem import build_postmortem, render_html
from state import IncidentReport
from tests.memory.factory import cascade_state

pytestmark = pytest.mark.chromium

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: Flags that keep headless Chromium off the network and away from the user's profile.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--enable-logging=stderr",
    "--v=0",
]
#: How Chromium logs a page's console messages (errors, CSP violations) on stderr.
CONSOLE = re.compile(r":CONSOLE[:(]")


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    if CHROMIUM is None:
        pytest.skip("headless Chromium is not installed (apt-get install -y chromium)")
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def test_html_post_mortem_renders_in_chromium(tmp_path: Path) -> None:
    page = tmp_path / "postmortem.html"
    page.write_text(render_html(build_postmortem(IncidentReport.from_state(cascade_state()))))

    dom = _chromium(tmp_path, "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [line for line in dom.stderr.splitlines() if CONSOLE.search(line)]
    assert console == []
    # The browser built both drawings, with the failing path and the root cause marked.
    assert '<svg id="service-graph"' in dom.stdout
    assert '<svg id="timeline"' in dom.stdout
    assert dom.stdout.count('class="edge failing"') == 4
    assert "root-cause" in dom.stdout
    # The hostile log line stayed text: no element came of it.
    assert "<script" not in dom.stdout
    assert "&lt;script&gt;alert(1)" in dom.stdout

    shot = tmp_path / "postmortem.png"
    run = _chromium(tmp_path, "--window-size=1200,1800", f"--screenshot={shot}", page.as_uri())
    assert run.returncode == 0, run.stderr[-2000:]
    assert [line for line in run.stderr.splitlines() if CONSOLE.search(line)] == []
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 20_000  # a rendered page, not a blank one

"""report.html opened in headless Chromium: the tables and every image render (skipped without chromium)."""
from __future__ import annotations

import html
import json
import re
import shutil
import subprocess

import pytest

from rtbench.report import document, write_report
from rtbench.report.blocks import Image, Table
from rtbench.report.i18n import translator
from rtbench.report.synthetic import build_run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (CI installs it via .ci/run)")

# Added to a test copy only: after load, write what the browser sees into the DOM for --dump-dom.
PROBE = """<script>
window.addEventListener('load', () => {
  const imgs = [...document.images].map(i => ({src: i.src.slice(0, 22), w: i.naturalWidth, h: i.naturalHeight}));
  const rows = [...document.querySelectorAll('table tbody tr')].map(r => r.cells.length);
  const out = document.createElement('pre');
  out.id = 'rtbench-probe';
  out.textContent = JSON.stringify({imgs, rows, title: document.title});
  document.body.appendChild(out);
});
</script>"""


def chromium(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                           *args], capture_output=True, text=True, timeout=180)


def test_html_renders_tables_and_every_image_in_chromium(tmp_path):
    run = build_run(tmp_path, run_id="html", precisions=("fp32", "fp16"), sizes=(224, 384), batches=(1, 8), n=30,
                    overrides={("onnxruntime", "fp16", 384, 8): ("oom", "out of memory")})
    page = write_report(run, formats="html")
    blocks = document.build(run, run.to_pandas(), translator("en"))
    n_images = sum(isinstance(b, Image) for b in blocks)
    table_rows = [len(b.header) for b in blocks if isinstance(b, Table) for _ in b.rows]
    assert n_images == 18
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    r = chromium("--virtual-time-budget=10000", "--dump-dom", probe.as_uri())
    m = re.search(r'<pre id="rtbench-probe">(.*?)</pre>', r.stdout, re.S)
    assert m, f"no probe output; chromium said: {r.stderr[-2000:]}"
    seen = json.loads(html.unescape(m.group(1)))
    assert seen["title"] == "rtbench report — resnet18 on cpu"
    assert len(seen["imgs"]) == n_images
    for img in seen["imgs"]:
        assert img["src"] == "data:image/png;base64," and img["w"] > 300 and img["h"] > 200, img
    assert seen["rows"] == table_rows  # every table row, with every cell, in order
    shot = tmp_path / "shot.png"
    r = chromium("--window-size=1300,2400", f"--screenshot={shot}", page.as_uri())
    assert shot.exists() and shot.stat().st_size > 50_000, r.stderr[-2000:]

"""The report from a synthetic store (real SQLite, fixed seeded samples): golden Markdown, files, exports, CLI."""
from __future__ import annotations

import csv
import json
import os
import string
import types
from pathlib import Path

import pytest

from rtbench.report import document, write_report
from rtbench.report.html import to_html
from rtbench.report.i18n import LANGS, MESSAGES, translator
from rtbench.report.markdown import to_markdown
from rtbench.report.synthetic import build_run
from rtbench.results import Run

GOLDEN = Path(__file__).parent / "golden" / "report_synthetic.md"
UPDATE = os.environ.get("RTBENCH_UPDATE_GOLDEN") == "1"
OVERRIDES = {("onnxruntime", "fp32", 384, 8): ("oom", "CUDA out of memory | tried to allocate 2 GiB"),
             ("torch-compile", "fp32", 224, 1): ("mismatch", "max abs 0.5 > tol 1e-4")}


def small_run(out: Path, run_id: str = "golden-run") -> Run:
    return build_run(out, run_id=run_id, sizes=(224, 384), batches=(1, 8), n=40, overrides=OVERRIDES)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    out = tmp_path_factory.mktemp("store")
    run = small_run(out)
    path = write_report(run, formats="md,html,csv,json")
    return run, path.parent


@pytest.fixture
def no_warnings_module(monkeypatch):
    """Renders as if no fairness check fired (the golden file then does not depend on those checks)."""
    monkeypatch.setattr("rtbench.fairness.fairness_warnings", lambda run, df=None: [])


def test_markdown_matches_golden(rendered, no_warnings_module):
    run, d = rendered
    text = to_markdown(document.build(run, run.to_pandas(), translator("en")))
    if UPDATE:
        GOLDEN.write_text(text, encoding="utf-8")
    assert text == GOLDEN.read_text(encoding="utf-8"), "set RTBENCH_UPDATE_GOLDEN=1 to regenerate after a wanted change"


def test_report_files_and_every_image(rendered):
    run, d = rendered
    md = (d / "report.md").read_text(encoding="utf-8")
    links = [line[line.index("](") + 2:-1] for line in md.splitlines() if line.startswith("![")]
    assert len(links) == 9  # the seed's six and three more for the one precision
    for link in links:
        data = (d / link).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert sorted(p.name for p in (d / "images").iterdir()) == sorted(Path(x).name for x in links)
    assert "| onnxruntime | fp32 | 384 | 8 | oom | CUDA out of memory \\| tried to allocate 2 GiB |" in md
    html = (d / "report.html").read_text(encoding="utf-8")
    assert html.count('src="data:image/png;base64,') == 9
    assert "http://" not in html and "https://" not in html and "<script" not in html


def test_csv_and_json_exports_have_every_cell_and_statistic(rendered):
    run, d = rendered
    df = run.to_pandas()
    with open(d / "cells.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(df) == 12
    assert list(rows[0]) == [c for c in df.columns if c != "samples_ms"]
    first = df.iloc[0]
    assert float(rows[0]["ms"]) == pytest.approx(first["ms"])
    doc = json.loads((d / "cells.json").read_text(encoding="utf-8"))
    assert doc["run"]["id"] == run.id and doc["run"]["sweep"]["sizes"] == [224, 384]
    assert set(doc["cells"][0]) == set(df.columns)
    assert doc["cells"][0]["samples_ms"] == pytest.approx(list(first["samples_ms"]))
    oom = next(c for c in doc["cells"] if c["status"] == "oom")
    assert oom["ms"] is None and oom["reason"].startswith("CUDA out of memory")


def test_russian_report(rendered):
    run, d = rendered
    path = write_report(run, lang="ru", formats="md", out_dir=d / "ru")
    md = path.read_text(encoding="utf-8")
    for heading in ("## Методология", "## Результаты", "## Графики", "## Выводы", "#### Какой подход лучше?",
                    "#### Влияние batch size", "#### Влияние размера изображения", "## Неизмеренные ячейки"):
        assert heading in md
    assert "Method" not in md and "Conclusions" not in md


def test_every_message_has_every_language_with_the_same_placeholders():
    fmt = string.Formatter()
    for key, langs in MESSAGES.items():
        assert set(langs) == set(LANGS), key
        fields = [{f for _, f, _, _ in fmt.parse(langs[lang]) if f} for lang in LANGS]
        assert all(f == fields[0] for f in fields), key


def test_telemetry_columns_are_shown_when_present(rendered, no_warnings_module):
    run, _d = rendered
    df = run.to_pandas()
    assert df["power_w"].isna().all()  # a CPU store has no telemetry
    md = to_markdown(document.build(run, df, translator("en"), plots=False))
    assert "## Telemetry" not in md
    df["power_w"], df["joules_per_image"], df["sm_clock_mhz"] = 61.25, 0.1234, 1410.0
    md = to_markdown(document.build(run, df, translator("en"), plots=False))
    assert "## Telemetry" in md and "| Runtime | Precision | Size | Batch | Power W | J/image | SM clock MHz |" in md
    assert "| torch | fp32 | 224x224 | 1 | 61.2 | 0.123 | 1410 |" in md


def test_fairness_warnings_section_lists_each_warning_escaped(rendered, monkeypatch):
    run, _d = rendered
    seen = {}

    def fairness_warnings(r, df):
        seen["args"] = (r.id, len(df))
        return [types.SimpleNamespace(code="threads-differ", message="onnxruntime ran with 4 threads <b>",
                                      fix="pass --threads 2")]

    monkeypatch.setattr("rtbench.fairness.fairness_warnings", fairness_warnings)
    blocks = document.build(run, run.to_pandas(), translator("en"), plots=False)
    md = to_markdown(blocks)
    assert seen["args"] == (run.id, 12)
    assert "## Fairness warnings\n\n- **threads-differ**: onnxruntime ran with 4 threads <b> — Fix: pass --threads 2" in md
    html = to_html(blocks)
    assert "<strong>threads-differ</strong>: onnxruntime ran with 4 threads &lt;b&gt;" in html


def test_html_escapes_every_stored_string(tmp_path, no_warnings_module):
    run = build_run(tmp_path, run_id="x", runtimes=("torch",), sizes=(224,), batches=(1, 2), n=20,
                    overrides={("torch", "fp32", 224, 2): ("failed", "<script>alert(1)</script> & **x**")})
    html = (write_report(run, formats="html")).read_text(encoding="utf-8")
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; <strong>x</strong>" in html


def test_single_size_single_batch_and_empty_runs(tmp_path, no_warnings_module):
    run = build_run(tmp_path, run_id="one", runtimes=("torch", "onnxruntime"), sizes=(224,), batches=(1,), n=20)
    md = write_report(run).read_text(encoding="utf-8")
    assert "Not drawn (one value only or no data): fps_vs_size, fps_vs_batch, time_per_image" in md
    assert [line.split("_compute_")[1] for line in md.splitlines() if line.startswith("![")] == [
        "utilisation.png)", "latency_distribution.png)", "speedup_heatmap.png)"]
    assert "Only one input size was measured." in md and "larger batches" not in md
    failed = build_run(tmp_path, run_id="all-failed", runtimes=("torch",), sizes=(224,), batches=(1,),
                       overrides={("torch", "fp32", 224, 1): ("failed", "RuntimeError: boom")})
    md = write_report(failed).read_text(encoding="utf-8")
    assert "| torch | fp32 | 224 | 1 | failed | RuntimeError: boom |" in md and "![" not in md


def test_cli_report_formats_and_language(tmp_path, cli):
    small_run(tmp_path, run_id="cli-run")
    r = cli("report", "cli-run", "--out", tmp_path, "--lang", "ru", "--format", "md,csv,json")
    assert r.returncode == 0, r.stderr
    d = tmp_path / "cli-run"
    assert {p.name for p in d.iterdir()} == {"report.md", "cells.csv", "cells.json", "images"}
    assert "## Методология" in (d / "report.md").read_text(encoding="utf-8")
    for args, fix in ((("--lang", "de"), "use one of en, ru"), (("--format", "md,pdf"), "e.g. --format md,html")):
        r = cli("report", "cli-run", "--out", tmp_path, *args)
        assert r.returncode == 2 and fix in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = cli("report", "nope", "--out", tmp_path)
    assert r.returncode == 2 and "unknown run id" in r.stderr


@pytest.mark.slow
def test_rtbench_run_writes_the_report(tmp_path, cli):
    r = cli("run", "--runtimes", "torch,onnxruntime", "--sizes", "32", "--batches", "1,2", "--device", "cpu",
            "--budget", "12", "--rounds", "2", "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    (run_dir,) = [p.parent for p in tmp_path.glob("*/report.md")]
    md = (run_dir / "report.md").read_text(encoding="utf-8")
    assert "| 32x32 | 2 |" in md and "#### Which runtime is faster?" in md
    assert (run_dir / "report.html").stat().st_size > 10_000 and any((run_dir / "images").iterdir())

"""Each plot function draws the expected series from the data (checked on the Figure before saving)."""
from __future__ import annotations

import numpy as np
import pytest

from rtbench.report import plots
from rtbench.report.i18n import translator
from rtbench.report.synthetic import build_run

_ = translator("en")
RTS = ["torch", "onnxruntime", "torch-compile"]


@pytest.fixture(scope="module")
def df(tmp_path_factory):
    run = build_run(tmp_path_factory.mktemp("plots"), sizes=(224, 384), batches=(1, 4, 8), n=30,
                    overrides={("onnxruntime", "fp32", 384, 1): ("failed", "boom")})
    return run.to_pandas()


def legend(ax) -> list[str]:
    return ax.get_legend_handles_labels()[1]


def series(ax) -> dict[str, tuple[list, list]]:
    """label -> (x, y) of each error-bar container."""
    out = {}
    for cont in ax.containers:
        line = cont.lines[0]
        out[cont.get_label()] = (list(line.get_xdata()), list(line.get_ydata()))
    return out


def expected(df, fix: str, value, x: str, y: str, runtime: str):
    g = df[(df[fix] == value) & (df["runtime"] == runtime) & df["status"].isin(("ok", "mismatch"))].sort_values(x)
    return list(g[x]), list(g[y])


def test_fps_vs_size_has_one_series_per_runtime_at_the_smallest_batch(df):
    fig = plots.fps_vs_size(df, RTS, _)
    ax = fig.axes[0]
    assert legend(ax) == RTS and ax.get_title() == "FPS vs input size (batch 1)"
    got = series(ax)
    for rt in RTS:
        x, y = expected(df, "batch", 1, "size", "fps", rt)
        assert got[rt][0] == x and np.allclose(got[rt][1], y)
    assert got["onnxruntime"][0] == [224]  # the failed cell is left out, not drawn as zero
    assert len(plots.png(fig)) > 5000


def test_fps_and_time_per_image_vs_batch(df):
    ax = plots.fps_vs_batch(df, RTS, _).axes[0]
    x, y = expected(df, "size", 224, "batch", "fps", "torch")
    assert series(ax)["torch"][0] == x == [1, 4, 8] and np.allclose(series(ax)["torch"][1], y)
    ax = plots.time_per_image(df, RTS, _).axes[0]
    x, y = expected(df, "size", 224, "batch", "ms_per_image", "onnxruntime")
    assert np.allclose(series(ax)["onnxruntime"][1], y) and ax.get_ylabel() == "ms per image"


def test_speedup_plots_leave_out_the_baseline_and_draw_the_parity_line(df):
    for fn in (plots.speedup_vs_size, plots.speedup_vs_batch):
        ax = fn(df, RTS, _).axes[0]
        assert legend(ax) == ["onnxruntime", "torch-compile"]
        assert any(list(line.get_ydata()) == [1.0, 1.0] for line in ax.lines)
    ax = plots.speedup_vs_batch(df, RTS, _).axes[0]
    x, y = expected(df, "size", 224, "batch", "speedup", "onnxruntime")
    assert np.allclose(series(ax)["onnxruntime"][1], y)


def test_utilisation_has_a_size_and_a_batch_panel(df):
    fig = plots.utilisation(df, RTS, _)
    by_size, by_batch = fig.axes[:2]
    assert fig.get_suptitle() == "Utilisation (load %, measured peak)"
    assert series(by_size)["torch"][0] == [224, 384] and series(by_batch)["torch"][0] == [1, 4, 8]
    _x, y = expected(df, "batch", 1, "size", "load_measured_pct", "torch")
    assert np.allclose(series(by_size)["torch"][1], y)
    assert plots.utilisation(df.assign(load_measured_pct=np.nan), RTS, _) is None


def test_latency_distribution_boxes_every_sample_of_one_cell(df):
    ax = plots.latency_distribution(df, RTS, _).axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == RTS
    assert ax.get_title() == "Latency distribution (224×224, batch 1)"
    torch = df[(df["runtime"] == "torch") & (df["size"] == 224) & (df["batch"] == 1)].iloc[0]["samples_ms"]
    flat = [float(line.get_ydata()[0]) for line in ax.lines if len(set(line.get_ydata())) == 1]
    assert any(np.isclose(m, np.median(torch)) for m in flat)  # torch's median line


def test_speedup_heatmap_panels_and_blank_missing_cells(df):
    fig = plots.speedup_heatmap(df, RTS, _)
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["onnxruntime", "torch-compile"]
    grid = panels[0].images[0].get_array()
    assert grid.shape == (2, 3) and grid.mask[1, 0]  # onnxruntime 384 px batch 1 failed
    want = df[(df["runtime"] == "onnxruntime") & (df["size"] == 224) & (df["batch"] == 4)].iloc[0]["speedup"]
    assert grid[0, 1] == pytest.approx(want)


def test_throughput_vs_latency_points_are_batches(df):
    ax = plots.throughput_latency(df, RTS, _).axes[0]
    x, y = expected(df, "size", 224, "batch", "ms", "torch")
    assert np.allclose(series(ax)["torch"][0], y)
    assert {t.get_text() for t in ax.texts} == {"1", "4", "8"}


def test_single_value_axes_are_skipped_not_drawn_empty(df):
    one = df[(df["size"] == 224) & (df["batch"] == 1)]
    figs, skipped = plots.plot_group(one, RTS, _)
    assert skipped == ["fps_vs_size", "fps_vs_batch", "time_per_image", "speedup_vs_size", "speedup_vs_batch",
                       "throughput_latency"]
    assert sorted(figs) == ["latency_distribution", "speedup_heatmap", "utilisation"]
    no_torch = df[df["runtime"] != "torch"].drop(columns=["speedup", "speedup_low", "speedup_high"])
    figs, skipped = plots.plot_group(no_torch, RTS, _)
    assert {"speedup_vs_size", "speedup_vs_batch", "speedup_heatmap"} <= set(skipped)
    assert "fps_vs_size" in figs


def test_a_runtime_keeps_its_colour_in_every_plot(df):
    def colours(ax):
        return {c.get_label(): c.lines[0].get_color() for c in ax.containers}

    fps = colours(plots.fps_vs_size(df, RTS, _).axes[0])
    up = colours(plots.speedup_vs_size(df, RTS, _).axes[0])
    assert len(set(fps.values())) == 3 and up == {rt: fps[rt] for rt in ("onnxruntime", "torch-compile")}

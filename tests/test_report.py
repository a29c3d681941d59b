"""`mer report` on a finished tiny sweep (the Ray sweep of tests/conftest.py's `finished_sweep`)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mer.cli import main
from mer.metrics import megc_scores
from mer.report import ablation_table, load_run, write_report
from mer.report.plots import DPI, SIZE

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def report(finished_sweep, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    written = write_report(finished_sweep["out"], out=out)
    return {"run": finished_sweep["out"], "out": out, "written": written}


def test_writes_every_format_and_figure(report):
    w = report["written"]
    for key in ("csv", "md", "html", "latex"):
        assert w[key].exists() and w[key].stat().st_size > 0
    pngs = {k for k in w if k.startswith("png:")}
    run = load_run(report["run"])
    expected = {"png:variants"} | {
        f"png:{kind}_{v}" for v in run.variants for kind in ("confusion", "subjects", "curves")
    }
    assert expected <= pngs


def test_every_image_is_a_non_blank_png_of_the_intended_size(report):
    size = (int(SIZE[0] * DPI), int(SIZE[1] * DPI))
    for key, path in report["written"].items():
        if not key.startswith("png:"):
            continue
        with Image.open(path) as img:
            assert img.format == "PNG", key
            assert img.size == size, (key, img.size)
            pixels = np.asarray(img.convert("L"), dtype=float)
        assert pixels.std() > 5, f"{key} looks blank"


def _recomputed(run_dir: Path) -> pd.DataFrame:
    frames = []
    for path in sorted((run_dir / "trials").glob("*/*/*/predictions.csv")):
        variant, seed = path.parts[-4], int(path.parts[-3])
        frames.append(pd.read_csv(path).assign(variant=variant, seed=seed))
    pred = pd.concat(frames)
    pred = pred[pred["split"] == "test"]
    rows = []
    for (variant, seed), g in pred.groupby(["variant", "seed"]):
        rows.append({"variant": variant, "seed": seed, **megc_scores(g["true"], g["pred"], 3)})
    return pd.DataFrame(rows)


def test_table_equals_pooled_metrics_recomputed_from_prediction_logs(report):
    table = pd.read_csv(report["written"]["csv"])
    again = _recomputed(report["run"])
    for variant, g in again.groupby("variant"):
        row = table[table["variant"] == variant].iloc[0]
        for m in ("uf1", "uar", "acc"):
            assert row[f"{m}_mean"] == pytest.approx(g[m].mean(), abs=1e-12)
            expected_std = g[m].std(ddof=1) if len(g) > 1 else 0.0
            assert row[f"{m}_std"] == pytest.approx(expected_std, abs=1e-12)


def test_incomplete_and_oracle_variants_are_labelled(report, finished_sweep):
    table = ablation_table(load_run(report["run"]))
    failed = table[table["failed"] > 0]
    assert len(failed) and not failed["complete"].any()
    md = report["written"]["md"].read_text()
    assert "INCOMPLETE" in md
    assert table.loc[table["variant"] == "full", "oracle"].item()  # au_oracle regions
    assert "full [oracle]" in md


def test_html_is_self_contained(report):
    html = report["written"]["html"].read_text()
    srcs = re.findall(r'src="([^"]*)"', html)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r'(href|src)="(?!data:)', html)
    assert "<link" not in html and "@import" not in html


def test_cli_prints_table_and_paths(finished_sweep, tmp_path, capsys):
    assert (
        main(["report", str(finished_sweep["out"]), "--out", str(tmp_path), "--format", "md"]) == 0
    )
    text = capsys.readouterr().out
    assert "UF1" in text and str(tmp_path / "report.md") in text
    assert not (tmp_path / "report.html").exists()


def test_missing_folder_is_a_clear_error(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "no such sweep output folder" in capsys.readouterr().err

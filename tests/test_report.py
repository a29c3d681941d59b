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
from mer.report.tables import delta_reference

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
    assert len(again) and set(again["variant"]) <= set(table["variant"])
    for variant, g in again.groupby("variant"):
        row = table[table["variant"] == variant].iloc[0]
        for m in ("uf1", "uar", "acc"):
            assert row[f"{m}_mean"] == pytest.approx(g[m].mean(), abs=1e-12)
            if len(g) > 1:
                assert row[f"{m}_std"] == pytest.approx(g[m].std(ddof=1), abs=1e-12)
            else:  # one seed: no spread, shown without ±
                assert np.isnan(row[f"{m}_std"])


def test_incomplete_and_oracle_variants_are_labelled(report, finished_sweep):
    table = ablation_table(load_run(report["run"]))
    failed = table[table["folds_failed"] > 0]
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


def _table(rows):
    """An ablation table as ablation_table builds it (only the columns rendering reads)."""
    base = {
        "status": "complete",
        "seeds": 1,
        "seeds_scored": 1,
        "folds_done": 2,
        "folds_failed": 0,
        "folds_total": 2,
        "complete": True,
        "params": 1e6,
        "gflops": 0.5,
    }
    table = pd.DataFrame([{**base, **r} for r in rows])
    for m in ("uar", "acc"):
        table[f"{m}_mean"], table[f"{m}_std"] = table["uf1_mean"], table["uf1_std"]
    return table


def test_delta_reference_is_never_an_oracle_row():
    table = _table(
        [
            {"variant": "full", "oracle": True, "uf1_mean": 0.9, "uf1_std": float("nan")},
            {"variant": "regions_all", "oracle": False, "uf1_mean": 0.6, "uf1_std": 0.1},
            {"variant": "single", "oracle": False, "uf1_mean": 0.7, "uf1_std": float("nan")},
        ]
    )
    assert delta_reference(table) == "regions_all"
    table.loc[0, "oracle"] = False
    assert delta_reference(table) == "full"
    table["oracle"] = True
    assert delta_reference(table) is None


def test_rendered_deltas_skip_oracle_rows_and_single_seeds_show_no_spread():
    from mer.report.render import display_table, notes

    table = _table(
        [
            {"variant": "full", "oracle": True, "uf1_mean": 0.9, "uf1_std": float("nan")},
            {"variant": "regions_all", "oracle": False, "uf1_mean": 0.6, "uf1_std": 0.1},
            {"variant": "single", "oracle": False, "uf1_mean": 0.7, "uf1_std": float("nan")},
        ]
    )
    ref = delta_reference(table)
    table["delta_uf1"] = table["uf1_mean"] - 0.6
    table.loc[table["oracle"], "delta_uf1"] = float("nan")
    table.attrs["delta_reference"] = ref
    disp = display_table(table).set_index("variant")
    col = "ΔUF1 vs regions_all"
    assert disp.loc["full [oracle]", col] == "–"
    assert disp.loc["single", col] == "+0.100" and disp.loc["regions_all", col] == "+0.000"
    assert (
        disp.loc["single", "UF1"] == "0.700" and disp.loc["regions_all", "UF1"] == "0.600 ± 0.100"
    )
    assert any("difference to `regions_all`" in line for line in notes("x", table, None, None))


def test_ablation_table_deltas_against_the_label_free_reference(report):
    table = ablation_table(load_run(report["run"]))
    ref = table.attrs["delta_reference"]
    assert not table.loc[table["variant"] == ref, "oracle"].item()
    assert table.loc[table["oracle"], "delta_uf1"].isna().all()
    base = table.loc[table["variant"] == ref, "uf1_mean"].item()
    clean = table[~table["oracle"] & table["uf1_mean"].notna()]
    np.testing.assert_allclose(clean["delta_uf1"], clean["uf1_mean"] - base)

"""The ready W&B workspace of a sweep (mer.sweep.workspace, `mer wandb-view`), checked offline:
its panels, the runs it keeps to, and that every key a panel reads is one the sweep's runs
really log (read back from a finished sweep's offline runs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("wandb_workspaces")

import wandb_workspaces.reports.v2 as wr  # noqa: E402

from mer.cli import main  # noqa: E402
from mer.config import load_config  # noqa: E402
from mer.sweep.payloads import trial_summary  # noqa: E402
from mer.sweep.workspace import build_workspace, curve_metrics, view_spec  # noqa: E402
from tests.support.wandb_offline import offline_runs  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _panels(workspace, kind):
    return [p for s in workspace.sections for p in s.panels if isinstance(p, kind)]


def _accessors(spec: dict) -> list[str]:
    found = []

    def walk(node):  # noqa: ANN001, ANN202
        if isinstance(node, dict):
            if "accessor" in node:
                found.append(node["accessor"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(spec)
    return found


def _without_ids(node):  # noqa: ANN001, ANN202
    if isinstance(node, dict):
        return {k: _without_ids(v) for k, v in node.items() if k != "__id__"}
    if isinstance(node, list):
        return [_without_ids(v) for v in node]
    return node


def test_the_ablation_view_has_the_table_bars_and_curves_of_this_sweep_only():
    cfg = load_config(REPO / "sweeps" / "demo.yaml")
    ws = build_workspace(cfg, entity="lab")
    assert (ws.entity, ws.project, ws.name) == ("lab", "mer-demo", "mer: demo")
    tables = [p.table_name for p in _panels(ws, wr.WeavePanelSummaryTable)]
    assert tables == ["report/ablation_table", "variants_display"]
    bars = _panels(ws, wr.BarPlot)
    assert [b.metrics for b in bars] == [["pooled/uf1"], ["pooled/uar"], ["pooled/acc"]]
    assert all(b.groupby == "Group" for b in bars)  # one bar per variant (group sweep/variant)
    curves = _panels(ws, wr.LinePlot)
    assert [c.y for c in curves] == [["loss"], ["train_acc"]]  # the demo has no validation
    assert all((c.groupby, c.groupby_aggfunc, c.groupby_rangefunc) == ("Group", "mean", "minmax")
               for c in curves)  # fmt: skip
    assert not _panels(ws, wr.ParallelCoordinatesPlot)  # not a search
    spec = view_spec(ws)
    assert spec["displayName"] == "mer: demo" and spec["project"] == "mer-demo"
    (keep,) = spec["spec"]["section"]["runSets"][0]["filters"]["filters"]
    groups = ["demo", *(f"demo/{v}" for v in cfg.ablations)]  # the sweep run, one per variant
    assert (keep["key"], keep["op"], keep["value"]) == ({"section": "run", "name": "group"}, "IN",
                                                        groups)  # fmt: skip
    sections = spec["spec"]["section"]["panelBankConfig"]["sections"]
    assert [len(s["panels"]) for s in sections] == [2, 3, 2]


def test_a_search_view_adds_parallel_coordinates_of_the_searched_keys(tmp_path):
    cfg = load_config(REPO / "sweeps" / "demo_search.yaml")
    (tmp_path / "trials" / "full.c0000").mkdir(parents=True)  # a configuration filed so far
    ws = build_workspace(cfg, out=tmp_path)
    (keep,) = view_spec(ws)["spec"]["section"]["runSets"][0]["filters"]["filters"]
    assert keep["value"] == ["demo-search", "demo-search/full", "demo-search/full.c0000"]
    (pc,) = _panels(ws, wr.ParallelCoordinatesPlot)
    keys = list(cfg.search.space)
    assert [c.display_name for c in pc.columns] == [*keys, "inner-validation UF1"]
    assert _accessors(view_spec(ws)) == [f"summary:search/{k}" for k in keys] + ["summary:val/uf1"]
    assert "val_uf1" in curve_metrics(cfg)  # search folds have validation subjects
    # the axes are what a search trial's run holds (payloads.trial_summary)
    payload = {"val_scores": {"uf1": 0.5}, "test_scores": {"uf1": 0.9}}
    values = trial_summary(payload, cfg, keys)
    assert {f"search/{k}" for k in keys} <= set(values) and values["val/uf1"] == 0.5
    assert values["search/train.lr"] == cfg.train.lr


def test_every_panel_reads_a_key_the_sweep_logs(finished_sweep, tmp_path, capsys):
    out = finished_sweep["out"]
    runs = offline_runs(out)
    history = {k for r in runs for h in r["history"] for k in h}
    summary = {k for r in runs for k in r["summary"]}
    ws = build_workspace(load_config(out / "config.yaml"), out=out)
    for plot in _panels(ws, wr.LinePlot):
        assert set(plot.y) <= history, plot.y
    for bar in _panels(ws, wr.BarPlot):
        assert set(bar.metrics) <= summary, bar.metrics
    for table in _panels(ws, wr.WeavePanelSummaryTable):
        assert any(k.startswith(table.table_name) for k in summary), table.table_name
    (keep,) = view_spec(ws)["spec"]["section"]["runSets"][0]["filters"]["filters"]
    assert {r["group"] for r in runs} <= set(keep["value"])  # the filter keeps every run
    # the command writes the same specification, offline
    spec_file = tmp_path / "view.json"
    assert main(["wandb-view", str(out), "--spec", str(spec_file)]) == 0
    written, built = json.loads(spec_file.read_text()), json.loads(json.dumps(view_spec(ws)))
    assert _without_ids(written) == _without_ids(built)  # panel ids are drawn anew per build
    assert str(spec_file) in capsys.readouterr().out

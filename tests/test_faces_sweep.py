"""End to end: a synthetic CASME II RAW-framed sweep (the head in its surroundings) with
branch A cropped to the face runs on a local Ray, and plan.json, the dry run and the report show
the face coverage."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

from tests.conftest import REPO, tiny_overrides

pytestmark = pytest.mark.slow


def test_raw_framed_sweep_with_face_crop_reports_coverage(tmp_path: Path, capsys) -> None:
    ray = pytest.importorskip("ray")
    from mer.cli.sweep import main
    from mer.config import load_config
    from mer.report import write_report
    from mer.sweep import runner

    overrides = tiny_overrides(tmp_path / "cache") + [
        "data.synthetic.framing=scene",  # CASME II RAW: the face is a small part of the frame
        "data.synthetic.subjects=2",
        "data.synthetic.size=64",
        "data.size=24",
        "data.faces.global=face",
        "ablations={face_all: {data.regions.policy: all}, "
        "face_fixed: {data.regions.policy: fixed, data.faces.boxes: per_clip}}",
        "train.epochs=1",
        "resources={gpu_per_trial: 0, cpu_per_trial: 1, max_concurrent: 2, max_failures: 0}",
    ]
    cfg = load_config(REPO / "sweeps" / "demo.yaml", overrides)
    out = tmp_path / "out"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", str(REPO))  # Ray workers import mer from this checkout
        temp = tempfile.mkdtemp(prefix="mer-ray-")
        ray.init(address="local", num_cpus=2, include_dashboard=False, _temp_dir=temp)
        try:
            status = runner.run_ablation(cfg, runner.RunOptions(out=out, wandb="disabled"))
        finally:
            ray.shutdown()
    assert status == 0
    plan = json.loads((out / "plan.json").read_text())
    keys = {v["data_key"] for v in plan["variants"].values()}
    assert set(plan["faces"]) == keys and len(keys) == 2
    for summary in plan["faces"].values():
        assert summary["measured"] and summary["full"] == summary["clips"] == 10
        assert summary["excluded"] == [] and summary["mean_coverage"] == 1.0
    report = write_report(out)["md"].read_text()
    for key in keys:
        assert f"data {key} (face_" in report
    assert report.count("Face coverage: 10 of 10 clips show the face in all 4 selected") == 2

    # a dry run afterwards knows the coverage from the prepare
    args = [str(REPO / "sweeps" / "demo.yaml"), "--dry-run"]
    for o in overrides:
        args += ["--set", o]
    assert main(args) == 0
    dry = capsys.readouterr().out
    assert dry.count("Face coverage: 10 of 10 clips show the face in all 4 selected frames") == 2

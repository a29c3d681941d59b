"""`mer summary` and model_stats: parameters, FLOPs, output shape and switch differences."""

from __future__ import annotations

import argparse
import textwrap

import pytest

from mer.cli.summary import add_parser
from mer.config import from_dict
from mer.errors import ConfigError
from mer.models.summary import format_table, model_stats, summary_rows


def _paper_forward_flops() -> int:
    """Matmul/conv FLOPs (2 per multiply-add) of the casme2 model on one 30×128×128 clip."""
    conv = lambda outputs, fan_in: 2 * outputs * fan_in  # noqa: E731
    total = conv(30 * 128 * 128 * 32, 3 * 125)  # A1
    total += conv(30 * 128 * 128 * 32, 3 * 27)  # B1
    total += conv(10 * 43 * 43 * 64, 64 * 27)  # M2
    total += conv(4 * 15 * 15 * 64, 2 * 27)  # spatial attention
    total += 2 * 2 * (64 * 8 + 8 * 64)  # channel-attention MLPs
    total += 2 * 4 * (14400 * 128 + 128 * 64)  # per-step Linears, 4 steps
    total += 2 * 4 * (64 + 512) * 3 * 512  # GRU
    total += 2 * 4 * 512 * 3 * 510 + 2 * 510 * 510  # MSMH projections
    total += 2 * (510 * 128 + 128 * 64 + 64 * 3)  # head
    return total


def test_model_stats_paper_model():
    stats = model_stats(from_dict({"model": {"preset": "casme2"}}))
    assert stats["params"] == 3_817_055
    assert stats["output_shape"] == (1, 3)
    # FlopCounterMode also counts MSMH's two small indicator products (< 0.001 %)
    assert stats["gflops"] == pytest.approx(_paper_forward_flops() / 1e9, rel=1e-5)
    assert 18.4 < stats["gflops"] < 18.5  # ≈ 41 GFLOP forward + backward (PERFORMANCE.md)


def test_model_stats_follow_data_shape_and_branches():
    smic = model_stats(from_dict({"model": {"preset": "smic"}, "data": {"frames": {"count": 10}}}))
    assert smic["params"] == 2_836_759
    single = model_stats(from_dict({"model": {"preset": "casme2", "branches": "single"}}))
    full = model_stats(from_dict({"model": {"preset": "casme2"}}))
    branch_b = 2 * 30 * 128 * 128 * 32 * 81 + 2 * 10 * 43 * 43 * 64 * 32 * 27
    assert full["gflops"] - single["gflops"] == pytest.approx(branch_b / 1e9, rel=1e-6)


SWEEP = textwrap.dedent(
    """
    name: ablate
    model: {preset: casme2}
    ablations:
      full: {}
      single_branch: {model.branches: single}
      cbam: {model.attention: cbam}
      smic: {model.preset: smic, data.frames.count: 10}
      ce: {train.loss: ce}
    """
)


def test_summary_rows_and_differences():
    import yaml

    rows = summary_rows(from_dict(yaml.safe_load(SWEEP)))
    assert [r["variant"] for r in rows] == ["full", "single_branch", "cbam", "smic", "ce"]
    assert [r["params"] for r in rows] == [3_817_055, 3_759_135, 3_813_126, 2_836_759, 3_817_055]
    assert rows[0]["differs"] == {}
    assert rows[1]["differs"] == {"model.branches": "single"}
    assert rows[2]["differs"] == {"model.attention": "cbam"}
    assert rows[3]["differs"] == {
        "model.preset": "smic",
        "model.merge_channels": 32,
        "model.attention": "ec_cbam_sum",
        "model.dropout": 0.3,
        "data.frames.count": 10,
    }
    assert rows[4]["differs"] == {"train.loss": "ce"}
    table = format_table(rows)
    assert "branches=single" in table and "data.frames.count=10" in table


def _cli(argv):
    parser = argparse.ArgumentParser(prog="mer")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_summary_command(tmp_path, capsys):
    path = tmp_path / "sweep.yaml"
    path.write_text(SWEEP)
    assert (
        _cli(
            [
                "summary",
                str(path),
                "--set",
                "model.num_classes=5",
                "--set",
                "train.class_weights=null",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "ablate: input 3×30×128×128 (C×T×H×W)"
    assert lines[1].split() == [
        "variant",
        "parameters",
        "GFLOPs",
        "output",
        "differs",
        "from",
        "full",
    ]
    rows = {line.split()[0]: line.split() for line in lines[3:]}
    assert set(rows) == {"full", "single_branch", "cbam", "smic", "ce"}
    assert rows["full"][1] == f"{3_817_055 - 64 * 3 + 64 * 5 - 3 + 5:,}"
    assert rows["full"][3] == "1×5" and rows["full"][4] == "-"
    assert rows["single_branch"][4] == "branches=single"


def test_summary_command_reports_config_errors(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text(SWEEP)
    # the config refuses the combination when it loads, before any model is built
    with pytest.raises(ConfigError) as err:
        _cli(["summary", str(path), "--set", "model.attention_reduction=128"])
    assert str(err.value).startswith(f"{path}: model.attention_reduction: 128 leaves 64 // 128")
    with pytest.raises(ConfigError, match=r"ablations\.cbam: model\.attention_reduction"):
        _cli(["summary", str(path), "--set", "ablations.cbam.model.attention_reduction=128"])
    # what only the build finds (the sequence width) is named with its variant too
    with pytest.raises(ConfigError, match=r"ablations\.cbam: model\.msmh_scales: scale 128"):
        _cli(["summary", str(path), "--set", "ablations.cbam.model.recurrent=none"])

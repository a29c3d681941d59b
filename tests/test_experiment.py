"""The experiment layer without Ray: one results reader, one aggregation, one number formatter.

A demo-sized sweep folder is written with ResultsStore from synthetic predictions (the trial
files the sweep driver writes); then summary.csv, summary.md, the printed table, the report's
Markdown/HTML/LaTeX and the W&B summary payloads are parsed back and must show the same numbers
with the same rounding for every variant and metric.
"""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from mer.cli import main as mer_main
from mer.errors import DataError
from mer.experiment import layout
from mer.experiment.run import load_run
from mer.experiment.store import ResultsStore
from mer.experiment.summary import console_table, write_summary
from mer.report import write_report
from mer.sweep.tracking import display_rows, sweep_tables, variant_summary
from mer.util.files import write_text_atomic
from mer.util.jsonio import dumps, read_json, to_plain
from tests.test_sweep_results import fill

METRICS = {"uf1": "UF1", "uar": "UAR", "acc": "ACC"}


ABLATIONS = {
    "full": {},  # au_oracle regions: [oracle]
    "free": {"data.regions.policy": "fixed"},  # the reference (first label-free variant)
    "mosaic": {"data.regions.policy": "all"},  # compared with free
}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """Three variants x 2 seeds x 5 folds filed, one fold of `free` seed 1 failed; summary and
    report written."""
    out = tmp_path_factory.mktemp("exp")
    plan, _ = fill(out, seed=7, failed_fold=1, ablations=ABLATIONS)
    summary = write_summary(out, plan)
    written = write_report(out)
    return {"out": out, "plan": plan, "summary": summary, "written": written}


def _expected(row: pd.Series, m: str) -> str:
    """`mean ± std [low, high]` at 3 decimals (no ± for one seed, no interval where the row has
    none: per-dataset parts), formatted here independently of mer's formatter."""
    mean, std = row[f"{m}_mean"], row[f"{m}_std"]
    text = f"{mean:.3f}" if np.isnan(std) else f"{mean:.3f} ± {std:.3f}"
    if f"{m}_low" in row and not np.isnan(row[f"{m}_low"]):
        text += f" [{row[f'{m}_low']:.3f}, {row[f'{m}_high']:.3f}]"
    return text


def _expected_delta(row: pd.Series) -> tuple[str, str]:
    """The ΔUF1 cell (`+0.033 [-0.110, +0.190]`) and the paired test's verdict cell."""
    delta = f"{row['uf1_diff']:+.3f} [{row['uf1_diff_low']:+.3f}, {row['uf1_diff_high']:+.3f}]"
    p = row["uf1_p_holm"]
    p_text = "1.0" if p >= 0.995 else f"{p:.2f}" if p >= 0.1 else f"{p:.3g}"
    head = "detectable difference" if row["uf1_detectable"] else "no detectable difference"
    return delta, f"{head} (Holm p = {p_text})"


def _markdown_rows(text: str) -> dict[str, dict[str, str]]:
    """The first pipe table of a Markdown text, by its first cell."""
    lines = text[text.index("\n|") + 1 :].split("\n\n")[0].splitlines()
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    return {r[0]: dict(zip(head, r)) for r in rows}


def _html_rows(text: str) -> dict[str, dict[str, str]]:
    table = text[text.index("<table") : text.index("</table>")]
    head = [html.unescape(h) for h in re.findall(r"<th>(.*?)</th>", table)]
    body = table[table.index("<tbody>") :]
    rows = [
        [html.unescape(c) for c in re.findall(r"<td>(.*?)</td>", tr, re.S)]
        for tr in re.findall(r"<tr>(.*?)</tr>", body, re.S)
    ]
    return {r[0]: dict(zip(head, r)) for r in rows}


def _latex_rows(text: str) -> dict[str, dict[str, str]]:
    plain = {r"$\pm$": "±", r"$\Delta$": "Δ", r"$^\dagger$": "†", "--": "–", r"\_": "_"}

    def cells(line: str) -> list[str]:
        line = line.strip().removesuffix(r"\\").strip()
        for tex, char in plain.items():
            line = line.replace(tex, char)
        return [c.strip() for c in line.split(" & ")]

    lines = text.splitlines()
    head = cells(lines[lines.index(r"\toprule") + 1])
    body = lines[lines.index(r"\midrule") + 1 : lines.index(r"\bottomrule")]
    return {r[0]: dict(zip(head, r)) for r in map(cells, body)}


def test_every_rendering_shows_the_same_numbers(sweep, capsys):
    out, summary = sweep["out"], sweep["summary"]
    csv = pd.read_csv(out / "summary.csv").set_index("variant")
    report_csv = pd.read_csv(sweep["written"]["csv"])
    pd.testing.assert_frame_equal(report_csv.set_index("variant"), csv)  # the same rows
    assert mer_main(["report", str(out), "--out", str(out / "again"), "--format", "md"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(console_table(summary.table))
    renderings = {
        "summary.md": _markdown_rows((out / "summary.md").read_text()),
        "report.md": _markdown_rows(sweep["written"]["md"].read_text()),
        "report.html": _html_rows(sweep["written"]["html"].read_text()),
        "report.tex": _latex_rows(sweep["written"]["latex"].read_text()),
        "W&B variants_display": {
            r["variant"]: r
            for r in sweep_tables(summary.table)["variants_display"].to_dict("records")
        },
    }
    shown = display_rows(summary.table)
    assert csv["folds_failed"].to_dict() == {"full": 0, "free": 1, "mosaic": 0}
    items = {
        "summary.md": (out / "summary.md").read_text().splitlines(),
        "report.md": sweep["written"]["md"].read_text().splitlines(),
        "report.html": [
            html.unescape(li)
            for li in re.findall(r"<li>(.*?)</li>", sweep["written"]["html"].read_text())
        ],
    }
    sentences = {
        k: [li for li in v if " − free (95 % intervals): " in li] for k, v in items.items()
    }
    for variant, row in csv.iterrows():
        name = row["name"]
        assert name == ("full [oracle]" if variant == "full" else variant)
        seeds = [r for r in summary.seeds if r["variant"] == variant]
        payload = variant_summary(
            summary.table.set_index("variant").loc[variant], seeds, shown[variant]
        )
        cells = {head: _expected(row, m) for m, head in METRICS.items()}
        cells |= {f"{ds} UF1": _expected(row, f"{ds}/uf1") for ds in ("casme2", "samm")}
        cells["folds"] = f"{row['folds_done']}/{row['folds_total']}"
        cells["status"] = row["status"]
        # 5 subjects x 4 clips; free's seed 1 lost one subject's fold: its interval (and
        # counts) cover the clips both seeds predicted
        lost = variant == "free"
        cells |= {"clips": "16" if lost else "20", "subjects": "4" if lost else "5"}
        cells["classes"] = "3"
        if variant == "mosaic":
            cells["ΔUF1 vs free"], cells["paired test"] = _expected_delta(row)
        else:  # the reference, and an oracle row that is never compared
            cells["ΔUF1 vs free"] = "reference" if variant == "free" else "–"
            cells["paired test"] = "reference" if variant == "free" else "–"
        for where, rows in renderings.items():
            for head, text in cells.items():
                assert rows[name][head] == text, (where, variant, head)
        for head, text in cells.items():
            assert payload[f"table/{head}"] == text, (variant, head)
        line = next(li for li in printed.splitlines() if li.strip().startswith(name))
        assert all(text in line for text in cells.values()), line
        for m in METRICS:  # W&B's numbers are summary.csv's, to the last bit
            assert payload[f"pooled/{m}"] == row[f"{m}_mean"]
            assert payload[f"pooled/{m}_std"] == row[f"{m}_std"]
            assert payload[f"pooled/{m}_low"] == row[f"{m}_low"]
            assert payload[f"pooled/{m}_high"] == row[f"{m}_high"]
        assert payload["counts/clips"] == row["n_clips"] == int(cells["clips"])
        per_seed = {r["seed"]: r["uf1"] for r in seeds}
        assert payload["pooled/s0/uf1"] == per_seed[0] and payload["status"] == row["status"]
        if variant == "mosaic":
            for key in ("uf1_diff", "uf1_diff_low", "uf1_diff_high", "uf1_p", "uf1_p_holm"):
                assert payload[f"compare/{key}"] == row[key], key
            assert payload["compare/uf1_detectable"] is bool(row["uf1_detectable"])
            assert payload["compare/reference"] == "free"
            delta = cells["ΔUF1 vs free"].split(" [")[0]
            for where, found in sentences.items():  # the same sentence in every rendering
                # (the report has it twice: in the notes and in the variant's section)
                assert len(found) == (1 if where == "summary.md" else 2), where
                want = f"mosaic − free (95 % intervals): UF1 {cells['ΔUF1 vs free']}, "
                assert want + cells["paired test"] in found[0], where
                assert cells["paired test"] in found[0] and delta in found[0], where
        else:
            assert not any(k.startswith("compare/") for k in payload), variant
    texts = {line.split("mosaic − ")[1] for s in sentences.values() for line in s}
    assert len(texts) == 1, texts
    assert csv.loc["mosaic", "reference"] == "free" and np.isnan(csv.loc["full", "uf1_diff"])


def test_intervals_in_summary_csv_recompute_from_predictions_csv(sweep):
    """The intervals are the uncertainty module's on the logged predictions, with the run's
    settings: rebuilt here from predictions.csv, they match summary.csv to the last bit."""
    from mer.experiment.uncertainty import ClipPredictions, bootstrap_intervals, paired_comparison

    out = sweep["out"]
    csv = pd.read_csv(out / "summary.csv").set_index("variant")
    pred = pd.read_csv(out / "predictions.csv").query("split == 'test'")

    def clips(variant, keep=None):
        rows = pred[pred["variant"] == variant]
        if keep is not None:
            rows = rows[rows["sample_id"].isin(keep)]
        return ClipPredictions.from_rows(
            rows["sample_id"], rows["subject"], rows["true"], rows["pred"], rows["seed"], 3,
            name=variant,
        )  # fmt: skip

    mosaic = bootstrap_intervals(clips("mosaic"))
    for m in METRICS:
        assert csv.loc["mosaic", f"{m}_low"] == mosaic.intervals[m].low
        assert csv.loc["mosaic", f"{m}_high"] == mosaic.intervals[m].high
        assert csv.loc["mosaic", f"{m}_mean"] == pytest.approx(mosaic.intervals[m].estimate)
    # free lost a fold under seed 1: its interval is on the clips both seeds predicted
    per_seed = pred[pred["variant"] == "free"].groupby("seed")["sample_id"].apply(set)
    common = set.intersection(*per_seed)
    assert csv.loc["free", "n_clips"] == len(common) == 16
    assert "every seed predicted" in csv.loc["free", "ci_note"]
    free = clips("free", common)
    assert csv.loc["free", "uf1_low"] == bootstrap_intervals(free).intervals["uf1"].low
    comp = paired_comparison(free, clips("mosaic"))  # one comparison: Holm p = p
    assert csv.loc["mosaic", "uf1_diff_low"] == comp.metrics["uf1"].low
    assert csv.loc["mosaic", "uf1_p_holm"] == comp.metrics["uf1"].p
    assert csv.loc["mosaic", "n_compared"] == comp.n_clips == len(common)


def test_summary_counts_failures_and_pools_only_done_folds(sweep):
    out, plan = sweep["out"], sweep["plan"]
    seeds = pd.read_csv(out / "summary_seeds.csv").set_index(["variant", "seed"])
    n = len(plan.variants["free"].folds[1])
    assert seeds.loc[("free", 1), "folds_done"] == n - 1
    assert seeds.loc[("free", 1), "failed_trials"] == plan.trials_of("free", 1)[1].id
    assert not seeds.loc[("free", 1), "complete"] and seeds.loc[("free", 0), "complete"]
    table = pd.read_csv(out / "summary.csv").set_index("variant")
    assert table.loc["free", "status"] == f"INCOMPLETE (folds {2 * n - 1}/{2 * n}, 1 failed)"
    pred = pd.read_csv(out / "predictions.csv")
    assert len(pred) == sum(len(plan.fold(t).test) for t in plan.trials) - len(
        plan.fold(plan.trials_of("free", 1)[1]).test
    )


def _folder(tmp_path, statuses: dict[str, object]) -> ResultsStore:
    """Trial folders whose result.json carry the given status (absent: no `status` key)."""
    for i, (fold, status) in enumerate(statuses.items()):
        folder = tmp_path / "trials" / "full" / "0" / fold
        folder.mkdir(parents=True)
        info = {"fold": fold, "seed": 0}
        if status != "absent":
            info["status"] = status
        if status in ("done", "absent", "finished"):
            pd.DataFrame(
                {"sample_id": [f"s{i}"], "fold": fold, "split": "test", "true": [0], "pred": [0]}
            ).to_csv(folder / "predictions.csv", index=False)
        (folder / "result.json").write_text(json.dumps(info))
    return ResultsStore(tmp_path)


def test_reader_reads_every_status_format_written_so_far(tmp_path):
    store = _folder(
        tmp_path, {"a": "done", "b": "failed", "c": "absent", "d": "finished", "e": "error"}
    )
    records = store.records()
    assert {r.fold: r.status for r in records.values()} == {
        "a": "done",
        "b": "failed",
        "c": "done",  # `mer train` fold folders write no status: a result.json is a filed fold
        "d": "done",
        "e": "failed",
    }
    assert set(records) == {f"full/{f}/s0" for f in "abcde"}  # ids from the folder when absent
    assert store.done_ids() == {"full/a/s0", "full/c/s0", "full/d/s0"}
    plan = {"name": "x", "mode": "ablation", "seeds": [0], "variants": {"full": {}}}
    run = load_run(tmp_path, plan=plan, config={})
    assert sorted(run.predictions["sample_id"]) == ["s0", "s2", "s3"]
    assert run.trial_status["full/b/s0"] == layout.STATUS_FAILED


def test_reader_refuses_unknown_status_and_broken_json_naming_the_file(tmp_path):
    _folder(tmp_path, {"a": "exploded"})
    with pytest.raises(DataError, match=r"full/0/a/result.json: status 'exploded'"):
        ResultsStore(tmp_path).records()
    (tmp_path / "trials" / "full" / "0" / "a" / "result.json").write_text("{broken")
    with pytest.raises(DataError, match=r"full/0/a/result.json: not valid JSON"):
        ResultsStore(tmp_path).records()


def test_json_helper_turns_numpy_pandas_paths_and_non_finite_numbers_into_plain_data(tmp_path):
    data = {
        1: np.int64(3),
        "f": np.float32(0.5),
        "b": np.bool_(True),
        "nan": float("nan"),
        "inf": np.inf,
        "na": pd.NA,
        "arr": np.arange(2),
        "path": tmp_path,
        "nested": ({"x": np.float64("nan")},),
    }
    plain = to_plain(data)
    assert plain == {
        "1": 3,
        "f": 0.5,
        "b": True,
        "nan": None,
        "inf": None,
        "na": None,
        "arr": [0, 1],
        "path": str(tmp_path),
        "nested": [{"x": None}],
    }
    assert type(plain["1"]) is int and type(plain["b"]) is bool
    assert json.loads(dumps(data)) == plain
    with pytest.raises(DataError, match=r"missing.json: no such file \(a plan\)"):
        read_json(tmp_path / "missing.json", what="a plan")


def test_atomic_write_removes_its_temporary_file_on_failure(tmp_path):
    target = tmp_path / "taken"
    (target / "inside").mkdir(parents=True)  # a non-empty folder cannot be replaced by a file
    with pytest.raises(OSError):
        write_text_atomic(target, "text")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]
    write_text_atomic(tmp_path / "new" / "file.txt", "ok")
    assert (tmp_path / "new" / "file.txt").read_text() == "ok"
    assert [p.name for p in (tmp_path / "new").iterdir()] == ["file.txt"]


def test_report_and_experiment_layers_import_no_sweep_ray_or_wandb():
    code = (
        "import sys, mer.report, mer.report.render, mer.report.tables, mer.report.plots, "
        "mer.report.data, mer.report.wandb_log, mer.experiment.aggregate, "
        "mer.experiment.summary, mer.experiment.studies, mer.experiment.environment; "
        "print(sorted(m for m in sys.modules if m.startswith('mer.sweep') "
        "or m.split('.')[0] in ('ray', 'wandb', 'optuna')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.slow
def test_a_real_sweeps_wandb_summary_runs_show_summary_md_text(finished_sweep):
    """The Ray sweep of tests/conftest.py: each variant's W&B summary run carries its summary.md
    row, cell for cell (what the driver hands to wandb, read back from the offline run)."""
    from tests.support.wandb_offline import offline_runs

    out = finished_sweep["out"]
    rows = _markdown_rows((out / "summary.md").read_text())
    runs = {r["name"]: r["summary"] for r in offline_runs(out) if "summary" in r["tags"]}
    assert set(runs) == set(rows) == {"full [oracle]", "regions_none"}
    for name, row in rows.items():
        for head in ("UF1", "UAR", "ACC", "folds", "status", "seeds"):
            assert runs[name][f"table/{head}"] == row[head], (name, head)
    assert rows["regions_none"]["status"] == "INCOMPLETE (folds 5/6, 1 failed)"

"""The sweep's results folder: per-trial logs, pooled metrics, summary tables.

Every number in `summary.csv` is recomputed from the per-trial prediction logs on disk, so a
resumed sweep (whose earlier trials ran in another process) and a finished one give the same
table, and anyone can recompute it with `rebuild(OUT)`.

Layout under OUT/:
  config.yaml, environment.json, plan.json
  trials/{variant}/{seed}/{fold_safe}/predictions.csv, history.csv, result.json (+ error.txt)
  predictions.csv      every finished trial's rows (+ variant, seed)
  summary_seeds.csv    pooled metrics per (variant, seed), with folds done/failed/total
  summary.csv/.md      per variant: mean ± std over seeds, per-dataset parts, oracle tag
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mer.config import dump_yaml
from mer.errors import DataError
from mer.metrics import POOLED_METRICS, pooled_scores
from mer.sweep.plan import SweepPlan, TrialSpec

log = logging.getLogger(__name__)

METRICS = POOLED_METRICS
STATUS_DONE = "done"
STATUS_FAILED = "failed"
# Result keys Tune adds to every report, and the payload parts stored in their own files.
_NOT_INFO = frozenset(
    {
        "predictions",
        "history",
        "mer_final",
        "timestamp",
        "checkpoint_dir_name",
        "done",
        "training_iteration",
        "trial_id",
        "date",
        "time_this_iter_s",
        "time_total_s",
        "node_ip",
        "config",
        "time_since_restore",
        "iterations_since_restore",
        "should_checkpoint",
    }
)


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(text)
    tmp.replace(path)


def write_csv_atomic(path: Path, frame: pd.DataFrame) -> None:
    write_text_atomic(path, frame.to_csv(index=False))


# ------------------------------------------------------------------------------ trial records
@dataclass
class TrialRecord:
    trial: str
    variant: str
    fold: str
    seed: int
    status: str  # done | failed
    info: dict[str, Any]
    path: Path

    def predictions(self) -> pd.DataFrame:
        return pd.read_csv(self.path / "predictions.csv")

    def history(self) -> pd.DataFrame:
        p = self.path / "history.csv"
        return pd.read_csv(p) if p.exists() and p.stat().st_size else pd.DataFrame()


class ResultsStore:
    """Reads and writes `OUT/trials/...`; the driver is its only writer."""

    def __init__(self, out: Path):
        self.out = Path(out)
        self.trials_dir = self.out / "trials"

    def trial_dir(self, spec: TrialSpec) -> Path:
        return self.trials_dir / spec.rel_dir

    def write_trial(self, spec: TrialSpec, payload: dict[str, Any]) -> TrialRecord:
        """Write a finished trial's logs; `result.json` goes last and marks the trial done."""
        folder = self.trial_dir(spec)
        folder.mkdir(parents=True, exist_ok=True)
        pred = pd.DataFrame(payload["predictions"])
        pred["variant"] = spec.variant
        pred["seed"] = spec.seed
        write_csv_atomic(folder / "predictions.csv", pred)
        write_csv_atomic(folder / "history.csv", pd.DataFrame(payload.get("history") or []))
        info = {k: v for k, v in payload.items() if k not in _NOT_INFO}
        info.update(
            status=STATUS_DONE, trial=spec.id, variant=spec.variant, fold=spec.fold, seed=spec.seed
        )
        (folder / "error.txt").unlink(missing_ok=True)
        write_text_atomic(folder / "result.json", json.dumps(_jsonable(info), indent=1))
        return TrialRecord(spec.id, spec.variant, spec.fold, spec.seed, STATUS_DONE, info, folder)

    def write_failure(self, spec: TrialSpec, error: str, attempts: int | None = None) -> None:
        """A trial that failed permanently (after its retries)."""
        folder = self.trial_dir(spec)
        if self.status(spec) == STATUS_DONE:
            return
        write_text_atomic(folder / "error.txt", error)
        info = {
            "status": STATUS_FAILED,
            "trial": spec.id,
            "variant": spec.variant,
            "fold": spec.fold,
            "seed": spec.seed,
            "error": error.strip().splitlines()[-1:],
            "attempts": attempts,
        }
        write_text_atomic(folder / "result.json", json.dumps(_jsonable(info), indent=1))

    def status(self, spec: TrialSpec) -> str | None:
        p = self.trial_dir(spec) / "result.json"
        if not p.exists():
            return None
        return json.loads(p.read_text()).get("status")

    def records(self) -> dict[str, TrialRecord]:
        """Every trial folder with a result.json, keyed by trial id."""
        out: dict[str, TrialRecord] = {}
        for p in sorted(self.trials_dir.glob("*/*/*/result.json")):
            try:
                info = json.loads(p.read_text())
            except json.JSONDecodeError as exc:
                raise DataError(f"{p}: not valid JSON ({exc})") from None
            rec = TrialRecord(
                str(info["trial"]),
                str(info["variant"]),
                str(info["fold"]),
                int(info["seed"]),
                str(info["status"]),
                info,
                p.parent,
            )
            out[rec.trial] = rec
        return out

    def done_ids(self) -> set[str]:
        return {t for t, r in self.records().items() if r.status == STATUS_DONE}


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


# ---------------------------------------------------------------------------------- pooling
def pooled_rows(
    plan: SweepPlan, records: dict[str, TrialRecord]
) -> tuple[list[dict], pd.DataFrame]:
    """Pooled MEGC metrics per (variant, seed) and the table of every finished prediction.

    A (variant, seed) with a failed or missing fold is marked incomplete: its metrics are
    computed on the folds that finished and flagged so, never passed off as the full protocol.
    """
    rows: list[dict] = []
    frames: list[pd.DataFrame] = []
    for v in plan.variants.values():
        names = plan.class_names[v.data_key]
        k = len(names)
        for seed in plan.cfg.seeds:
            specs = plan.trials_of(v.name, seed)
            done = [
                records[s.id]
                for s in specs
                if s.id in records and records[s.id].status == STATUS_DONE
            ]
            failed = [
                s.id for s in specs if s.id in records and records[s.id].status == STATUS_FAILED
            ]
            row: dict[str, Any] = {
                "variant": v.name,
                "seed": seed,
                "folds_total": len(specs),
                "folds_done": len(done),
                "folds_failed": len(failed),
                "failed_trials": " ".join(failed),
                "complete": len(done) == len(specs),
                "oracle": v.oracle or any(bool(r.info.get("oracle")) for r in done),
            }
            if done:
                pred = pd.concat([r.predictions() for r in done], ignore_index=True)
                frames.append(pred)
                scores = pooled_scores(pred, k, names, split="test")
                row.update(scores, oracle=row["oracle"] or scores["oracle"])
                secs = [r.info.get("timings", {}).get("total") for r in done]
                row["train_seconds"] = float(np.nansum([s or 0.0 for s in secs]))
            rows.append(row)
    allpred = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if not allpred.empty:
        order = [c for c in ("variant", "seed", "fold", "split", "sample_id") if c in allpred]
        allpred = allpred.sort_values(order, kind="stable").reset_index(drop=True)
    return rows, allpred


def summarize(plan: SweepPlan, seed_rows: list[dict]) -> pd.DataFrame:
    """Per variant: mean ± std over seeds (sample std; NaN with one seed), folds, oracle tag."""
    by_var: dict[str, list[dict]] = {}
    for r in seed_rows:
        by_var.setdefault(r["variant"], []).append(r)
    out = []
    for v in plan.variants.values():
        rs = by_var.get(v.name, [])
        oracle = v.oracle or any(r["oracle"] for r in rs)
        row: dict[str, Any] = {
            "variant": v.name,
            "name": f"{v.name} [oracle]" if oracle else v.name,
            "oracle": oracle,
            "seeds": len(rs),
            "seeds_scored": sum(1 for r in rs if "uf1" in r),
            "folds_done": sum(r["folds_done"] for r in rs),
            "folds_failed": sum(r["folds_failed"] for r in rs),
            "folds_total": sum(r["folds_total"] for r in rs),
            "complete": bool(rs) and all(r["complete"] for r in rs),
        }
        keys = list(METRICS) + sorted({k for r in rs for k in r if "/" in k})
        for key in keys:
            vals = [float(r[key]) for r in rs if key in r and r[key] is not None]
            row[f"{key}_mean"] = float(np.mean(vals)) if vals else math.nan
            row[f"{key}_std"] = float(np.std(vals, ddof=1)) if len(vals) > 1 else math.nan
        row["status"] = (
            "complete"
            if row["complete"]
            else (
                f"INCOMPLETE (folds {row['folds_done']}/{row['folds_total']}"
                + (f", {row['folds_failed']} failed" if row["folds_failed"] else "")
                + ")"
            )
        )
        st = v.stats or {}
        row["params"] = st.get("params")
        row["gflops"] = st.get("gflops")
        row["changes"] = v.changes()
        out.append(row)
    return pd.DataFrame(out)


# ---------------------------------------------------------------------------------- writing
def _pm(mean: float, std: float) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return f"{mean:.4f}"
    return f"{mean:.4f} ± {std:.4f}"


def format_table(summary: pd.DataFrame, *, markdown: bool = False) -> str:
    """The summary as a text (or Markdown) table: one line per variant."""
    head = ["variant", "UF1", "UAR", "acc", "folds", "status"]
    body = []
    for _, r in summary.iterrows():
        body.append(
            [
                str(r["name"]),
                _pm(r["uf1_mean"], r["uf1_std"]),
                _pm(r["uar_mean"], r["uar_std"]),
                _pm(r["acc_mean"], r["acc_std"]),
                f"{r['folds_done']}/{r['folds_total']}",
                str(r["status"]),
            ]
        )
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(row) + " |" for row in body]
        return "\n".join(lines)
    widths = [
        max(len(h), *(len(row[i]) for row in body)) if body else len(h) for i, h in enumerate(head)
    ]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*head)] + [fmt.format(*row) for row in body])


def _markdown(plan: SweepPlan, summary: pd.DataFrame, seed_rows: list[dict]) -> str:
    cfg = plan.cfg
    lines = [f"# {cfg.name}: pooled MEGC metrics", ""]
    selections = sorted({vp.cfg.protocol.selection for vp in plan.variants.values()})
    lines.append(
        f"Pooled over each (variant, seed)'s test folds ({cfg.protocol.split}, selection "
        f"{' / '.join(selections)}), then mean ± sample std over seeds "
        f"{', '.join(map(str, cfg.seeds))}."
    )
    lines += ["", format_table(summary, markdown=True), ""]
    oracle = summary[summary["oracle"]]
    if len(oracle):
        lines.append(
            "**oracle**: these results used test-subject information and are not "
            "comparable with protocol results (PROTOCOL.md §4):"
        )
        for name in oracle["variant"]:
            for reason in plan.variants[name].oracle_reasons or ["a trial reported oracle input"]:
                lines.append(f"- {name}: {reason}")
        lines.append("")
    parts = sorted({c[: -len("/uf1_mean")] for c in summary.columns if c.endswith("/uf1_mean")})
    if parts:
        lines += [
            "## Per-dataset parts (same pooled predictions)",
            "",
            "| variant | " + " | ".join(f"{p} UF1 | {p} UAR" for p in parts) + " |",
            "|---|" + "---|---|" * len(parts),
        ]
        for _, r in summary.iterrows():
            cells = []
            for p in parts:
                cells += [
                    _pm(r[f"{p}/uf1_mean"], r[f"{p}/uf1_std"]),
                    _pm(r[f"{p}/uar_mean"], r[f"{p}/uar_std"]),
                ]
            lines.append(f"| {r['name']} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += [
        "## Per seed",
        "",
        "| variant | seed | UF1 | UAR | acc | folds |",
        "|---|---|---|---|---|---|",
    ]
    oracle_names = set(oracle["variant"])
    for r in seed_rows:
        folds = f"{r['folds_done']}/{r['folds_total']}" + ("" if r["complete"] else ", INCOMPLETE")
        name = r["variant"] + (" [oracle]" if r["variant"] in oracle_names else "")
        lines.append(
            f"| {name} | {r['seed']} | {_pm(r.get('uf1', math.nan), None)} | "
            f"{_pm(r.get('uar', math.nan), None)} | {_pm(r.get('acc', math.nan), None)} | {folds} |"
        )
    lines += ["", "## Variants", "", "| variant | changes | params | GFLOPs |", "|---|---|---|---|"]
    for _, r in summary.iterrows():
        params = "-" if r["params"] is None or pd.isna(r["params"]) else f"{int(r['params']):,}"
        gfl = "-" if r["gflops"] is None or pd.isna(r["gflops"]) else f"{float(r['gflops']):.3g}"
        lines.append(f"| {r['name']} | {r['changes']} | {params} | {gfl} |")
    return "\n".join(lines) + "\n"


@dataclass
class Summary:
    table: pd.DataFrame  # per variant
    seeds: list[dict]  # per (variant, seed)
    predictions: pd.DataFrame


def write_summary(out: Path, plan: SweepPlan) -> Summary:
    """Recompute everything from `OUT/trials` and write predictions.csv and the summaries."""
    out = Path(out)
    records = ResultsStore(out).records()
    known = {t.id for t in plan.trials}
    records = {k: r for k, r in records.items() if k in known}
    seed_rows, allpred = pooled_rows(plan, records)
    table = summarize(plan, seed_rows)
    write_csv_atomic(out / "predictions.csv", allpred)
    write_csv_atomic(out / "summary_seeds.csv", pd.DataFrame(seed_rows))
    write_csv_atomic(out / "summary.csv", table)
    write_text_atomic(out / "summary.md", _markdown(plan, table, seed_rows))
    return Summary(table, seed_rows, allpred)


# --------------------------------------------------------------------------- run description
def write_run_files(out: Path, plan: SweepPlan, *, argv: list[str] | None = None) -> None:
    """config.yaml (resolved), plan.json and environment.json."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "config.yaml", dump_yaml(plan.cfg))
    write_text_atomic(out / "plan.json", json.dumps(_jsonable(plan.to_json()), indent=1))
    write_text_atomic(out / "environment.json", json.dumps(environment(argv), indent=1))


def _version(module: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:  # noqa: BLE001 - absent package: no version
        return None


def git_commit(path: Path | None = None) -> dict[str, Any] | None:
    """Commit and dirty flag of the git checkout holding the `mer` package, if any."""
    where = path or Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(where), "status", "--porcelain"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return {"commit": sha.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return None


def environment(argv: list[str] | None = None) -> dict[str, Any]:
    """Versions, git commit, host and GPUs; never environment variables (they may hold keys)."""
    env: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "versions": {
            m: _version(m) for m in ("torch", "ray", "optuna", "wandb", "numpy", "pandas", "mer")
        },
        "git": git_commit(),
        "argv": list(argv) if argv is not None else None,
    }
    gpus: list[str] = []
    try:
        import torch

        if torch.cuda.is_available():
            gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except ImportError:
        pass
    env["driver_gpus"] = gpus
    try:
        import ray

        if ray.is_initialized():
            res = ray.cluster_resources()
            env["cluster"] = {
                "nodes": sum(1 for n in ray.nodes() if n.get("Alive")),
                "CPU": res.get("CPU", 0),
                "GPU": res.get("GPU", 0),
                "accelerators": sorted(k for k in res if k.startswith("accelerator_type:")),
            }
    except Exception:  # noqa: BLE001 - diagnostics only
        pass
    return env

"""The search summary: OUT/search/{best.json, summary.csv, summary.md} and its console text.

After the search `write_search_summary` writes OUT/search/best.json, summary.csv and summary.md:
per variant the best configuration by the inner-validation objective and, when the hold-out
evaluation has run, its pooled test UF1/UAR/accuracy on the held-out subjects (read from
OUT/{name}-holdout/summary.csv, labelled "held-out subjects, never seen by the search"); with
`holdout_subjects: 0`, the plain statement that no clean test estimate exists.
`format_search_summary` turns best.json's content into the lines `run_search` prints.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import TrialState

from mer.config import ExperimentConfig
from mer.errors import ConfigError
from mer.experiment import formatting as fmt
from mer.experiment import layout
from mer.sweep.search.holdout import HOLDOUT_NOTE, NO_HOLDOUT_NOTE, _holdout_section
from mer.sweep.search.storage import directions, open_storage, storage_url, study_name
from mer.util.files import write_csv_atomic, write_text_atomic
from mer.util.jsonio import read_json, write_json


def _best(study: Any, multi: bool) -> Any | None:
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return None
    pool = study.best_trials if multi else [study.best_trial]
    return max(pool, key=lambda t: (t.values[0], -t.number))


def _plan_holdout(out: Path) -> dict[str, list[str]]:
    """The held-out subjects per variant as the run's plan.json recorded them (empty if none)."""
    path = out / layout.PLAN_FILE
    if not path.exists():
        return {}
    variants = read_json(path, what="the sweep's plan").get("variants", {})
    return {v: list(info.get("holdout_subjects") or []) for v, info in variants.items()}


def write_search_summary(
    cfg: ExperimentConfig,
    out_dir: str | Path,
    *,
    variants: Sequence[str] | None = None,
    holdout: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """Write OUT/search/{best.json, summary.csv, summary.md} (and holdout.yaml) from the studies.

    The best configuration per variant is chosen on the inner-validation objective only. Test
    numbers come only from the held-out subjects (`holdout`: variant → subjects, default the
    run's plan.json), which no search fold contains: once every variant's search is finished,
    OUT/search/holdout.yaml is written (see `holdout_raw`), and the pooled test metrics of its
    evaluation run (OUT/{name}-holdout/summary.csv) are reported when it has run. The search
    folds' own test predictions are never summarised: their validation subjects are other
    folds' test subjects, so the test subjects' labels helped choose the configuration.
    Returns the best.json content.
    """
    if cfg.search is None:
        raise ConfigError("search: this sweep has no `search` section")
    out = Path(out_dir).expanduser().resolve()
    url = storage_url(cfg, out)
    storage = open_storage(url)
    multi = bool(cfg.search.extra_objectives)
    metric = cfg.search.objective.metric
    names = [metric] + list(cfg.search.extra_objectives)
    chosen = list(variants) if variants is not None else list(cfg.variants)
    held = {v: list(s) for v, s in (holdout if holdout is not None else _plan_holdout(out)).items()}
    best_doc: dict[str, Any] = {
        "objective": {
            "metric": metric,
            "on": cfg.search.objective.on,
            "values": names,
            "directions": directions(cfg),
        },
        "storage": url,
        "holdout": {},
        "variants": {},
    }
    rows: list[dict[str, Any]] = []
    for v in chosen:
        try:
            study = optuna.load_study(study_name=study_name(cfg, v), storage=storage)
        except KeyError:
            best_doc["variants"][v] = {"configs": 0, "states": {}, "finished": False, "best": None}
            continue
        trials = study.get_trials(deepcopy=False)
        counts: dict[str, int] = {}
        for t in trials:
            counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
            row = {"variant": v, "config_id": t.number, "state": t.state.name}
            for j, name in enumerate(names):
                complete = t.state.name == "COMPLETE" and t.values is not None
                row[name] = t.values[j] if complete else None
            row["params"] = t.user_attrs.get("params")
            row["gflops"] = t.user_attrs.get("gflops")
            row["overrides"] = t.user_attrs.get("overrides", json.dumps(t.params, sort_keys=True))
            row["folds_done"] = sum(1 for k in t.user_attrs if k.startswith("fold_"))
            row["reason"] = t.user_attrs.get("fail_reason") or t.user_attrs.get("prune_reason")
            rows.append(row)
        best = _best(study, multi)
        running = counts.get("running", 0)
        entry: dict[str, Any] = {
            "configs": len(trials),
            "states": counts,
            # every budgeted configuration asked and told: an interrupted search says so
            "finished": len(trials) >= cfg.search.trials and running == 0,
            "best": None,
        }
        if best is not None:
            entry["best"] = {
                "config_id": best.number,
                "overrides": json.loads(best.user_attrs.get("overrides", "{}")),
                "values": dict(zip(names, best.values)),
                "val_pooled": best.user_attrs.get("val_pooled"),
                "folds": list(best.user_attrs.get("folds", [])),
            }
            if multi:
                entry["pareto_front"] = [
                    {"config_id": t.number, "values": dict(zip(names, t.values))}
                    for t in sorted(study.best_trials, key=lambda t: t.number)
                ]
        best_doc["variants"][v] = entry
    best_doc["holdout"] = _holdout_section(cfg, out, best_doc["variants"], held)
    folder = out / layout.SEARCH_DIR
    write_json(folder / layout.SEARCH_BEST, best_doc, indent=2)
    extra = [c for c in ("params", "gflops") if c not in names]
    columns = ["variant", "config_id", "state", *names, *extra, "overrides", "folds_done", "reason"]
    table = pd.DataFrame(rows, columns=columns)
    write_csv_atomic(folder / layout.SEARCH_SUMMARY_CSV, table)
    write_text_atomic(folder / layout.SEARCH_SUMMARY_MD, _markdown(best_doc, table))
    return best_doc


def _metrics_text(res: Mapping[str, Any]) -> str:
    def one(m: str) -> str:
        sd, lo, hi = res.get(f"{m}_std"), res.get(f"{m}_low"), res.get(f"{m}_high")
        text = f"{m} {_fmt(res[m])}" + (f" ± {_fmt(sd)}" if sd is not None else "")
        return text + (f" [{_fmt(lo)}, {_fmt(hi)}]" if lo is not None and hi is not None else "")

    text = ", ".join(one(m) for m in ("uf1", "uar", "acc"))
    folds = f"{res['folds_done']}/{res['folds_total']} folds"
    if res.get("n_test") is not None:
        folds += f", {res['n_test']} clips"
    if res.get("uf1_low") is not None:
        pct = f"{100 * float(res.get('ci_level', 0.95)):g} %"
        folds += f"; [ ]: {pct} subject-bootstrap interval over {res.get('n_subjects')} subjects"
    if res.get("seeds", 1) > 1:
        folds += f", mean over {res['seeds']} seeds"
    if not res.get("complete", True):
        folds += ", INCOMPLETE"
    return f"{text} ({folds})"


def _holdout_lines(doc: Mapping[str, Any], entry: Mapping[str, Any]) -> list[str]:
    """What the summary says about a variant's test estimate (console and Markdown alike)."""
    section = doc.get("holdout") or {}
    if not section.get("n"):
        return []
    res = entry.get("holdout") or {}
    n = len(res.get("subjects") or section.get("subjects") or [])
    if res.get("available"):
        return [f"held-out test, LOSO on {n} subject(s) ({HOLDOUT_NOTE}): {_metrics_text(res)}"]
    line = f"held-out test: {res.get('reason', 'not available')}"
    if section.get("config") and "not evaluated yet" in str(res.get("reason")):
        line += f"; run python run_sweep.py {section['config']}"
    return [line]


def _search_scope(doc: Mapping[str, Any]) -> str:
    section = doc.get("holdout") or {}
    if not section.get("n"):
        return NO_HOLDOUT_NOTE
    per_variant = {
        v: tuple((e.get("holdout") or {}).get("subjects") or ()) for v, e in doc["variants"].items()
    }
    groups = {s for s in per_variant.values() if s}
    if len(groups) > 1:
        held = "; ".join(f"{v}: {', '.join(s)}" for v, s in per_variant.items() if s)
        text = f"held out of the search, per variant (not comparable across variants): {held}"
    else:
        text = (
            f"held out of the search: {section['n']} subject(s) ({', '.join(section['subjects'])})"
        )
    sizes = section.get("training_subjects")
    if sizes:
        text += (
            f"; search folds train on {sizes['search_folds']} subjects, the hold-out "
            f"evaluation's on {sizes['holdout']}, with the same epochs (the search tunes for the "
            "smaller training set; README, Hyperparameter search)"
        )
    evaluated = any((e.get("holdout") or {}).get("available") for e in doc["variants"].values())
    if evaluated:
        text += (
            "; each variant's held-out metrics are theirs alone, from LOSO folds training on every "
            "other subject. Choose between variants on the inner-validation objective: picking "
            "the variant with the best held-out score would make them a selection set"
        )
    return text


def format_search_summary(doc: Mapping[str, Any]) -> str:
    """A few lines per variant: best configuration, its val objective, its held-out test metrics."""
    obj = doc["objective"]
    lines = [f"search: best configuration per variant by pooled {obj['metric']} on {obj['on']}"]
    for v, entry in doc["variants"].items():
        best = entry.get("best")
        states = ", ".join(f"{k} {n}" for k, n in sorted((entry.get("states") or {}).items()))
        if not entry.get("finished"):
            states += "; INCOMPLETE"
        if best is None:
            lines.append(f"  {v}: no completed configuration ({states or 'none run'})")
            continue
        vals = ", ".join(f"{k} {_fmt(x)}" for k, x in best["values"].items())
        lines.append(
            f"  {v}: config {best['config_id']} ({states}): val {vals}; "
            f"{json.dumps(best['overrides'], sort_keys=True)}"
        )
        lines += [f"    {line}" for line in _holdout_lines(doc, entry)]
    lines.append(_search_scope(doc))
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    """An objective value or held-out metric (fmt.OBJECTIVE_DECIMALS); other values as text."""
    if isinstance(value, float):
        return fmt.number(value, fmt.OBJECTIVE_DECIMALS)
    return fmt.MISSING if value is None else str(value)


def _display(table: pd.DataFrame) -> pd.DataFrame:
    """The configurations table as text: sizes as the report shows them, values via `_fmt`."""
    out = table.astype(object).where(pd.notna(table), None)
    for col in out.columns:
        show = {"params": fmt.params_text, "gflops": fmt.gflops_text}.get(col, _fmt)
        out[col] = [show(v) for v in out[col]]
    return out


def _markdown(best_doc: Mapping[str, Any], table: pd.DataFrame) -> str:
    obj = best_doc["objective"]
    lines = [f"# Search summary ({obj['metric']} on {obj['on']}, pooled over folds)", ""]
    lines += [_search_scope(best_doc), ""]
    for v, entry in best_doc["variants"].items():
        lines.append(f"## {v}" + ("" if entry["finished"] else " (INCOMPLETE: search interrupted)"))
        states = ", ".join(f"{k} {n}" for k, n in sorted(entry.get("states", {}).items()))
        lines.append(f"{entry['configs']} configuration(s): {states or 'none'}")
        best = entry.get("best")
        if best is None:
            lines += ["", "No completed configuration.", ""]
            continue
        vals = ", ".join(f"{k} {_fmt(x)}" for k, x in best["values"].items())
        lines += [
            "",
            f"Best: config {best['config_id']} — {vals} (inner validation)",
            f"Overrides: `{json.dumps(best['overrides'], sort_keys=True)}`",
        ]
        lines += [line[0].upper() + line[1:] for line in _holdout_lines(best_doc, entry)]
        lines.append("")
    if not table.empty:
        lines += ["## All configurations (inner-validation objective)", ""]
        lines += [fmt.markdown(_display(table)), ""]
    return "\n".join(lines)

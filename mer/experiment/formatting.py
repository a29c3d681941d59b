"""The one place numbers become text, for every rendering of the result tables: summary.md, the
printed table, the report (Markdown, HTML, LaTeX) and the W&B summary tables.

Scores are shown with DECIMALS (3) decimals, as the README and the report always did (the old
summary.md used 4; a 4th decimal is far below the seed-to-seed spread of any MER score), a
missing value as MISSING, a spread as `mean ± std` (one seed: the mean alone), an interval as
`[low, high]` after its estimate (`0.715 [0.521, 0.880]`), a difference with its sign
(`+0.033 [-0.110, +0.190]`) and a p-value as mer.experiment.uncertainty.format_p writes it. CSV
files and W&B summary values keep full precision; rounded text is made only here.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from mer.experiment.layout import display_name
from mer.experiment.uncertainty import format_p

DECIMALS = 3
# The search summary's objective values and held-out metrics (mer.sweep.search.summary): 4
# decimals, as it always had, since configurations are ranked on them.
OBJECTIVE_DECIMALS = 4
MISSING = "–"
PLUS_MINUS = " ± "
SCORE_COLUMNS = {"uf1": "UF1", "uar": "UAR", "acc": "ACC"}


def is_missing(value: Any) -> bool:
    return value is None or (not isinstance(value, str) and pd.isna(value))


def number(value: Any, decimals: int = DECIMALS) -> str:
    """A score: `0.667`; MISSING for None/NaN."""
    return MISSING if is_missing(value) else f"{float(value):.{decimals}f}"


def signed(value: Any, decimals: int = DECIMALS) -> str:
    """A difference: `+0.100` / `-0.020`."""
    return MISSING if is_missing(value) else f"{float(value):+.{decimals}f}"


def mean_std(mean: Any, std: Any, decimals: int = DECIMALS) -> str:
    """`mean ± std`; the mean alone when there is no spread (one seed)."""
    if is_missing(mean):
        return MISSING
    if is_missing(std):
        return number(mean, decimals)
    return number(mean, decimals) + PLUS_MINUS + number(std, decimals)


def interval(low: Any, high: Any, decimals: int = DECIMALS, sign: bool = False) -> str:
    """`[0.521, 0.880]` (`sign`: `[-0.110, +0.190]`); '' when undefined."""
    if is_missing(low) or is_missing(high):
        return ""
    show = signed if sign else number
    return f"[{show(low, decimals)}, {show(high, decimals)}]"


def estimate(mean: Any, std: Any, low: Any, high: Any, decimals: int = DECIMALS) -> str:
    """A headline score: `mean ± std` (as `mean_std`) followed by its interval, when it has one:
    `0.715 [0.521, 0.880]`, `0.715 ± 0.020 [0.521, 0.880]`."""
    text = mean_std(mean, std, decimals)
    ci = interval(low, high, decimals)
    return f"{text} {ci}" if ci and text != MISSING else text


def difference(diff: Any, low: Any, high: Any, decimals: int = DECIMALS) -> str:
    """A paired difference and its interval: `+0.033 [-0.110, +0.190]`."""
    if is_missing(diff):
        return MISSING
    ci = interval(low, high, decimals, sign=True)
    return f"{signed(diff, decimals)} {ci}" if ci else signed(diff, decimals)


def verdict(detectable: Any, p_holm: Any) -> str:
    """The paired test's reading: `no detectable difference (Holm p = 1.0)` /
    `detectable difference (Holm p = 0.004)`; MISSING when no test ran."""
    if is_missing(detectable) or is_missing(p_holm):
        return MISSING
    p = format_p(float(p_holm))
    head = "detectable difference" if is_flag(detectable) else "no detectable difference"
    return f"{head} (Holm p {'' if p.startswith('<') else '= '}{p})"


def is_flag(value: Any) -> bool:
    """A detectable flag from the table or its CSV (True / 'True' / 1)."""
    return str(value).strip().lower() in ("true", "1", "1.0")


def count(value: Any) -> str:
    return MISSING if is_missing(value) else f"{int(value)}"


def params_text(value: Any) -> str:
    """A parameter count at a precision that tells variants apart: 812, 54.8k, 3.82M."""
    if is_missing(value):
        return MISSING
    n = float(value)
    if abs(n) < 1e3:
        return f"{n:.0f}"
    if abs(round(n / 1e3, 1)) < 1e3:
        return f"{n / 1e3:.1f}k"
    return f"{n / 1e6:.2f}M"


def gflops_text(value: Any) -> str:
    return MISSING if is_missing(value) else f"{float(value):.3g}"


def dataset_parts(table: pd.DataFrame) -> list[str]:
    """The datasets of a composite run's per-dataset columns (`{dataset}/uf1_mean`)."""
    return sorted({c[: -len("/uf1_mean")] for c in table.columns if c.endswith("/uf1_mean")})


def _folds(r: pd.Series, search: bool) -> str:
    text = f"{int(r['folds_done'])}/{int(r['folds_total'])}"
    if search:  # the state says why folds are missing; INCOMPLETE only for lost logs
        lost = r["state"] == "complete" and not r["complete"]
        return text + (" INCOMPLETE" if lost else "")
    return text


def shown_name(r: Any) -> str:
    """A row's display name: the table's `name` (variant + its labels), else built here."""
    name = r.get("name")
    return (
        str(name)
        if isinstance(name, str) and name
        else display_name(str(r["variant"]), bool(r["oracle"]))
    )


def _delta(r: pd.Series, ref: str, paired: bool) -> tuple[str, str]:
    """The ΔUF1 and verdict cells of a row: the paired difference with its interval and the
    Holm-adjusted test, `reference` for the reference row, MISSING where nothing was compared
    (oracle rows, rows without a common clip). A table without comparison columns (written
    before them) shows its plain `delta_uf1`."""
    if not paired:
        return signed(r.get("delta_uf1")), MISSING
    if str(r["variant"]) == ref:
        return "reference", "reference"
    return (
        difference(r.get("uf1_diff"), r.get("uf1_diff_low"), r.get("uf1_diff_high")),
        verdict(r.get("uf1_detectable"), r.get("uf1_p_holm")),
    )


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """The per-variant table as text columns, in the order readers scan them: scores with their
    intervals, per-dataset UF1 parts, the paired UF1 difference to the reference with its
    interval and verdict (when the table has a reference), clip / subject / class counts,
    params, GFLOPs, then for a search the `state` (complete / PRUNED / failed / running, as the
    search summary has it), for an ablation the `status` (complete / INCOMPLETE with folds done
    and failed); `paper†` when some row is the paper's configuration."""
    search = "state" in table
    parts = dataset_parts(table)
    ref = table.attrs.get("delta_reference")
    paired = "uf1_diff" in table
    if paired and not table.attrs.get("comparison_family"):
        ref = None  # a reference with nothing compared to it (one label-free variant)
    rows = []
    for _, r in table.iterrows():
        row = {"variant": shown_name(r)}
        for m, head in SCORE_COLUMNS.items():
            row[head] = estimate(
                r.get(f"{m}_mean"), r.get(f"{m}_std"), r.get(f"{m}_low"), r.get(f"{m}_high")
            )
        for ds in parts:
            row[f"{ds} UF1"] = mean_std(r.get(f"{ds}/uf1_mean"), r.get(f"{ds}/uf1_std"))
        if ref:
            delta, test = _delta(r, str(ref), paired)
            row[f"ΔUF1 vs {ref}"] = delta
            if paired:
                row["paired test"] = test
        if "n_clips" in table:
            row["clips"] = count(r.get("n_clips"))
            row["subjects"] = count(r.get("n_subjects"))
            row["classes"] = count(r.get("n_classes"))
        row["params"] = params_text(r.get("params"))
        row["GFLOPs"] = gflops_text(r.get("gflops"))
        if search:
            row["state"] = str(r["state"])
        row["folds"] = _folds(r, search)
        if not search:
            row["status"] = str(r["status"])
        row["seeds"] = str(int(r["seeds_scored"]))
        paper = [
            f"{head} {number(r.get(f'paper_{m}'))}"
            for m, head in SCORE_COLUMNS.items()
            if not is_missing(r.get(f"paper_{m}"))
        ]
        row["paper†"] = ", ".join(paper)
        rows.append(row)
    disp = pd.DataFrame(rows)
    if "paper†" in disp and not disp["paper†"].astype(bool).any():
        disp = disp.drop(columns="paper†")
    return disp


def parts_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per-dataset UF1 and UAR of a composite run (the same pooled predictions, split by
    dataset); no columns but `variant` for a single-dataset run."""
    rows = []
    for _, r in table.iterrows():
        row = {"variant": shown_name(r)}
        for ds in dataset_parts(table):
            for m in ("uf1", "uar"):
                row[f"{ds} {SCORE_COLUMNS[m]}"] = mean_std(r[f"{ds}/{m}_mean"], r[f"{ds}/{m}_std"])
        rows.append(row)
    return pd.DataFrame(rows)


def seeds_table(seeds: list[dict[str, Any]], names: dict[str, str] | set[str]) -> pd.DataFrame:
    """One line per (variant, seed); `names`: each variant's display name in the main table
    (a set: the oracle variants, tagged so)."""
    rows = []
    for r in seeds:
        folds = f"{r['folds_done']}/{r['folds_total']}" + ("" if r["complete"] else ", INCOMPLETE")
        if isinstance(names, dict):
            name = names.get(r["variant"], r["variant"])
        else:
            name = display_name(r["variant"], r["variant"] in names)
        row = {
            "variant": name,
            "seed": str(r["seed"]),
        }
        row.update({head: number(r.get(m)) for m, head in SCORE_COLUMNS.items()})
        row["folds"] = folds
        rows.append(row)
    return pd.DataFrame(rows)


def variants_table(table: pd.DataFrame) -> pd.DataFrame:
    """What each variant changes, and its model size."""
    return pd.DataFrame(
        {
            "variant": [shown_name(r) for _, r in table.iterrows()],
            "changes": table["changes"].astype(str),
            "params": [params_text(p) for p in table["params"]],
            "GFLOPs": [gflops_text(g) for g in table["gflops"]],
        }
    )


# ------------------------------------------------------------------------------- writers
_LATEX_SYMBOLS = {"±": r"$\pm$", "Δ": r"$\Delta$", "†": r"$^\dagger$", "–": "--"}


def markdown(disp: pd.DataFrame) -> str:
    """A text table as Markdown (cells as they are: no re-parsing of numbers, no padding)."""
    return disp.to_markdown(
        index=False, tablefmt="pipe", stralign=None, numalign=None, disable_numparse=True
    )


def latex(disp: pd.DataFrame) -> str:
    """A text table as a booktabs LaTeX tabular (special characters escaped)."""
    styler = disp.style.hide(axis="index").format(escape="latex")
    styler = styler.format_index(escape="latex", axis=1)
    text = styler.to_latex(hrules=True, column_format="l" + "r" * (len(disp.columns) - 1))
    for symbol, tex in _LATEX_SYMBOLS.items():
        text = text.replace(symbol, tex)
    return text


def text(disp: pd.DataFrame) -> str:
    """A text table for the console."""
    return disp.to_string(index=False) if len(disp) else "(no rows)"

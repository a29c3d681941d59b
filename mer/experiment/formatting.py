"""The one place numbers become text, for every rendering of the result tables: summary.md, the
printed table, the report (Markdown, HTML, LaTeX) and the W&B summary tables.

Scores are shown with DECIMALS (3) decimals, as the README and the report always did (the old
summary.md used 4; a 4th decimal is far below the seed-to-seed spread of any MER score), a
missing value as MISSING, a spread as `mean ± std` (one seed: the mean alone). CSV files and W&B
summary values keep full precision; rounded text is made only here.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from mer.experiment.layout import display_name

DECIMALS = 3
# The search summary's objective values and held-out metrics (mer.sweep.search.summary): 4
# decimals, as it always had, since configurations are ranked on them.
OBJECTIVE_DECIMALS = 4
MISSING = "–"
PLUS_MINUS = " ± "
SCORE_COLUMNS = {"uf1": "UF1", "uar": "UAR", "acc": "ACC"}


def _missing(value: Any) -> bool:
    return value is None or (not isinstance(value, str) and pd.isna(value))


def number(value: Any, decimals: int = DECIMALS) -> str:
    """A score: `0.667`; MISSING for None/NaN."""
    return MISSING if _missing(value) else f"{float(value):.{decimals}f}"


def signed(value: Any, decimals: int = DECIMALS) -> str:
    """A difference: `+0.100` / `-0.020`."""
    return MISSING if _missing(value) else f"{float(value):+.{decimals}f}"


def mean_std(mean: Any, std: Any, decimals: int = DECIMALS) -> str:
    """`mean ± std`; the mean alone when there is no spread (one seed)."""
    if _missing(mean):
        return MISSING
    if _missing(std):
        return number(mean, decimals)
    return number(mean, decimals) + PLUS_MINUS + number(std, decimals)


def params_text(value: Any) -> str:
    """A parameter count at a precision that tells variants apart: 812, 54.8k, 3.82M."""
    if _missing(value):
        return MISSING
    n = float(value)
    if abs(n) < 1e3:
        return f"{n:.0f}"
    if abs(round(n / 1e3, 1)) < 1e3:
        return f"{n / 1e3:.1f}k"
    return f"{n / 1e6:.2f}M"


def gflops_text(value: Any) -> str:
    return MISSING if _missing(value) else f"{float(value):.3g}"


def dataset_parts(table: pd.DataFrame) -> list[str]:
    """The datasets of a composite run's per-dataset columns (`{dataset}/uf1_mean`)."""
    return sorted({c[: -len("/uf1_mean")] for c in table.columns if c.endswith("/uf1_mean")})


def _folds(r: pd.Series, search: bool) -> str:
    text = f"{int(r['folds_done'])}/{int(r['folds_total'])}"
    if search:  # the state says why folds are missing; INCOMPLETE only for lost logs
        lost = r["state"] == "complete" and not r["complete"]
        return text + (" INCOMPLETE" if lost else "")
    return text


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """The per-variant table as text columns, in the order readers scan them. A search table
    gets a `state` column (complete / PRUNED / failed / running, as the search summary has it),
    an ablation table the `status` (complete / INCOMPLETE with folds done and failed); `ΔUF1`
    appears when the table has a reference variant, `paper†` when some row has a paper
    number."""
    search = "state" in table
    parts = dataset_parts(table)
    ref = table.attrs.get("delta_reference")
    rows = []
    for _, r in table.iterrows():
        row = {"variant": display_name(str(r["variant"]), bool(r["oracle"]))}
        for m, head in SCORE_COLUMNS.items():
            row[head] = mean_std(r.get(f"{m}_mean"), r.get(f"{m}_std"))
        for ds in parts:
            row[f"{ds} UF1"] = mean_std(r.get(f"{ds}/uf1_mean"), r.get(f"{ds}/uf1_std"))
        if ref:
            row[f"ΔUF1 vs {ref}"] = signed(r.get("delta_uf1"))
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
            if not _missing(r.get(f"paper_{m}"))
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
        row = {"variant": display_name(str(r["variant"]), bool(r["oracle"]))}
        for ds in dataset_parts(table):
            for m in ("uf1", "uar"):
                row[f"{ds} {SCORE_COLUMNS[m]}"] = mean_std(r[f"{ds}/{m}_mean"], r[f"{ds}/{m}_std"])
        rows.append(row)
    return pd.DataFrame(rows)


def seeds_table(seeds: list[dict[str, Any]], oracle: set[str]) -> pd.DataFrame:
    """One line per (variant, seed); `oracle`: the variants tagged so in the main table."""
    rows = []
    for r in seeds:
        folds = f"{r['folds_done']}/{r['folds_total']}" + ("" if r["complete"] else ", INCOMPLETE")
        row = {
            "variant": display_name(r["variant"], r["variant"] in oracle),
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
            "variant": [
                display_name(str(v), bool(o)) for v, o in zip(table["variant"], table["oracle"])
            ],
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

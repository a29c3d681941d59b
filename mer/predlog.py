"""Prediction logs: every number a run prints can be recomputed from these files.

Files written for one fold (`save_fold_result`):

- ``predictions.csv`` — one row per test and inner-validation clip, columns
  ``sample_id, dataset, subject, clip, fold, split, true, pred, prob_0..prob_{K-1}, oracle,
  oracle_selection, oracle_input`` (+ ``variant, seed`` when the caller adds them). ``true`` and
  ``pred`` are class indices (``prob_k`` is class k's probability) in the order of the label
  scheme's class names (megc3: 0 negative, 1 positive, 2 surprise; a sweep's plan.json has them
  as ``class_names``); a sweep's files also name them in ``true_name`` and ``pred_name``, right
  after ``pred`` (`add_class_names`). Probabilities are written with full float64 precision.
- ``predictions_megc.txt`` — the MEGC submission layout of the test predictions, plain text,
  whitespace separated, one block per (fold, test subject) in fold order::

      <dataset> <subject>          e.g.  casme2 sub01
      <file> <true> <pred>         e.g.  EP02_01f 0 2

  ``<subject>`` is the subject id without its ``dataset/`` namespace; ``<file>`` is the sample id
  after ``dataset/subject/`` (the clip name; CAS(ME)^3 keeps ``clip/onset``); labels are class
  indices (megc3: 0 negative, 1 positive, 2 surprise). Rows within a block are sorted by sample
  id. No header, no comments, so a non-standard run says so in the name instead: an oracle run
  (any row with ``oracle`` true) ``predictions_megc.oracle.txt``, a subset of the subjects
  ``.partial-K-of-N``, clips standing in for subjects ``.subject-dependent`` (`megc_file_name`).
- ``history.csv`` — one row per epoch (epoch, loss, ce, lr, train_acc, seconds, val_*, test_*).
- ``result.json`` — fold, seed, oracle flags, selected epoch, scores, timings, params.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mer.errors import DataError
from mer.util.jsonio import to_plain, write_json

ID_COLUMNS = ["sample_id", "dataset", "subject", "clip", "fold", "split"]
FLAG_COLUMNS = ["oracle", "oracle_selection", "oracle_input"]
REQUIRED = [*ID_COLUMNS, "true", "pred", "oracle"]
_PROB = re.compile(r"^prob_(\d+)$")
NAME_COLUMNS = ["true_name", "pred_name"]
_STR_COLUMNS = [*ID_COLUMNS, "variant", *NAME_COLUMNS]


def prob_columns(pred: pd.DataFrame) -> list[str]:
    """`prob_*` columns in class order."""
    cols = [c for c in pred.columns if _PROB.match(str(c))]
    return sorted(cols, key=lambda c: int(_PROB.match(c).group(1)))


def prediction_table(
    samples: pd.DataFrame,
    rows: np.ndarray,
    *,
    split: str,
    fold: str,
    y_true: np.ndarray,
    probs: np.ndarray,
    oracle_selection: bool,
    oracle_input: bool,
) -> pd.DataFrame:
    """Prediction rows for sample-table rows `rows` (in that order); pred = argmax of probs."""
    missing = [c for c in ID_COLUMNS[:4] if c not in samples.columns]
    if missing:
        raise DataError(f"sample table: missing column(s) {', '.join(missing)}")
    rows = np.asarray(rows, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64).reshape(len(rows), -1)
    sub = samples.iloc[rows]
    table = pd.DataFrame(
        {
            "sample_id": sub["sample_id"].astype(str).to_numpy(),
            "dataset": sub["dataset"].astype(str).to_numpy(),
            "subject": sub["subject"].astype(str).to_numpy(),
            "clip": sub["clip"].astype(str).to_numpy(),
            "fold": fold,
            "split": split,
            "true": np.asarray(y_true, dtype=np.int64),
            "pred": probs.argmax(1).astype(np.int64) if len(rows) else np.zeros(0, np.int64),
        }
    )
    for k in range(probs.shape[1]):
        table[f"prob_{k}"] = probs[:, k]
    table["oracle"] = bool(oracle_selection or oracle_input)
    table["oracle_selection"] = bool(oracle_selection)
    table["oracle_input"] = bool(oracle_input)
    return table


def add_class_names(pred: pd.DataFrame, class_names: Sequence[str]) -> pd.DataFrame:
    """`pred` with `true_name` and `pred_name` (the class names of `true` and `pred`) right after
    `pred`, so a prediction log reads without knowing the label scheme's class order."""
    names = np.asarray([str(c) for c in class_names], dtype=object)
    out = pred.drop(columns=[c for c in NAME_COLUMNS if c in pred.columns])
    at = list(out.columns).index("pred") + 1 if "pred" in out.columns else len(out.columns)
    for offset, col in enumerate(("true", "pred")):
        idx = out[col].to_numpy(dtype=np.int64)
        bad = (idx < 0) | (idx >= len(names))
        if bad.any():
            raise DataError(
                f"prediction log: {col} class {int(idx[bad][0])} outside the "
                f"{len(names)} class names ({', '.join(names)})"
            )
        out.insert(at + offset, f"{col}_name", names[idx])
    return out


# ------------------------------------------------------------------------------------------ CSV
def write_predictions(pred: pd.DataFrame, path: str | Path) -> Path:
    """Prediction table as CSV (floats with round-trip precision)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pred.to_csv(path, index=False)
    return path


def read_predictions(path: str | Path) -> pd.DataFrame:
    """Read a prediction CSV back with its types: ids as strings (a clip called `NA` stays a
    string), `true`/`pred` as int, probabilities as float, oracle flags as bool."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: prediction log not found")
    try:
        df = pd.read_csv(
            path, dtype={c: str for c in _STR_COLUMNS}, keep_default_na=False, na_values=[""]
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable prediction CSV ({exc})") from None
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(missing)} (has {', '.join(df.columns)})"
        )
    for col in ("true", "pred"):
        values = pd.to_numeric(df[col], errors="coerce")
        bad = values.isna() | (values != values.round())
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"{path}: row {i + 2}, column {col!r}: {df[col].iloc[i]!r} is not a class index"
            )
        df[col] = values.astype(np.int64)
    for col in FLAG_COLUMNS:
        if col in df.columns:
            df[col] = _flags(df[col], path, col)
    for col in prob_columns(df):
        df[col] = df[col].astype(np.float64)
    if "seed" in df.columns:
        df["seed"] = pd.to_numeric(df["seed"]).astype(np.int64)
    return df


def _flags(col: pd.Series, path: Path, name: str) -> pd.Series:
    if col.dtype == bool:
        return col
    text = col.astype(str).str.strip().str.lower()
    ok = text.isin(["true", "false", "1", "0"])
    if not ok.all():
        i = int(np.flatnonzero(~ok.to_numpy())[0])
        raise DataError(f"{path}: row {i + 2}, column {name!r}: {col.iloc[i]!r} is not true/false")
    return text.isin(["true", "1"])


# ------------------------------------------------------------------------------- MEGC format
def _file_and_subject(row: pd.Series) -> tuple[str, str]:
    sid, ds, subj = str(row["sample_id"]), str(row["dataset"]), str(row["subject"])
    parts = sid.split("/", 2)
    file = parts[2] if len(parts) == 3 else str(row["clip"])
    subject = subj[len(ds) + 1 :] if subj.startswith(ds + "/") else subj
    for what, value in (("sample id", file), ("subject", subject), ("dataset", ds)):
        if not value or any(ch.isspace() for ch in value):
            raise DataError(
                f"MEGC prediction file: {what} {value!r} of {sid!r} is empty or contains "
                "whitespace; the format is whitespace separated"
            )
    return file, subject


def megc_lines(pred: pd.DataFrame, split: str = "test") -> list[str]:
    """The MEGC submission lines (module docstring) for the rows with `split`."""
    rows = pred[pred["split"] == split] if "split" in pred.columns else pred
    rows = rows.sort_values(["fold", "subject", "sample_id"], kind="stable")
    lines: list[str] = []
    current: tuple[str, str] | None = None
    for _, row in rows.iterrows():
        file, subject = _file_and_subject(row)
        block = (str(row["fold"]), str(row["subject"]))
        if block != current:
            lines.append(f"{row['dataset']} {subject}")
            current = block
        lines.append(f"{file} {int(row['true'])} {int(row['pred'])}")
    return lines


def write_megc(pred: pd.DataFrame, path: str | Path, split: str = "test") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(megc_lines(pred, split)) + "\n")
    return path


def read_megc(path: str | Path) -> pd.DataFrame:
    """Parse a MEGC submission file into (dataset, subject, file, true, pred) rows."""
    path = Path(path)
    out: list[dict[str, Any]] = []
    header: tuple[str, str] | None = None
    for n, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) == 2:
            header = (parts[0], parts[1])
        elif len(parts) == 3 and header is not None:
            try:
                out.append(
                    {
                        "dataset": header[0],
                        "subject": header[1],
                        "file": parts[0],
                        "true": int(parts[1]),
                        "pred": int(parts[2]),
                    }
                )
            except ValueError:
                raise DataError(f"{path}, line {n}: expected '<file> <true> <pred>'") from None
        else:
            raise DataError(
                f"{path}, line {n}: expected '<dataset> <subject>' or '<file> <true> <pred>'"
            )
    return pd.DataFrame(out, columns=["dataset", "subject", "file", "true", "pred"])


# ---------------------------------------------------------------------------- history, result
def write_history(history: Sequence[dict[str, Any]], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns: list[str] = []
    for rec in history:
        columns += [k for k in rec if k not in columns]
    pd.DataFrame(list(history), columns=columns).to_csv(path, index=False)
    return path


def read_history(path: str | Path) -> pd.DataFrame:
    return pd.read_csv(path)


def result_summary(result: Any) -> dict[str, Any]:
    """The scalar part of a FoldResult as JSON-ready data."""
    keys = (
        "fold",
        "seed",
        "oracle",
        "oracle_selection",
        "oracle_input",
        "selected_epoch",
        "stopped",
        "test_scores",
        "val_scores",
        "timings",
        "params",
        "class_names",
    )
    out = {k: getattr(result, k) for k in keys if hasattr(result, k)}
    out["epochs_trained"] = len(result.history)
    return to_plain(out)


def megc_file_name(
    pred: Any, *, subjects_total: int | None = None, subject_dependent: bool = False
) -> str:
    """The MEGC text file's name: the format has no room for a label, so non-standard runs carry
    theirs in the name (PROTOCOL.md §4.2: every oracle result is labelled, files included), in
    this order: `.oracle` (a row has `oracle` true), `.partial-K-of-N` (the rows test K of the
    `subjects_total` subjects the protocol has: a `protocol.folds` subset),
    `.subject-dependent` (clips stand in for subjects, so one person can be in training and test:
    deception without a subject CSV). E.g. ``predictions_megc.oracle.partial-2-of-5.txt``."""
    parts = []
    if "oracle" in pred and bool(pred["oracle"].astype(bool).any()):
        parts.append("oracle")
    if subjects_total is not None and "subject" in pred:
        test = pred[pred["split"] == "test"] if "split" in pred else pred  # what the file holds
        tested = int(test["subject"].astype(str).nunique())
        if tested < int(subjects_total):
            parts.append(f"partial-{tested}-of-{int(subjects_total)}")
    if subject_dependent:
        parts.append("subject-dependent")
    return "predictions_megc" + "".join(f".{p}" for p in parts) + ".txt"


def save_fold_result(
    result: Any,
    out_dir: str | Path,
    *,
    config_yaml: str | None = None,
    extra_columns: dict[str, Any] | None = None,
    subjects_total: int | None = None,
    subject_dependent: bool = False,
) -> dict[str, Path]:
    """Write predictions.csv, predictions_megc.txt, history.csv, result.json (and config.yaml).
    `subjects_total`, `subject_dependent`: labels of the MEGC file's name (`megc_file_name`)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pred = result.predictions.copy()
    for key, value in (extra_columns or {}).items():
        pred[key] = value
    paths = {
        "predictions": write_predictions(pred, out / "predictions.csv"),
        "megc": write_megc(
            pred,
            out
            / megc_file_name(
                pred, subjects_total=subjects_total, subject_dependent=subject_dependent
            ),
        ),
        "history": write_history(result.history, out / "history.csv"),
    }
    summary = result_summary(result)
    summary.update(to_plain(extra_columns or {}))
    paths["result"] = write_json(out / "result.json", summary, indent=2)
    if config_yaml is not None:
        paths["config"] = out / "config.yaml"
        paths["config"].write_text(config_yaml)
    return paths

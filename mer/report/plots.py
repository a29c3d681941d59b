"""Report figures (matplotlib, Agg, PNG at a fixed pixel size so pages lay out predictably).

A variant's figures (confusion matrix, per-subject accuracy, training curves) depend on that
variant's own rows only, so each is drawn once and reused: beside each PNG a key file records
a digest of what it shows (the numbers drawn, the names, this module's source); a report that
finds the same key keeps the PNG. A study of many variants is re-reported (`mer report`, a
finished sweep's --resume, the sweep's final report after the per-variant ones drawn as each
variant finished: mer.sweep.progress) in seconds, and a figure is redrawn exactly when what it
shows changed.
"""

from __future__ import annotations

import hashlib
import logging
import re
import warnings
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from mer.report.data import RunData  # noqa: E402
from mer.report.tables import confusion_for, eval_split, per_subject_accuracy  # noqa: E402
from mer.util.files import write_text_atomic  # noqa: E402

log = logging.getLogger(__name__)
DPI = 100
SIZE = (8.0, 5.0)  # inches → 800 × 500 px


KEY_DIR = ".figure-keys"  # beside the figures: what each per-variant PNG shows (a digest)


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


@lru_cache(maxsize=1)
def _source_digest() -> str:
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


def _digest(*parts: object) -> str:
    """A digest of what a figure shows: frames by their values (order-free), text as text."""
    h = hashlib.sha256(_source_digest().encode())
    for part in parts:
        if isinstance(part, pd.DataFrame):
            # the same rows however they were read: in any order, without columns that are
            # empty here (another variant's), numbers as floats (a column missing from some
            # other trial turns ints into floats)
            frame = part.set_axis(list(map(str, part.columns)), axis=1).dropna(axis=1, how="all")
            cols = sorted(frame.columns)
            frame = frame[cols].apply(
                lambda c: c.astype(float) if pd.api.types.is_numeric_dtype(c) else c
            )
            frame = frame.sort_values(cols, kind="stable") if len(frame) else frame
            h.update(repr(cols).encode())
            h.update(frame.to_csv(index=False).encode())
        elif isinstance(part, np.ndarray):
            h.update(repr(part.tolist()).encode())
        else:
            h.update(repr(part).encode())
        h.update(b"\0")
    return h.hexdigest()


def _reuse(path: Path, key: str, draw: Callable[[Path], Path]) -> Path:
    """`path` as drawn before when its key file holds `key`; otherwise drawn now."""
    stamp = path.parent / KEY_DIR / f"{path.name}.key"
    if path.exists() and stamp.exists() and stamp.read_text() == key:
        return path
    draw(path)
    write_text_atomic(stamp, key)
    return path


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.savefig(path, dpi=DPI, format="png")
    plt.close(fig)
    return path


def confusion_plot(run: RunData, variant: str, path: Path) -> Path:
    cm = confusion_for(run, variant)
    names = run.classes_of(variant)
    fig, ax = plt.subplots(figsize=SIZE)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(
                j,
                i,
                f"{cm[i, j]}\n{norm[i, j]:.0%}",
                ha="center",
                va="center",
                color="white" if norm[i, j] > 0.5 else "black",
            )
    ax.set_xticks(range(len(names)), names)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{variant}: pooled {eval_split(run)} confusion matrix (all seeds)")
    fig.tight_layout()
    return _save(fig, path)


def subject_plot(run: RunData, variant: str, path: Path) -> Path:
    acc = per_subject_accuracy(run, variant)
    fig, ax = plt.subplots(figsize=SIZE)
    if len(acc):
        ax.bar(range(len(acc)), acc["acc"], color="tab:blue")
        ax.set_xticks(range(len(acc)), acc["subject"], rotation=90, fontsize=7)
    ax.set_ylim(0, 1)
    ax.set_ylabel(f"accuracy on the subject's {eval_split(run)} clips")
    ax.set_title(f"{variant}: per-subject accuracy (diagnostic, not a MEGC metric)")
    fig.tight_layout()
    return _save(fig, path)


def curves_plot(run: RunData, variant: str, path: Path) -> Path:
    hist = run.histories
    sub = hist[hist["variant"] == variant] if len(hist) else pd.DataFrame()
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=SIZE)
    for (_, _), h in sub.groupby(["fold", "seed"]) if len(sub) else []:
        ax_loss.plot(h["epoch"], h["loss"], color="tab:blue", alpha=0.25, lw=1)
        if "val_uf1" in h and h["val_uf1"].notna().any():
            ax_val.plot(h["epoch"], h["val_uf1"], color="tab:green", alpha=0.25, lw=1)
    ax_loss.set_title("training loss (one line per fold)")
    ax_loss.set_xlabel("epoch")
    ax_val.set_title("inner-validation UF1")
    ax_val.set_xlabel("epoch")
    ax_val.set_ylim(0, 1)
    if not (len(sub) and "val_uf1" in sub and sub["val_uf1"].notna().any()):
        ax_val.text(
            0.5,
            0.5,
            "no inner validation\n(protocol.val_subjects = 0)",
            ha="center",
            va="center",
            transform=ax_val.transAxes,
            color="grey",
        )
    fig.suptitle(variant)
    fig.tight_layout()
    return _save(fig, path)


def variants_plot(table: pd.DataFrame, path: Path) -> Path:
    metrics = [m for m in ("uf1", "uar", "acc") if f"{m}_mean" in table]
    fig, ax = plt.subplots(figsize=SIZE)
    x = np.arange(len(table))
    width = 0.8 / max(len(metrics), 1)
    hatch = ["//" if o else "" for o in table["oracle"]]
    # error bars: the subject-bootstrap intervals when the table has them, else the std over
    # seeds (one seed and no intervals: none)
    ci = all(f"{m}_low" in table and table[f"{m}_low"].notna().any() for m in metrics)
    spread = ci or any(table[f"{m}_std"].notna().any() for m in metrics)
    for i, m in enumerate(metrics):
        mean = table[f"{m}_mean"].astype(float)
        if ci:
            low = (mean - table[f"{m}_low"].astype(float)).clip(lower=0).fillna(0)
            high = (table[f"{m}_high"].astype(float) - mean).clip(lower=0).fillna(0)
            yerr = np.vstack([low.to_numpy(), high.to_numpy()])
        else:
            yerr = table[f"{m}_std"].fillna(0) if spread else None
        ax.bar(
            x + i * width,
            mean.fillna(0),
            width,
            yerr=yerr,
            capsize=3,
            label=m.upper(),
            hatch=hatch,
        )
    names = table["name"] if "name" in table else table["variant"]
    labels = [str(n).replace(" [", "\n[") for n in names]
    if "state" in table:  # a search: pruned / failed / running configurations say so
        labels = [
            f"{label}\n[{state}]" if state != "complete" else label
            for label, state in zip(labels, table["state"])
        ]
    ax.set_xticks(x + width * (len(metrics) - 1) / 2, labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    if ci:
        level = table["ci_level"].dropna()
        pct = f"{100 * float(level.iloc[0]):g} %" if len(level) else "95 %"
        ax.set_ylabel(f"pooled score, {pct} subject-bootstrap interval")
    else:
        ax.set_ylabel(
            "pooled score (mean ± std over seeds)" if spread else "pooled score (one seed)"
        )
    if table["oracle"].any():
        ax.text(
            0.99,
            0.97,
            "hatched: oracle (uses test-subject ground truth)",
            ha="right",
            va="top",
            transform=ax.transAxes,
            fontsize=8,
            color="dimgrey",
        )
    handles, names = ax.get_legend_handles_labels()
    if handles:  # plain swatches: a bar container's first bar may be an oracle (hatched) one
        swatches = [Patch(facecolor=h.patches[0].get_facecolor()) for h in handles]
        ax.legend(swatches, names)
    ax.set_title("variants side by side")
    fig.tight_layout()
    return _save(fig, path)


def search_plots(study, out_dir: Path, suffix: str = "") -> dict[str, Path]:
    """Optuna's own matplotlib views of a finished or running study."""
    # lazy: optuna takes ~0.5 s to import and only a search's report draws its views
    import optuna
    import optuna.visualization.matplotlib as ovm

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

    made: dict[str, Path] = {}
    views = {
        "optuna_history": ovm.plot_optimization_history,
        "optuna_importances": ovm.plot_param_importances,
        "optuna_parallel": ovm.plot_parallel_coordinate,
    }
    for name, fn in views.items():
        try:
            kwargs = {"target_name": "inner-val objective"}
            if len(study.directions) > 1:
                kwargs["target"] = lambda t: t.values[0]
            ax = fn(study, **kwargs)
        except (ValueError, RuntimeError) as exc:  # e.g. importances need >= 2 complete trials
            log.warning("optuna figure %s skipped: %s", name, exc)
            continue
        fig = (ax if hasattr(ax, "figure") else np.ravel(ax)[0]).figure
        fig.set_size_inches(*SIZE)
        fig.tight_layout()
        made[f"{name}{suffix}"] = _save(fig, out_dir / f"{name}{safe_name(suffix)}.png")
    return made


def caption(key: str, run: RunData, table: pd.DataFrame) -> str:
    """What a figure shows, in a sentence (the report prints it under the figure)."""
    split = "inner-validation" if eval_split(run) == "val" else "test"
    for kind in ("confusion_", "subjects_", "curves_"):
        if key.startswith(kind):
            v = key[len(kind) :]
            break
    else:
        kind = key
    if kind == "variants":
        bars = (
            "error bars: the subject-bootstrap interval"
            if "uf1_low" in table and table["uf1_low"].notna().any()
            else "error bars: std over seeds"
        )
        return (
            f"Pooled UF1, UAR and accuracy of every variant on its {split} clips ({bars}; "
            "hatched: oracle). Each bar's interval is the variant's own; whether two variants "
            "differ is for the paired comparisons in the table to say, not for the bars' overlap."
        )
    if kind == "confusion_":
        return (
            f"{v}: pooled {split} confusion matrix, all seeds summed. Rows are the true class, "
            "columns the predicted one; each cell gives the clip count and its share of the row "
            "(the diagonal shares are the per-class recalls UAR averages)."
        )
    if kind == "subjects_":
        return (
            f"{v}: accuracy on each {split} subject's clips, all seeds pooled. The spread across "
            "people is what the subject-bootstrap intervals resample; a diagnostic, not a MEGC "
            "metric."
        )
    if kind == "curves_":
        return (
            f"{v}: training loss (left) and inner-validation UF1 (right) per epoch, one line per "
            "fold and seed: whether training converged and how much the folds differ."
        )
    if key.startswith("optuna_history"):
        return "Optuna: each configuration's inner-validation objective in the order it ran."
    if key.startswith("optuna_importances"):
        return "Optuna: how much each searched setting explains the objective (its evaluator)."
    if key.startswith("optuna_parallel"):
        return "Optuna: the searched settings of each configuration against its objective."
    return key


def variant_plots(run: RunData, variant: str, out_dir: Path) -> dict[str, Path]:
    """The variant's confusion, per-subject and curves figures, each drawn unless the one on
    disk shows the same (see the module docstring)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    s = safe_name(variant)
    split = eval_split(run)
    cm = confusion_for(run, variant)
    acc = per_subject_accuracy(run, variant)
    hist = run.histories
    hist = hist[hist["variant"] == variant] if len(hist) else pd.DataFrame()
    names = run.classes_of(variant)
    return {
        f"confusion_{variant}": _reuse(
            out_dir / f"confusion_{s}.png",
            _digest("confusion", variant, split, names, cm),
            lambda p: confusion_plot(run, variant, p),
        ),
        f"subjects_{variant}": _reuse(
            out_dir / f"subjects_{s}.png",
            _digest("subjects", variant, split, acc),
            lambda p: subject_plot(run, variant, p),
        ),
        f"curves_{variant}": _reuse(
            out_dir / f"curves_{s}.png",
            _digest("curves", variant, hist),
            lambda p: curves_plot(run, variant, p),
        ),
    }


def make_plots(
    run: RunData, table: pd.DataFrame, out_dir: Path, studies: dict | None = None
) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    made: dict[str, Path] = {"variants": variants_plot(table, out_dir / "variants.png")}
    for v in run.variants:
        made.update(variant_plots(run, v, out_dir))
    for variant, study in (studies or {}).items():
        made.update(search_plots(study, out_dir, suffix="" if len(studies) == 1 else f"_{variant}"))
    return made

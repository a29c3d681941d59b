"""Report figures (matplotlib, Agg, PNG at a fixed pixel size so pages lay out predictably)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from mer.report.data import RunData  # noqa: E402
from mer.report.tables import confusion_for, eval_split, per_subject_accuracy  # noqa: E402

log = logging.getLogger(__name__)
DPI = 100
SIZE = (8.0, 5.0)  # inches → 800 × 500 px


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


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
    spread = any(table[f"{m}_std"].notna().any() for m in metrics)  # one seed: no error bars
    for i, m in enumerate(metrics):
        ax.bar(
            x + i * width,
            table[f"{m}_mean"].fillna(0),
            width,
            yerr=table[f"{m}_std"].fillna(0) if spread else None,
            capsize=3,
            label=m.upper(),
            hatch=hatch,
        )
    labels = [f"{v}\n[oracle]" if o else v for v, o in zip(table["variant"], table["oracle"])]
    if "state" in table:  # a search: pruned / failed / running configurations say so
        labels = [
            f"{label}\n[{state}]" if state != "complete" else label
            for label, state in zip(labels, table["state"])
        ]
    ax.set_xticks(x + width * (len(metrics) - 1) / 2, labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("pooled score (mean ± std over seeds)" if spread else "pooled score (one seed)")
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
        from matplotlib.patches import Patch

        swatches = [Patch(facecolor=h.patches[0].get_facecolor()) for h in handles]
        ax.legend(swatches, names)
    ax.set_title("variants side by side")
    fig.tight_layout()
    return _save(fig, path)


def search_plots(study, out_dir: Path, suffix: str = "") -> dict[str, Path]:
    """Optuna's own matplotlib views of a finished or running study."""
    import warnings

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


def make_plots(
    run: RunData, table: pd.DataFrame, out_dir: Path, studies: dict | None = None
) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    made: dict[str, Path] = {"variants": variants_plot(table, out_dir / "variants.png")}
    for v in run.variants:
        s = safe_name(v)
        made[f"confusion_{v}"] = confusion_plot(run, v, out_dir / f"confusion_{s}.png")
        made[f"subjects_{v}"] = subject_plot(run, v, out_dir / f"subjects_{s}.png")
        made[f"curves_{v}"] = curves_plot(run, v, out_dir / f"curves_{s}.png")
    for variant, study in (studies or {}).items():
        made.update(search_plots(study, out_dir, suffix="" if len(studies) == 1 else f"_{variant}"))
    return made

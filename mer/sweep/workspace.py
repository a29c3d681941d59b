"""A ready W&B workspace for a sweep (`mer wandb-view RUN_DIR`, and at the end of an online
sweep): a saved view of the project showing this sweep's runs the way mer's report does.

Why a saved view: a user who syncs a sweep's runs otherwise lands on W&B's default panels, one
chart per logged key, for dozens of runs. The view (built with the `wandb-workspaces` library)
keeps to this sweep's runs (their W&B groups) and shows, top to bottom:

- the ablation table with its subject-bootstrap intervals and paired comparisons (the sweep
  summary run's `report/ablation_table` and `variants_display` tables: what summary.md shows);
- one bar chart per pooled metric, one bar per variant (the variant summary runs'
  `pooled/uf1`, `pooled/uar`, `pooled/acc`);
- learning curves per variant: the trial runs' per-epoch loss, training accuracy and, where
  folds have validation subjects, validation UF1, grouped by variant (mean over folds and
  seeds, min-max band);
- for a search, a parallel-coordinates panel: each searched key, then the inner-validation UF1.

The specification is built offline (`build_workspace`, `view_spec`); only `save_workspace`
talks to W&B.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from mer.config import ExperimentConfig, load_config
from mer.errors import ConfigError
from mer.experiment import layout

log = logging.getLogger(__name__)

POOLED = ("uf1", "uar", "acc")
TABLES = ("report/ablation_table", "variants_display")


def curve_metrics(cfg: ExperimentConfig) -> list[str]:
    """The per-epoch keys the trial runs log that are worth a curve (mer.training.loop)."""
    keys = ["loss", "train_acc"]
    if cfg.protocol.val_subjects > 0:
        keys.append("val_uf1")
    if cfg.protocol.selection == "oracle_test":
        keys.append("test_uf1")
    return keys


def sweep_groups(cfg: ExperimentConfig, out: Path | None = None) -> list[str]:
    """The W&B groups of the sweep's runs: the sweep run's (its name) and one per variant, or
    per search configuration filed in OUT/trials (`{sweep}/{label}`). The view keeps to these:
    W&B maps a config key named `sweep` to its own sweep attribute, so groups are the filter."""
    labels = list(cfg.ablations or {}) or ["full"]
    trials = Path(out) / layout.TRIALS_DIR if out is not None else None
    if trials is not None and trials.is_dir():
        labels += sorted(p.name for p in trials.iterdir() if p.is_dir() and p.name not in labels)
    return [cfg.name, *(f"{cfg.name}/{v}" for v in labels)]


def build_workspace(
    cfg: ExperimentConfig, *, entity: str | None = None, out: Path | None = None
) -> Any:
    """The W&B workspace (a `wandb_workspaces.workspaces.Workspace`) of the sweep `cfg` whose
    results folder is `out` (when given, its search configurations are found there)."""
    import wandb_workspaces.reports.v2 as wr  # lazy: pulls in wandb
    import wandb_workspaces.workspaces as ws
    from wandb_workspaces import expr

    w = cfg.tracking.wandb
    search = cfg.search is not None
    sections = [
        ws.Section(
            name="Ablation table (95 % subject-bootstrap intervals, paired comparisons)",
            panels=[
                wr.WeavePanelSummaryTable(table_name=t, layout=wr.Layout(w=24, h=10))
                for t in TABLES
            ],
            is_open=True,
        ),
        ws.Section(
            name="Pooled scores per variant",
            panels=[
                wr.BarPlot(
                    title=f"pooled {m.upper()} per variant",
                    metrics=[f"pooled/{m}"],
                    groupby="Group",
                    groupby_aggfunc="mean",
                    orientation="h",
                )
                for m in POOLED
            ],
            is_open=True,
        ),
        ws.Section(
            name="Learning curves per variant (mean over folds and seeds, min-max band)",
            panels=[
                wr.LinePlot(
                    title=f"{key} per epoch",
                    x="Step",
                    y=[key],
                    title_x="epoch",
                    groupby="Group",
                    groupby_aggfunc="mean",
                    groupby_rangefunc="minmax",
                )
                for key in curve_metrics(cfg)
            ],
            is_open=True,
        ),
    ]
    if search:
        assert cfg.search is not None
        columns = [  # trial runs' summary `search/{key}` (payloads.trial_summary)
            wr.ParallelCoordinatesPlotColumn(metric=wr.SummaryMetric(f"search/{k}"), display_name=k)
            for k in cfg.search.space
        ]
        columns.append(
            wr.ParallelCoordinatesPlotColumn(
                metric=wr.SummaryMetric("val/uf1"), display_name="inner-validation UF1"
            )
        )
        sections.insert(
            0,
            ws.Section(
                name="Search: configurations and their inner-validation UF1",
                panels=[
                    wr.ParallelCoordinatesPlot(
                        title="searched keys -> inner-validation UF1 (per fold trial)",
                        columns=columns,
                        layout=wr.Layout(w=24, h=10),
                    )
                ],
                is_open=True,
            ),
        )
    return ws.Workspace(
        entity=entity or w.entity or "",
        project=w.project,
        name=f"mer: {cfg.name}",
        sections=sections,
        runset_settings=ws.RunsetSettings(
            filters=[expr.Metric("Group").isin(sweep_groups(cfg, out))],
            groupby=[expr.Metric("Group")],
        ),
        settings=ws.WorkspaceSettings(x_axis="Step"),
    )


def view_spec(workspace: Any) -> dict[str, Any]:
    """The view as W&B stores it (what `save` uploads), as plain JSON-ready data."""
    return workspace._to_model().model_dump(by_alias=True, exclude_none=True, mode="json")


def load_sweep_config(run_dir: Path) -> ExperimentConfig:
    """The resolved config of a results folder (OUT/config.yaml)."""
    path = Path(run_dir) / layout.CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"{run_dir}: no {layout.CONFIG_FILE}; expected a sweep's results folder")
    return load_config(path)


def save_workspace(workspace: Any) -> str:
    """Save the view to W&B (needs network and `wandb login`); returns its URL."""
    import wandb  # lazy: takes a second to import

    if not workspace.entity:
        workspace.entity = wandb.Api().default_entity
    return str(workspace.save().url)


def save_after_sweep(cfg: ExperimentConfig, out: Path) -> None:
    """At the end of an online sweep: save its view; a failure only says how to retry."""
    try:
        url = save_workspace(build_workspace(cfg, out=out))
    except Exception as exc:  # noqa: BLE001 - the sweep's results are complete without it
        log.warning("W&B workspace not saved (%r); retry with `mer wandb-view %s`", exc, out)
        return
    log.info("W&B workspace: %s", url)

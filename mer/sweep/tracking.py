"""Weights & Biases tracking of a sweep, from the driver (offline by default).

One W&B run per trial (group `{sweep}/{variant}`, job_type = variant, name = trial id, per-epoch
curves from the trial's history), one summary run per variant (pooled metrics, confusion matrix,
per-fold table) and one sweep run with the table comparing the variants. With
`tracking.wandb.granularity: variant` there is no run per trial: each variant's summary run also
holds its trials' table and per-fold curves (mer.sweep.variant_runs), so a study of thousands of
trials gives one run per variant. Non-standard results
carry their labels as W&B tags (`oracle`, `partial`, `subject-dependent`) on trial and summary
runs, and as the display name's suffix (` [oracle] [partial: 2 of 5 subjects]`) on summary runs;
the sweep run is tagged `has-oracle` / `has-partial` / `has-subject-dependent`.

Why from the driver and not `setup_wandb` inside trials: the driver owns the results folder, so
offline runs of trials that ran on other cluster nodes still land in `OUT/wandb`, and W&B is
initialised exactly once per run (one integration, `mode` passed explicitly, which the
WANDB_MODE environment variable would not do for Ray workers). Runs are written by one
background thread, so W&B never stalls the Tune event loop; failures there are logged and do not
stop the sweep.

Trial runs are the exception: a trial logs its own run epoch by epoch while it trains
(mer.sweep.live, settings from `live_settings`), so `--wandb online` shows live curves with real
timestamps. The driver writes a trial's run itself (`trial`) only when the trial could not:
offline runs of trials on another node than the driver, a failed W&B start inside the trial, or
a trial filed by a driver that was killed before its run was written.

The API key is never written by this module: configs are built from the experiment config only,
never from the environment.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import shutil
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from mer.config import ExperimentConfig, flatten
from mer.errors import ConfigError
from mer.experiment.layout import (
    WANDB_ORACLE,
    WANDB_PARTIAL,
    WANDB_SUBJECT_DEPENDENT,
    display_name,
)
from mer.experiment.plan import SweepPlan, TrialSpec
from mer.metrics import megc_scores
from mer.sweep.live import LiveSettings, init_run, sweep_id
from mer.sweep.payloads import (  # noqa: F401 - tracking's names for them
    EPOCH_TIMES_KEY,
    SWEEP_KEYS,
    display_rows,
    history_rows,
    sweep_summary,
    sweep_tables,
    trial_config,
    trial_summary,
    variant_summary,
)
from mer.sweep.variant_runs import log_folds

log = logging.getLogger(__name__)

MODES = ("offline", "online", "disabled")


class Tracker:
    """No-op tracker (`--wandb disabled`): takes the calls WandbTracker does (see there for
    their arguments), logs nothing and reports each job done at once."""

    enabled = False
    per_trial = True  # one W&B run per trial (tracking.wandb.granularity: trial)

    def trial(self, *args: Any, on_done: Callable[[], None] | None = None, **kwargs: Any) -> None:
        if on_done is not None:
            on_done()

    variant = trial

    def sweep(self, *args: Any, **kwargs: Any) -> None:
        pass

    def live_settings(self, *, driver_node: str | None) -> LiveSettings | None:
        return None

    def close(self) -> None:
        pass


class WandbTracker(Tracker):
    enabled = True

    def __init__(
        self,
        out: Path,
        *,
        sweep: str,
        project: str,
        entity: str | None,
        mode: str,
        tags: list[str] | None = None,
        searched: Sequence[str] = (),
        granularity: str = "trial",
    ):
        if mode not in ("offline", "online"):
            raise ValueError(f"W&B mode {mode!r}")
        # "variant": no run per trial; each variant summary run carries its folds' table and
        # curves instead (mer.sweep.variant_runs), all written when the sweep ends
        self.granularity = granularity
        self.per_trial = granularity == "trial"
        self.dir = Path(out)
        (self.dir / "wandb").mkdir(parents=True, exist_ok=True)
        self.sweep_name = sweep
        self.project = project
        self.entity = entity
        self.mode = mode
        self.tags = list(tags or [])  # tracking.wandb.tags: on every run of this sweep
        self.searched = tuple(searched)  # a search's keys (payloads.trial_summary)
        self.sweep_id = sweep_id(self.dir)  # kept by --resume: a retried trial keeps its run id
        self.errors: list[str] = []
        # variant summary runs wait for the final table (see `variant`)
        self._pending: dict[str, dict[str, Any]] = {}
        self._open: dict[str, Any] = {}  # variant runs opened early; used by the job thread only
        self._queue: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="mer-wandb", daemon=True)
        self._thread.start()

    # ---------------------------------------------------------------------------- machinery
    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            try:
                job()
            except Exception as exc:  # noqa: BLE001 - tracking must not stop a sweep
                self.errors.append(repr(exc))
                log.warning("W&B logging failed: %r", exc, exc_info=log.isEnabledFor(10))

    def _init(self, **kwargs: Any) -> Any:
        kwargs["tags"] = list(kwargs.get("tags") or []) + [
            t for t in self.tags if t not in (kwargs.get("tags") or [])
        ]
        return init_run(
            project=self.project, entity=self.entity, dir=str(self.dir), mode=self.mode, **kwargs
        )

    def _submit(self, job: Callable[[], None], on_done: Callable[[], None] | None = None) -> None:
        """Queue a run-writing job; `on_done` runs after it, only when it succeeded."""

        def then() -> None:
            job()
            if on_done is not None:
                on_done()

        self._queue.put(then)

    def close(self) -> None:
        """Wait for every queued run to be written; say how many W&B writes failed."""
        if self._pending:  # the sweep stopped before its final table: --resume writes them
            log.info(
                "W&B: %d variant summary run(s) without their comparisons (the sweep did not "
                "finish; --resume completes them): %s",
                len(self._pending),
                ", ".join(self._pending),
            )
            self._pending.clear()
            self._submit(self._finish_open)
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
            import wandb  # lazy: wandb takes ~1 s to import; runs only with W&B on

            wandb.teardown()  # finish() can return before wandb-core has closed the run files
        if self.errors:
            log.warning(
                "W&B: %d logging job(s) failed (the sweep's own files are complete); first: %s",
                len(self.errors),
                self.errors[0],
            )

    # ------------------------------------------------------------------------------- runs
    def trial(
        self,
        spec: TrialSpec,
        cfg: ExperimentConfig,
        payload: dict[str, Any],
        oracle: bool,
        on_done: Callable[[], None] | None = None,
    ) -> None:
        """The trial's run from its payload, once the trial has ended: for trials that did not
        log themselves live (mer.sweep.live). Its epochs keep their real end times when the
        payload has them (EPOCH_TIMES_KEY)."""
        if not self.per_trial:
            return  # granularity "variant": the trial is in its variant's run (log_folds)
        config = trial_config(cfg, spec, oracle, self.sweep_name)
        rows = history_rows(payload.get("history") or [], payload.get(EPOCH_TIMES_KEY))

        def job() -> None:
            run = self._init(
                group=f"{self.sweep_name}/{spec.variant}",
                job_type=spec.variant,
                name=spec.id,
                tags=_tags(oracle, "trial", payload.get("labels") or ()),
                config=config,
            )
            try:
                for row, step in rows:
                    run.log(row, step=step)
                run.summary.update(trial_summary(payload, cfg, self.searched))
            finally:
                run.finish()

        self._submit(job, on_done)

    def live_settings(self, *, driver_node: str | None) -> LiveSettings | None:
        """What a trial needs to log its own run while it trains (mer.sweep.live); None when
        trials must not (W&B disabled, or granularity `variant`: no run per trial)."""
        if not self.per_trial:
            return None
        return LiveSettings(
            project=self.project,
            entity=self.entity,
            mode=self.mode,
            dir=str(self.dir.resolve()),
            sweep=self.sweep_name,
            sweep_id=self.sweep_id,
            tags=tuple(self.tags),
            searched=self.searched,
            driver_node=driver_node,
        )

    def variant(
        self,
        plan: SweepPlan,
        variant: str,
        summary_row: dict[str, Any],
        seed_rows: list[dict],
        predictions: pd.DataFrame,
        on_done: Callable[[], None] | None = None,
        display_row: dict[str, str] | None = None,
    ) -> None:
        """The variant's summary run: `variant_summary` of its aggregate row (and of its row of
        the display table, when given), confusion matrix and per-fold diagnostic table.

        The run opens as soon as the variant completes, with what depends on this variant alone
        (its pooled scores with their intervals, per-seed scores, counts, status: a live
        dashboard shows each variant's result as it completes). The rest is written when
        `sweep` gets the final table, with that table's row: a variant's paired comparison
        depends on the others (the reference is chosen among the variants with scores, and
        Holm adjusts over every compared variant), so a comparison written when the variant
        finished could show another reference or p-value than summary.md. `on_done` runs once
        the run is complete; a sweep that stops before `sweep` only finishes the open runs
        (`close`), and the --resume that completes it continues them (one run id per variant)."""
        self._pending[variant] = dict(
            plan=plan, variant=variant, summary_row=summary_row, seed_rows=seed_rows,
            predictions=predictions, on_done=on_done, display_row=display_row,
        )  # fmt: skip
        opener = self._variant_opener(plan, variant, summary_row)
        early = {
            k: v
            for k, v in variant_summary(summary_row, seed_rows).items()
            if not k.startswith(("compare/", "table/"))
        }

        def job() -> None:
            opener().summary.update(early)

        self._submit(job)

    def _variant_opener(
        self, plan: SweepPlan, variant: str, summary_row: dict[str, Any]
    ) -> Callable[[], Any]:
        """A job-thread function returning the variant's summary run, opened on first use
        (offline: replacing an earlier driver's folder of the same run)."""
        vp = plan.variants[variant]
        oracle = bool(summary_row.get("oracle"))
        config = flatten(vp.cfg)
        config.update(variant=variant, oracle=oracle, sweep=self.sweep_name, changes=vp.changes())
        config.update(labels=vp.tags)
        name = str(summary_row.get("name") or display_name(variant, oracle, vp.tags))
        run_id = f"{self.sweep_id}-v-{hashlib.sha1(variant.encode()).hexdigest()[:12]}"

        def opener() -> Any:
            if variant not in self._open:
                if self.mode == "offline":
                    for old in (self.dir / "wandb").glob(f"offline-run-*-{run_id}"):
                        shutil.rmtree(old, ignore_errors=True)
                self._open[variant] = self._init(
                    id=run_id,
                    resume="allow",
                    group=f"{self.sweep_name}/{variant}",
                    job_type=variant,
                    name=name,
                    tags=_tags(oracle, "summary", vp.wandb_tags),
                    config=config,
                )
            return self._open[variant]

        return opener

    def _finish_open(self) -> None:
        """Finish the variant runs left open by a sweep that stopped before its final table."""
        for variant in list(self._open):
            self._open.pop(variant).finish()

    def _variant_run(
        self,
        plan: SweepPlan,
        variant: str,
        summary_row: dict[str, Any],
        seed_rows: list[dict],
        predictions: pd.DataFrame,
        on_done: Callable[[], None] | None = None,
        display_row: dict[str, str] | None = None,
    ) -> None:
        vp = plan.variants[variant]
        names = plan.class_names[vp.data_key]
        opener = self._variant_opener(plan, variant, summary_row)

        def job() -> None:
            import wandb  # lazy: wandb takes ~1 s to import; runs only with W&B on

            run = opener()
            try:
                run.summary.update(variant_summary(summary_row, seed_rows, display_row))
                test = predictions
                if len(predictions):
                    test = predictions[predictions["split"] == "test"]
                if len(test):
                    run.log(
                        {
                            "confusion_matrix": wandb.plot.confusion_matrix(
                                y_true=test["true"].astype(int).tolist(),
                                preds=test["pred"].astype(int).tolist(),
                                class_names=list(names),
                                title=f"{variant} (test, all seeds)",
                            )
                        }
                    )
                    # per-fold scores are a diagnostic, not the MEGC metric: named as such
                    table = wandb.Table(dataframe=_fold_table(test, len(names)))
                    run.log({"folds_nonstandard_per_fold_scores": table})
                if not self.per_trial:
                    log_folds(run, self.dir, variant)
            finally:
                self._open.pop(variant, None)
                run.finish()

        self._submit(job, on_done)

    def sweep(
        self, plan: SweepPlan, summary: pd.DataFrame, report: dict[str, Path] | None = None
    ) -> None:
        """The sweep-level summary run: the variants table and, when given, the report's table
        and figures (`mer report`), so the W&B workspace shows what results/report/ shows.
        First the variant summary runs queued by `variant`, with this final table's rows."""
        final = summary.set_index("variant", drop=False)
        shown = display_rows(summary)
        for variant, args in list(self._pending.items()):
            if variant in final.index:
                args.update(summary_row=final.loc[variant].to_dict(), display_row=shown[variant])
            self._variant_run(**args)
        self._pending.clear()
        tables = sweep_tables(summary)
        oracle_variants = [
            str(r["variant"]) for _, r in summary.iterrows() if bool(r.get("oracle", False))
        ]
        labelled = {
            tag: [v for v, vp in plan.variants.items() if tag in vp.wandb_tags]
            for tag in (WANDB_PARTIAL, WANDB_SUBJECT_DEPENDENT)
        }
        has = ["has-oracle"] if oracle_variants else []
        has += [f"has-{tag}" for tag, names in labelled.items() if names]

        def job() -> None:
            import wandb  # lazy: wandb takes ~1 s to import; runs only with W&B on

            run = self._init(
                group=self.sweep_name,
                job_type="sweep",
                name=f"{self.sweep_name} summary",
                # "has-oracle": some rows used test-subject information (named "[oracle]");
                # "has-partial", "has-subject-dependent": some rows carry those labels
                tags=["sweep-summary", *has],
                config={
                    "sweep": self.sweep_name,
                    "variants": list(plan.variants),
                    "oracle_variants": oracle_variants,
                    "partial_variants": labelled[WANDB_PARTIAL],
                    "subject_dependent_variants": labelled[WANDB_SUBJECT_DEPENDENT],
                    "reference": summary.attrs.get("reference"),
                    "report": dict(summary.attrs.get("uncertainty") or {}),
                    "seeds": list(plan.cfg.seeds),
                },
            )
            try:
                run.log({k: wandb.Table(dataframe=t) for k, t in tables.items()})
                if report and "csv" in report:
                    ablation = pd.read_csv(report["csv"])
                    ablation = ablation.astype(object).where(pd.notna(ablation), None)
                    run.log({"report/ablation_table": wandb.Table(dataframe=ablation)})
                    for key, path in (report or {}).items():
                        if key.startswith("png:"):
                            run.log({f"report/{key[4:]}": wandb.Image(str(path))})
                run.summary.update(sweep_summary(summary))
            finally:
                run.finish()

        self._submit(job)


def _tags(oracle: bool, kind: str, labels: Sequence[str] = ()) -> list[str]:
    """The run's kind, then its labels as W&B tags (oracle first; a label given twice once)."""
    out = [kind] + ([WANDB_ORACLE] if oracle else [])
    return out + [t for t in labels if t not in out]


def _fold_table(test: pd.DataFrame, k: int) -> pd.DataFrame:

    rows = []
    for (seed, fold), g in test.groupby(["seed", "fold"], sort=True):
        sc = megc_scores(g["true"].astype(int), g["pred"].astype(int), k)
        rows.append({"seed": int(seed), "fold": str(fold), "n": len(g), **sc})
    return pd.DataFrame(rows)


def make_tracker(mode: str, out: Path, cfg: ExperimentConfig) -> Tracker:
    if mode not in MODES:
        raise ConfigError(f"--wandb: expected one of {', '.join(MODES)}, got {mode!r}")
    if mode == "disabled":
        return Tracker()
    w = cfg.tracking.wandb
    searched = list(cfg.search.space) if cfg.search is not None else []
    return WandbTracker(
        out, sweep=cfg.name, project=w.project, entity=w.entity, mode=mode, tags=list(w.tags),
        searched=searched, granularity=w.granularity,
    )  # fmt: skip

"""One driver run of a sweep on Ray Tune: prepared data in the object store, the Tune experiment
(new or restored), and Tune's events turned into filed results.

The driver prepares every distinct dataset of the sweep once (variants whose `data` sections
differ, e.g. AU policy on/off, get one each), puts each in the object store, and hands trials the
references (`tune.with_parameters`): trials never read media or caches from disk. `SweepCallback`
files each finished trial's predictions under `OUT/trials/` as it arrives (the driver owns the
results folder, so trials on other nodes need no shared file system), failed trials are retried
from their last checkpoint (`FailureConfig`) and permanent failures recorded. A restarted driver
(`--resume`) restores the Tune experiment and skips trials whose results are already on disk.

Any sweep mode uses it: `open_session` (results folder, data, plan, Ray) then
`Session.run(param_space=... | search_alg=..., num_samples=...)` with trial configs understood
by `mer.sweep.trial.spec_from_config` (the ablation grid: mer.sweep.ablation; the Optuna search:
mer.sweep.search).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
import ray
from ray import tune
from ray.tune.logger import JsonLoggerCallback

from mer.config import ExperimentConfig
from mer.experiment import plan as plan_mod
from mer.experiment.plan import SweepPlan, TrialSpec
from mer.experiment.store import ResultsStore, write_run_files
from mer.experiment.summary import Summary, write_summary
from mer.report import write_report
from mer.sweep import outdir, resumecheck
from mer.sweep.callbacks import (  # noqa: F401 - names older Tune state pickled from here
    _ACTIVE,
    SweepCallback,
    _checkpoint_deleted,
    _trial_error,
    active_session,
    trial_dirname,
    trial_name,
)
from mer.sweep.cluster import alive_nodes, autoscaler_ceiling
from mer.sweep.console import SweepConsole
from mer.sweep.datasets import prepare_datasets
from mer.sweep.estimate import StepTimer, estimate_sweep
from mer.sweep.inbox import PAYLOAD_KEY, collect, start_inbox
from mer.sweep.options import RunOptions
from mer.sweep.progress import Progress
from mer.sweep.resources import capacity, check_devices, max_concurrent, trial_resources
from mer.sweep.startup import Startup, begin
from mer.sweep.tracking import Tracker, make_tracker
from mer.sweep.trial import FINAL_KEY, SKIPPED_KEY, spec_from_config, tune_trainable
from mer.sweep.tunestate import CompactFinishedTrials, leave_filed_trials_out
from mer.sweep.workspace import save_after_sweep
from mer.util.signals import StopSignals

log = logging.getLogger(__name__)


# Tune's experiment snapshot period as the user set it (TUNE_GLOBAL_CHECKPOINT_S), if they did
_USER_SNAPSHOT_PERIOD = os.environ.get("TUNE_GLOBAL_CHECKPOINT_S")


def snapshot_period(n_trials: int) -> str:
    """Seconds between Tune's experiment snapshots (TUNE_GLOBAL_CHECKPOINT_S) for a study of
    `n_trials`: 0.1 s per trial, at least 10 s (Tune's own minimum); the user's setting wins.

    Why: each snapshot rewrites every trial's record, so at Tune's fixed 10 s their total grows
    with the square of the study (Tune stretches the period only once one snapshot takes 0.5 s).
    A driver killed without warning loses at most one period of Tune's bookkeeping, never a
    result: finished trials are in the results folder (a restored one is skipped), and a trial
    that checkpoints twice between snapshots forces one (num_to_keep)."""
    if _USER_SNAPSHOT_PERIOD:
        return _USER_SNAPSHOT_PERIOD
    return f"{max(10.0, 0.1 * n_trials):g}"


# -------------------------------------------------------------------------------- the session
class Session:
    """One driver run of a sweep: Ray connection, prepared data, plan, results and tracking."""

    def __init__(
        self,
        cfg: ExperimentConfig,
        opts: RunOptions,
        plan: SweepPlan,
        data: dict[str, Any],
        started_ray: bool,
        resources: dict[str, float],
        cluster_capacity: dict[str, float],
        experiment: str = outdir.EXPERIMENT,
    ):
        self.cfg = cfg
        self.opts = opts
        self.plan = plan
        self.out = opts.out
        self.store = ResultsStore(self.out)
        self.started_ray = started_ray
        self.cluster = dict(ray.cluster_resources())
        # concurrency is sized for the cluster as its autoscaler may grow it
        self.resources = resources  # per trial (trial_resources)
        self.capacity = cluster_capacity  # as the autoscaler may grow it: sizes concurrency
        self.data_refs = {key: ray.put(value) for key, value in data.items()}
        self.inbox = start_inbox()  # trials hand their payloads over here (mer.sweep.inbox)
        mode = opts.wandb or cfg.tracking.wandb.mode
        self.tracker: Tracker = make_tracker(mode, self.out, cfg)
        self.wandb_mode = mode
        self.progress = Progress(plan, self.store, self.tracker)
        self.done_at_start = self.progress.done_at_start
        self.interrupted = False  # Ctrl-C / SIGUSR1 ended the Tune run early
        self.restored = False  # the last run() restored Tune's experiment (--resume)
        self.stop_signals = StopSignals()  # of the last run(): did a signal stop Tune?
        self.experiment = experiment  # Tune experiment name under a shared --storage
        self.tune_location: tuple[str, str] | None = None  # (storage path, experiment) in run()
        self.claim: Any = None  # the folder's lock (mer.experiment.claim); open_session sets it
        self.console: SweepConsole | None = None  # the lines of the current Tune run
        self.step_timer = StepTimer()  # models timed for the start line's estimate
        self.progress.catch_up_tracking()

    # ------------------------------------------------------------------------ tune plumbing
    def trainable(self) -> Any:
        fn = tune.with_parameters(
            tune_trainable,
            plan=self.plan,
            data_refs=self.data_refs,
            done=frozenset(self.done_at_start),
            hooks=self.opts.trial_hooks,
            report_every_s=self.opts.report_every_s,
            inbox=self.inbox,
            live=self.tracker.live_settings(driver_node=ray.get_runtime_context().get_node_id()),
        )
        return tune.with_resources(fn, self.resources)

    @property
    def storage(self) -> tuple[str, str]:
        if self.opts.storage:
            return str(outdir.storage_key(self.opts.storage)), self.experiment
        return str(self.out / "ray"), outdir.EXPERIMENT

    def missing_trials(self) -> list[str]:
        """Planned trials with no result on disk that did not fail in this run, in plan order."""
        done = self.store.done_ids()
        failed = self.progress.failed
        return [t.id for t in self.plan.trials if t.id not in done and t.id not in failed]

    def run(
        self,
        *,
        param_space: dict[str, Any] | None = None,
        search_alg: Any = None,
        num_samples: int = 1,
        callbacks: Sequence[Any] = (),
        metric: str | None = None,
        mode: str | None = None,
        concurrency: int | None = None,
        fresh_experiment: str | None = None,
    ) -> Any:
        """Run (or, with --resume, restore) the Tune experiment; returns the ResultGrid.

        `fresh_experiment`: run a new Tune experiment of that name next to the sweep's own
        (never restored), for trials the restored experiment will not run again."""
        # results are filed by our callback; Tune keeps its JSON log only (its CSV/TensorBoard
        # loggers would add two files per trial)
        os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
        # num_to_keep forces an experiment snapshot when a trial checkpoints twice between
        # snapshots; trials checkpoint at most once a minute (MIN_CHECKPOINT_INTERVAL_S), so
        # that happens only to a resumed legacy trial, and Tune's warning about it is noise
        os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
        os.environ["TUNE_GLOBAL_CHECKPOINT_S"] = snapshot_period(len(self.plan.trials))
        storage_path, name = self.storage
        if fresh_experiment:
            name = f"{name}-{fresh_experiment}"
        exp_path = f"{storage_path.rstrip('/')}/{name}"
        n_conc = concurrency or max_concurrent(
            self.cfg, self.resources, self.capacity, self.opts.max_concurrent, len(self.plan.trials)
        )
        self._start_line(n_conc, search=search_alg is not None)
        log.debug("Tune experiment: %s", exp_path)
        if not self.opts.storage and alive_nodes() > 1:
            log.warning(
                "a multi-node cluster with the default local storage %s: checkpoints of "
                "trials on other nodes stay on those nodes, so a retry elsewhere starts "
                "its fold again; pass --storage with a path every node sees (NFS, "
                "s3://...) to resume there",
                exp_path,
            )
        _ACTIVE["session"] = self
        self.tune_location = (storage_path, name)
        restoring = not fresh_experiment and self.opts.resume and tune.Tuner.can_restore(exp_path)
        if restoring:  # before anything is unpickled: who wrote it, and is it what we left?
            resumecheck.check_before_restore(self.out, exp_path, storage_path)
        resumecheck.record_state(self.out, exp_path, ended=False)
        ended = False
        self.restored = bool(restoring)
        self.stop_signals = StopSignals()  # watching starts once Tune set its handlers (setup)
        try:
            if restoring:
                log.info("--resume: restoring the Tune experiment of %s", self.out)
                tuner = tune.Tuner.restore(
                    exp_path,
                    trainable=self.trainable(),
                    resume_errored=True,
                    param_space=param_space,
                )
            else:
                tuner = tune.Tuner(
                    self.trainable(),
                    param_space=param_space,
                    tune_config=tune.TuneConfig(
                        search_alg=search_alg,
                        num_samples=num_samples,
                        metric=metric,
                        mode=mode,
                        max_concurrent_trials=n_conc,
                        reuse_actors=True,
                        trial_name_creator=trial_name,
                        trial_dirname_creator=trial_dirname,
                    ),
                    run_config=tune.RunConfig(
                        name=name,
                        storage_path=storage_path,
                        failure_config=tune.FailureConfig(
                            max_failures=self.cfg.resources.max_failures
                        ),
                        # two per trial, deleted when it finishes (on_complete): a bounded
                        # list in each trial's Tune state
                        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
                        # last: the others see a finished trial's record whole
                        callbacks=[
                            SweepCallback(),
                            JsonLoggerCallback(),
                            *callbacks,
                            CompactFinishedTrials(),
                        ],
                        verbose=0,
                    ),
                )
            with leave_filed_trials_out():
                grid = tuner.fit()
            ended = True  # Tune returned (finished or interrupted): its saved state is final
            return grid
        finally:
            self.stop_signals.unwatch()
            _ACTIVE.pop("session", None)
            resumecheck.record_state(self.out, exp_path, ended=ended)

    def on_tune_setup(self) -> None:
        """Tune's run has installed its signal handlers: note the signals that stop it."""
        self.stop_signals.watch()

    def _start_line(self, concurrency: int, *, search: bool) -> None:
        """The one line a person reads when trials start: how many, how many at once, an
        estimate, and where the report will be."""
        ids = {t.id for t in self.plan.trials}
        finished = self.progress.finished
        self.console = SweepConsole(None if search else len(ids), len(finished & ids))
        todo = [t for t in self.plan.trials if t.id not in finished]
        estimate = None
        if not search:
            try:
                estimate = estimate_sweep(
                    self.plan, todo, concurrency, self.resources["GPU"], self.step_timer
                )
            except Exception as exc:  # noqa: BLE001 - an estimate must not stop a sweep
                log.debug("no estimate: %r", exc)
        gpu = f" + {self.resources['GPU']:g} GPU" if self.resources["GPU"] else ""
        log.info(
            "%s",
            self.console.start_line(
                self.cfg.name,
                None if search else len(todo),
                concurrency,
                f"{self.resources['CPU']:g} CPU{gpu}",
                estimate,
                str(self.out / ("search" if search else "report/report.html")),
            ),
        )

    # ------------------------------------------------------------------------- callbacks
    def _payload(self, spec: TrialSpec, result: dict[str, Any]) -> dict[str, Any] | None:
        """The trial's final payload: taken from the inbox by the token of its final report (a
        report holding the whole payload, as older trainables sent it, is the payload). None,
        with the trial filed as failed, when the inbox has none under that token."""
        token = result.get(PAYLOAD_KEY)
        if token is None:
            return result
        payload = collect(self.inbox, str(token))
        if payload is None:
            err = f"{spec.id}: its final results were not in the driver's inbox (token {token})"
            log.error("%s; filed as failed, --resume runs it again", err)
            self.store.write_failure(spec, err)
            self.progress.trial_failed(spec)
        return payload

    def on_result(self, config: dict[str, Any], result: dict[str, Any]) -> None:
        if result.get(SKIPPED_KEY) or not result.get(FINAL_KEY):
            return
        spec, vcfg = spec_from_config(self.plan, config)
        found = self._payload(spec, result)
        if found is None:
            return
        result = found
        self.store.write_trial(spec, result)
        n_done = self.progress.mark_done(spec)
        # A search fold trial's test score is no estimate of anything (its fold's validation
        # subjects are other folds' test subjects): it stays in the prediction log, unsummarised.
        split = "val" if self.cfg.search is not None else "test"
        sc = result.get(f"{split}_scores") or {}
        n_clips = sum(1 for s in result["predictions"].get("split", []) if s == split)
        log.info(
            "[%s] %s done in %.1f s: %s acc %.3f on %d clip(s)%s; %s",
            "search" if split == "val" else f"{n_done}/{len(self.plan.trials)}",
            spec.id,
            (result.get("timings") or {}).get("total", 0.0),
            split,
            sc.get("acc", float("nan")),
            n_clips,
            f" (resumed at epoch {result['resumed_from']})" if result.get("resumed_from") else "",
            self.console.trial_done(n_done) if self.console else "",
        )
        tracked = (
            result if split == "test" else {k: v for k, v in result.items() if k != "test_scores"}
        )
        self.progress.track_trial(spec, vcfg, tracked, bool(result.get("oracle")))

    def on_complete(self, trial: Any) -> None:
        """A finished fold needs no checkpoint (its results are in trials/): free the storage,
        which for the paper model is ~90 MB per trial."""
        try:
            fs, root = trial.storage.storage_filesystem, trial.storage.trial_fs_path
            for info in fs.get_file_info(pafs.FileSelector(root, allow_not_found=True)):
                if info.type == pafs.FileType.Directory and info.base_name.startswith(
                    "checkpoint_"
                ):
                    fs.delete_dir(info.path)
        except Exception as exc:  # noqa: BLE001 - disk hygiene must not fail the sweep
            log.warning("could not delete the checkpoints of %s: %r", trial, exc)

    def on_recover(self, config: dict[str, Any], trial: Any) -> None:
        spec, _ = spec_from_config(self.plan, config)
        if self._filed_before(spec, f"attempt {trial.num_failures}"):
            return
        log.warning(
            "%s failed (failure %d of at most %d); retrying from its last checkpoint",
            spec.id,
            trial.num_failures,
            self.cfg.resources.max_failures,
        )

    def _filed_before(self, spec: TrialSpec, what: str) -> bool:
        """A trial whose results were filed before a driver was killed can come back from
        Tune's restored state pointing at the checkpoint deleted when it finished: its errors
        then lose nothing."""
        if spec.id not in self.done_at_start:
            return False
        log.info(
            "%s: finished and filed before the restart; Tune's restored state points at its "
            "deleted checkpoint (%s; nothing is lost, Tune's errors about it can be ignored)",
            spec.id, what,
        )  # fmt: skip
        return True

    def on_error(self, config: dict[str, Any], trial: Any) -> None:
        spec, _ = spec_from_config(self.plan, config)
        if self._filed_before(spec, "given up"):
            return
        if _checkpoint_deleted(trial):
            # Tune's restored state points at the checkpoint deleted when the trial finished
            # under an earlier driver, whose results were deleted since: not a failure of the
            # trial; missing_trials() lists it and it runs again in an experiment of its own
            log.warning(
                "%s: finished under an earlier driver, its results deleted since and its "
                "checkpoint with them; it runs again from the start",
                spec.id,
            )
            return
        err = _trial_error(trial)
        self.store.write_failure(spec, str(err), attempts=trial.num_failures)
        log.error(
            "%s failed permanently after %d attempt(s): %s",
            spec.id,
            trial.num_failures,
            str(err).strip().splitlines()[-1] if str(err).strip() else err,
        )
        self.progress.trial_failed(spec)

    # ----------------------------------------------------------------------------- finish
    def _write_report(self, summary: Summary | None = None) -> dict[str, Path]:
        """OUT/report/ (tables, figures, HTML): what `mer report OUT` writes, from the summary's
        full pass (`summary`: its run and table, not read and computed again). A failure here is
        logged with its traceback and leaves the sweep's results, already on disk, as they are."""
        try:
            if summary is not None and summary.run is not None:
                written = write_report(self.out, run=summary.run, table=summary.table)
            else:
                written = write_report(self.out)
        except Exception:  # noqa: BLE001 - reporting must not lose a finished sweep
            log.exception("could not write the report; run `mer report %s` to retry", self.out)
            return {}
        log.info("report: %s", written.get("html", self.out / "report"))
        return written

    def finish(self) -> Summary:
        # the one full pass over the results folder: summary files, then the report from the
        # same rows; the per-trial pool must agree with it
        summary = write_summary(self.out, self.plan)
        self.progress.check(summary)
        self.progress.wait_figures()
        report = self._write_report(summary)
        # an interrupted run logs no W&B summary runs: its variants are only paused, and the
        # --resume that finishes them logs the real ones
        if not self.interrupted:
            self.progress.log_sweep(summary, report)
        if self.wandb_mode == "online" and not self.interrupted:
            save_after_sweep(self.cfg, self.out)
        self.close()
        return summary

    def close(self) -> None:
        """End the run: W&B, the Ray this session started, the results folder's lock."""
        try:
            self.tracker.close()
            if self.started_ray:
                ray.shutdown()
                self.started_ray = False
        finally:
            if self.claim is not None:
                self.claim.release()
                self.claim = None


def open_session(
    cfg: ExperimentConfig,
    opts: RunOptions,
    variants: dict[str, ExperimentConfig] | None = None,
    *,
    startup: Startup | None = None,
) -> Session:
    """Claim and check the output folder, prepare data, plan, write config/plan/environment,
    start Ray. The session holds the folder until `Session.close` (or the process ends).

    `startup`: the folder claim and Ray start the command line began before importing this
    module (mer.sweep.startup); begun here when None. Ray starts in the background meanwhile (a
    local Ray takes seconds, mostly waiting for its processes) while the driver prepares data
    and plans."""
    startup = startup if startup is not None else begin(cfg, opts)
    started = False
    try:
        vcfgs = dict(variants) if variants is not None else plan_mod.variant_configs(cfg)
        data = prepare_datasets(vcfgs, used_by=f"sweep {cfg.name} ({opts.out.resolve()})")

        def samples_for(data_cfg: Any) -> tuple[Any, list[str]]:
            d = data[plan_mod.data_key_of(data_cfg)]
            return d.samples, list(d.class_names)

        plan = plan_mod.build_plan(
            cfg,
            samples_for,
            stats_for=plan_mod.model_stats_or_none,
            variants=vcfgs,
            faces_for=lambda data_cfg: data[plan_mod.data_key_of(data_cfg)].faces,
        )
        started = startup.ray_start.result()
        remote = bool(opts.address)
        cluster, ceiling = dict(ray.cluster_resources()), autoscaler_ceiling() if remote else {}
        resources = trial_resources(cfg, cluster, ceiling, remote=remote)
        cluster_capacity = capacity(cfg, cluster, ceiling, remote=remote)
        check_devices(plan, resources)
        experiment = outdir.experiment_for(cfg, opts)
        if startup.clear:  # data, plan and cluster are ready: now the old results may go
            outdir.clear_out_dir(opts.out, cfg)
        write_run_files(opts.out, plan, argv=opts.argv)
        outdir.record_storage(opts, experiment)
        session = Session(cfg, opts, plan, data, started, resources, cluster_capacity, experiment)
        session.claim = startup.held
        session.step_timer = startup.timer
        startup.take()
        return session
    except BaseException:
        startup.close()  # shuts down a Ray started for this run, releases the folder
        raise

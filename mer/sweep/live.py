"""A trial's own W&B run, written by the trial process while it trains: live curves.

Why in the trial and not from the driver: the driver hears of a trial's epochs only every
`report_every_s` (each report is a round trip), and of its full history only when it ends, so a
run written there shows a finished curve whose 60 epochs carry timestamps within a fraction of a
second. Logged here, each epoch reaches W&B when it ends (`--wandb online` shows the curve grow)
with its real time. `run_fold` stays free of W&B: the epochs arrive through the trial's reporter
(mer.sweep.trial.LiveReporter), which hands them to `LiveRun`.

When a trial does not log itself, the driver does it after the trial (WandbTracker.trial), with the
epochs' recorded end times: offline runs of trials on another node than the driver (they would
land in that node's copy of the results folder), and trials whose W&B start failed here. W&B
problems never fail a trial: they are logged once and the driver takes over.

One run id per trial and sweep (`trial_run_id`): a retried or resumed trial continues its run
(online: W&B resumes it; offline: the earlier attempt's folder is replaced, and the epochs
restored from the checkpoint are logged again with their recorded times).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mer.config import ExperimentConfig
from mer.experiment.layout import WANDB_ORACLE, WANDB_SWEEP_ID
from mer.experiment.plan import TrialSpec
from mer.sweep.payloads import history_row, history_rows, trial_config, trial_summary

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LiveSettings:
    """What a trial needs to open its run (picklable: Tune hands it to every trial)."""

    project: str
    entity: str | None
    mode: str  # offline | online
    dir: str  # the results folder: offline runs go to DIR/wandb
    sweep: str
    sweep_id: str
    tags: tuple[str, ...] = ()
    searched: tuple[str, ...] = ()  # a search's keys: its trials log no test scores (they
    # estimate nothing) and log their values of these keys (payloads.trial_summary)
    driver_node: str | None = None  # Ray node of the driver (offline runs are written there)


def sweep_id(out: Path) -> str:
    """This results folder's W&B sweep id (OUT/wandb/sweep_id): made once, kept by --resume,
    gone with --overwrite, so trial run ids are stable across restarts of one sweep only."""
    path = Path(out) / "wandb" / WANDB_SWEEP_ID
    if path.is_file():
        found = path.read_text().strip()
        if found:
            return found
    path.parent.mkdir(parents=True, exist_ok=True)
    made = secrets.token_hex(4)
    path.write_text(made + "\n")
    return made


def trial_run_id(settings: LiveSettings, trial_id: str) -> str:
    """The trial's W&B run id: the sweep id and a hash of the trial id (W&B ids allow no '/')."""
    digest = hashlib.sha1(trial_id.encode()).hexdigest()[:12]
    return f"{settings.sweep_id}-{digest}"


def init_run(*, project: str, entity: str | None, dir: str, mode: str, **kwargs: Any) -> Any:
    """`wandb.init` as every mer run starts: quiet (no console capture, no system stats, no
    code saving) and one run per call in a process that may write several."""
    import wandb  # lazy: wandb takes a second to import; trials without W&B never need it

    return wandb.init(
        project=project,
        entity=entity,
        dir=dir,
        mode=mode,
        reinit="create_new",
        settings=wandb.Settings(console="off", silent=True, x_disable_stats=True, save_code=False),
        **kwargs,
    )


def _tags(oracle: bool, labels: tuple[str, ...] | list[str], extra: tuple[str, ...]) -> list[str]:
    out = ["trial"] + ([WANDB_ORACLE] if oracle else [])
    out += [t for t in labels if t not in out]
    return out + [t for t in extra if t not in out]


class LiveRun:
    """The W&B run of one trial attempt, opened at its first epoch (a trial that fails before
    training leaves no run) and finished with the trial's summary, or as failed."""

    def __init__(
        self,
        settings: LiveSettings,
        spec: TrialSpec,
        cfg: ExperimentConfig,
        oracle: bool,
        labels: tuple[str, ...] | list[str] = (),
    ):
        self.settings = settings
        self.spec = spec
        self.oracle = oracle
        self.labels = tuple(labels)
        self.cfg = cfg
        self.config = trial_config(cfg, spec, oracle, settings.sweep)
        self.run_id = trial_run_id(settings, spec.id)
        self.run: Any = None
        self.broken = False  # W&B failed here: stop trying, the driver logs the run
        self._restored: list[tuple[dict, int]] = []

    # ------------------------------------------------------------------------------ events
    def restored(self, history: list[dict] | None, ended_at: list[float] | None) -> None:
        """Epochs restored from a checkpoint (a retry or --resume): logged first, with the
        times they ended in the earlier attempt."""
        self._restored = history_rows(history or [], ended_at)

    def epoch(self, rec: dict[str, Any], ended_at: float) -> None:
        """One epoch has ended: log it now, stamped with the time it ended (the first epoch's
        row waits for W&B to start)."""
        if not self._open():
            return
        row, step = history_row(rec, ended_at)
        self._guard(lambda: self.run.log(row, step=step))

    def finish(self, payload: dict[str, Any]) -> dict[str, str] | None:
        """The trial's summary, then finish; what the payload records (LIVE_KEY), or None when
        this run is incomplete and the driver must log the trial."""
        if self.run is None and not self.broken:
            self._open()  # a trial that trained no epoch here (resumed at its last one)
        if self.run is None or self.broken:
            self._close(exit_code=1)
            return None
        summary = dict(payload)
        if self.settings.searched:
            summary.pop("test_scores", None)
        if payload.get("oracle") and not self.oracle:
            self._guard(lambda: setattr(self.run, "tags", (*self.run.tags, WANDB_ORACLE)))
        values = trial_summary(summary, self.cfg, self.settings.searched)
        self._guard(lambda: self.run.summary.update(values))
        ok = not self.broken
        self._close(exit_code=0)
        return {"run_id": self.run_id, "mode": self.settings.mode} if ok else None

    def fail(self) -> None:
        """The attempt failed: the run ends as failed (a retry continues it)."""
        self._close(exit_code=1)

    # --------------------------------------------------------------------------- machinery
    def _open(self) -> bool:
        if self.run is not None or self.broken:
            return self.run is not None and not self.broken
        s = self.settings

        def start() -> None:
            if s.mode == "offline":  # an earlier attempt's folder: this run replaces it
                for old in (Path(s.dir) / "wandb").glob(f"offline-run-*-{self.run_id}"):
                    shutil.rmtree(old, ignore_errors=True)
            self.run = init_run(
                project=s.project,
                entity=s.entity,
                dir=s.dir,
                mode=s.mode,
                id=self.run_id,
                resume="allow",
                group=f"{s.sweep}/{self.spec.variant}",
                job_type=self.spec.variant,
                name=self.spec.id,
                tags=_tags(self.oracle, self.labels, s.tags),
                config=self.config,
            )
            for row, step in self._restored:
                self.run.log(row, step=step)

        self._guard(start)
        return self.run is not None and not self.broken

    def _guard(self, action: Any) -> None:
        if self.broken:
            return
        try:
            action()
        except Exception as exc:  # noqa: BLE001 - tracking must not fail a trial
            self.broken = True
            log.warning(
                "%s: W&B live logging stopped (%r); the sweep's driver logs this trial's run "
                "when it ends",
                self.spec.id,
                exc,
            )

    def _close(self, exit_code: int) -> None:
        run, self.run = self.run, None
        if run is None:
            return
        try:
            run.finish(exit_code=exit_code)
            import wandb  # lazy: as in init_run

            # finish() can return before wandb-core has written the run's files, and a trial's
            # process may be stopped right after it reports
            wandb.teardown()
        except Exception as exc:  # noqa: BLE001 - tracking must not fail a trial
            self.broken = True
            log.warning("%s: W&B run did not finish cleanly: %r", self.spec.id, exc)


def open_live_run(
    settings: LiveSettings | None,
    spec: TrialSpec,
    cfg: ExperimentConfig,
    oracle: bool,
    labels: tuple[str, ...] | list[str] = (),
    *,
    node: str | None = None,
) -> LiveRun | None:
    """The trial's live run, or None when this trial must leave its run to the driver: no W&B,
    or offline on another node than the driver's (offline files belong in the driver's folder).
    `node`: the Ray node this trial runs on (default: asked from Ray; none without Ray)."""
    if settings is None:
        return None
    elsewhere = (node or _this_node()) not in (None, settings.driver_node)
    if settings.mode == "offline" and settings.driver_node is not None and elsewhere:
        return None
    return LiveRun(settings, spec, cfg, oracle, labels)


def _this_node() -> str | None:
    try:
        import ray  # lazy: only Tune trials get here

        if ray.is_initialized():
            return ray.get_runtime_context().get_node_id()
    except Exception:  # noqa: BLE001 - unknown: assume the driver's node
        return None
    return None

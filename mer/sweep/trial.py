"""One trial = one (variant, fold, seed) → `mer.train.run_fold`, reported through a Reporter.

The same function runs inside a Ray Tune trial (`tune_trainable`, TuneReporter: `tune.report`,
checkpoints in Tune's storage) and in the current process for debugging (`run_sweep.py --trial`,
LocalReporter: no Ray, breakpoints work). run_fold knows nothing of either: it calls FoldHooks.

What a trial reports:
- progress results (`mer_final: False`): on every checkpoint epoch (with the checkpoint) and at
  most every `report_every_s` seconds otherwise, since each report is a round trip to the driver;
- one final payload (`mer_final: True`) holding the prediction log, history and scores, which the
  driver's results callback writes to `OUT/trials/...` (the driver owns the results folder, so
  trials on other nodes need no shared file system).

Tune sees only what it needs (TuneReporter): progress results carry `epoch` and the trial id, the
final one a token of the payload, which travels through the driver's inbox actor instead of
Tune's state (mer.sweep.inbox), plus a search fold's validation labels for the searcher.

Trial hooks (mer.sweep.hooks.TrialHooks, handed to trials by the driver so they work on any
node) run at the trial's start, after each checkpoint and at its end: profiling, chaos testing,
and the test suite's fault injection plug in there.
"""

from __future__ import annotations

import logging
import os
import resource
import socket
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from mer.config import ExperimentConfig, with_overrides
from mer.experiment.plan import SweepPlan, TrialSpec
from mer.sweep.hooks import NoTrialHooks, TrialHooks
from mer.sweep.inbox import PAYLOAD_KEY, hand_over
from mer.sweep.live import LiveRun, LiveSettings, open_live_run
from mer.sweep.payloads import EPOCH_TIMES_KEY, LIVE_KEY

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "state.pt"
FINAL_KEY = "mer_final"
SKIPPED_KEY = "mer_skipped"
PROGRESS_KEYS = ("epoch", "loss", "lr", "train_acc", "val_uf1", "val_uar", "val_acc", "seconds")
# What Tune gets of a progress result: nothing schedules on the scores (the ablation grid has no
# scheduler, the searcher pools validation labels), and every numeric key costs each trial's Tune
# state a running analysis; the per-epoch values are in the trial's history.csv.
TUNE_KEYS = ("epoch", "trial")
# A Tune checkpoint at most this often per trial (a sooner one is left out; the next one after
# the interval is kept). Tune keeps 2 per trial (CheckpointConfig.num_to_keep, which bounds each
# trial's checkpoint list in its state) and forces a full experiment snapshot whenever one trial
# checkpoints twice between snapshots; Tune's own snapshot period is 10 s or more, so at one
# checkpoint per minute the forcing never comes, whatever `train.checkpoint_every` and the epoch
# time are. A retry loses at most this long (plus checkpoint_every epochs) of training.
MIN_CHECKPOINT_INTERVAL_S = 60.0


def final_report(payload: dict[str, Any], token: str, *, search: bool = False) -> dict[str, Any]:
    """What Tune gets of a final payload handed to the inbox under `token`: the final flag, the
    trial id and the token; for a search fold also `val_true`/`val_pred`, its validation rows'
    labels (what the searcher reads, mer.sweep.search.fold_trial)."""
    out: dict[str, Any] = {FINAL_KEY: True, "trial": payload.get("trial"), PAYLOAD_KEY: token}
    if search:
        pred = payload.get("predictions") or {}
        rows = [i for i, s in enumerate(pred.get("split", [])) if s == "val"]
        out["val_true"] = [int(pred["true"][i]) for i in rows]
        out["val_pred"] = [int(pred["pred"][i]) for i in rows]
    return out


# ---------------------------------------------------------------------------------- reporters
class Reporter(Protocol):
    def report(
        self, metrics: dict[str, Any], checkpoint: dict[str, Any] | None = None
    ) -> bool | None:
        """Send a result (and optionally a run_fold state dict to resume from); False when the
        checkpoint was left out."""

    def restore(self) -> dict[str, Any] | None:
        """The state dict to resume from (a retry or `--resume`), or None."""

    def epoch(self, record: dict[str, Any], ended_at: float) -> None:
        """Every epoch's full record as it ends (local and cheap: no round trip to the driver;
        `report` is the rate-limited channel)."""


def _save_state(state: dict[str, Any], folder: Path) -> None:
    import torch  # lazy: torch takes seconds to import; the driver imports this module too

    tmp = folder / (CHECKPOINT_FILE + ".tmp")
    torch.save(state, tmp)
    tmp.replace(folder / CHECKPOINT_FILE)


def _load_state(folder: Path) -> dict[str, Any]:
    import torch  # lazy: torch takes seconds to import; the driver imports this module too

    return torch.load(folder / CHECKPOINT_FILE, map_location="cpu", weights_only=True)


class TuneReporter:
    """Reports through `ray.tune.report`; checkpoints as Tune checkpoints (retries resume).

    With an `inbox` (the driver's, mer.sweep.inbox) Tune gets only TUNE_KEYS of a progress
    result and `final_report` of the final payload, which goes to the inbox; without one (a
    trial outside a sweep session, e.g. bench.throughput's), every result goes to Tune whole.
    `search`: the trial is a search fold, whose final report carries its validation labels."""

    def __init__(
        self,
        inbox: Any = None,
        *,
        search: bool = False,
        min_checkpoint_interval_s: float = 0.0,
    ):
        self.inbox = inbox
        self.search = search
        self.min_checkpoint_interval_s = min_checkpoint_interval_s
        self._last_checkpoint: float | None = None

    def report(self, metrics: dict[str, Any], checkpoint: dict[str, Any] | None = None) -> bool:
        """Report; False when a checkpoint came sooner than `min_checkpoint_interval_s` after
        the last one and was left out (see MIN_CHECKPOINT_INTERVAL_S)."""
        from ray import tune  # lazy: the --trial debug path runs without Ray

        if self.inbox is not None:
            metrics = self._for_tune(metrics)
        now = time.monotonic()
        last = self._last_checkpoint
        too_soon = last is not None and now - last < self.min_checkpoint_interval_s
        if checkpoint is not None and too_soon:  # left out: MIN_CHECKPOINT_INTERVAL_S
            tune.report(metrics)
            return False
        if checkpoint is None:
            tune.report(metrics)
            return True
        with tempfile.TemporaryDirectory(prefix="mer-ckpt-") as tmp:
            _save_state(checkpoint, Path(tmp))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))
        self._last_checkpoint = now
        return True

    def _for_tune(self, metrics: dict[str, Any]) -> dict[str, Any]:
        if not metrics.get(FINAL_KEY):
            return {k: metrics[k] for k in TUNE_KEYS if k in metrics}
        return final_report(metrics, hand_over(self.inbox, metrics), search=self.search)

    def epoch(self, record: dict[str, Any], ended_at: float) -> None:
        pass  # the driver hears of epochs through `report`

    def restore(self) -> dict[str, Any] | None:
        from ray import tune  # lazy: the --trial debug path runs without Ray

        ckpt = tune.get_checkpoint()
        if ckpt is None:
            return None
        with ckpt.as_directory() as folder:
            return _load_state(Path(folder))


class LocalReporter:
    """In-process reporting for `--trial`: results kept in a list, checkpoints in a folder."""

    def __init__(self, checkpoint_dir: Path | None = None, *, resume: bool = False):
        self.results: list[dict[str, Any]] = []
        self.checkpoint_dir = checkpoint_dir
        self.resume = resume

    def report(self, metrics: dict[str, Any], checkpoint: dict[str, Any] | None = None) -> None:
        self.results.append(dict(metrics))
        if not metrics.get(FINAL_KEY):
            log.info("epoch %s: %s", metrics.get("epoch"), _fmt_progress(metrics))
        if checkpoint is not None and self.checkpoint_dir is not None:
            self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
            _save_state(checkpoint, self.checkpoint_dir)

    def epoch(self, record: dict[str, Any], ended_at: float) -> None:
        pass  # `report` logs the progress line

    def restore(self) -> dict[str, Any] | None:
        if not self.resume or self.checkpoint_dir is None:
            return None
        if not (self.checkpoint_dir / CHECKPOINT_FILE).exists():
            log.info("no checkpoint in %s: starting the fold from scratch", self.checkpoint_dir)
            return None
        return _load_state(self.checkpoint_dir)


class LiveReporter:
    """Another reporter plus the trial's own W&B run (mer.sweep.live): every epoch is logged as
    it ends, the run is finished with the final payload, which then records it (LIVE_KEY) so the
    driver logs no second run."""

    def __init__(self, inner: Reporter, run: LiveRun):
        self.inner = inner
        self.run = run

    def restore(self) -> dict[str, Any] | None:
        state = self.inner.restore()
        if state is not None:
            self.run.restored(state.get("history"), state.get(EPOCH_TIMES_KEY))
        return state

    def epoch(self, record: dict[str, Any], ended_at: float) -> None:
        self.inner.epoch(record, ended_at)
        self.run.epoch(record, ended_at)

    def report(
        self, metrics: dict[str, Any], checkpoint: dict[str, Any] | None = None
    ) -> bool | None:
        if metrics.get(FINAL_KEY):
            live = self.run.finish(metrics)
            if live is not None:
                metrics[LIVE_KEY] = live  # in the payload itself: execute_trial returns it too
        return self.inner.report(metrics, checkpoint)


def _fmt_progress(m: dict[str, Any]) -> str:
    return ", ".join(
        f"{k} {m[k]:.4g}" for k in PROGRESS_KEYS[1:] if isinstance(m.get(k), (int, float))
    )


# ---------------------------------------------------------------------------------- the trial
def execute_trial(
    spec: TrialSpec,
    cfg: ExperimentConfig,
    data: Any,
    fold: Any,
    reporter: Reporter,
    *,
    hooks: TrialHooks | None = None,
    report_every_s: float = 30.0,
    plan_oracle: bool = False,
    stop_marker: str | None = None,
    plan_labels: Sequence[str] = (),
) -> dict[str, Any]:
    """Train and evaluate one fold; report progress, checkpoints and the final payload.

    `hooks` (default: none) run at the start, after each checkpoint and at the end, in this
    process. `stop_marker`: a file whose appearance ends training early (a search configuration
    that was pruned); checked once per epoch. `plan_labels`: the variant's labels as W&B tags
    (VariantPlan.wandb_tags: partial, subject-dependent), recorded in the payload's `labels`.
    """
    hooks = hooks or NoTrialHooks()
    started = time.time()
    resume = reporter.restore()
    resumed_epoch = int(resume["epoch"]) if resume is not None and "epoch" in resume else None
    node = _node_id()
    if resumed_epoch is not None:
        log.info("%s: resuming from the checkpoint of epoch %d", spec.id, resumed_epoch)
    ended = {"node": node, "resumed_from": resumed_epoch, "started": started}
    try:
        hooks.on_start(spec, {"node": node, "resumed_from": resumed_epoch, **_device_info(cfg)})
        payload = _train(
            spec, cfg, data, fold, reporter, hooks, resume, report_every_s, plan_oracle, stop_marker
        )
    except BaseException as exc:
        hooks.on_end(spec, ended, exc)
        raise
    payload.update(resumed_from=resumed_epoch, node=node, started_at=started)
    payload["labels"] = list(plan_labels)
    hooks.on_end(spec, ended, None)
    reporter.report(payload)
    return payload


def _train(
    spec: TrialSpec,
    cfg: ExperimentConfig,
    data: Any,
    fold: Any,
    reporter: Reporter,
    hooks: TrialHooks,
    resume: dict[str, Any] | None,
    report_every_s: float,
    plan_oracle: bool,
    stop_marker: str | None,
) -> dict[str, Any]:
    from mer.train import FoldHooks, run_fold  # lazy: imports torch (seconds)

    pending: dict[str, Any] = {}
    last_report = [time.monotonic()]
    # when each epoch ended (wall clock), restored epochs included: W&B timestamps
    n_restored = len((resume or {}).get("history") or [])
    ended_at = [float(t) for t in (resume or {}).get(EPOCH_TIMES_KEY) or []][:n_restored]
    ended_at = ended_at if len(ended_at) == n_restored else []

    def save_checkpoint(state: dict[str, Any]) -> None:
        pending["state"] = state  # sent with the same epoch's record in on_epoch

    def on_epoch(rec: dict[str, Any]) -> None:
        ended_at.append(time.time())
        reporter.epoch(rec, ended_at[-1])
        if "state" in pending:  # the epoch times travel with the checkpoint (run_fold ignores them)
            pending["state"][EPOCH_TIMES_KEY] = list(ended_at)
        metrics = {k: rec[k] for k in PROGRESS_KEYS if isinstance(rec.get(k), (int, float))}
        metrics.update({FINAL_KEY: False, "trial": spec.id})
        state = pending.pop("state", None)
        if state is not None:
            kept = reporter.report(metrics, checkpoint=state) is not False
            last_report[0] = time.monotonic()
            if kept:
                hooks.after_checkpoint(spec, int(rec.get("epoch", 0)))
        elif time.monotonic() - last_report[0] >= report_every_s:
            reporter.report(metrics)
            last_report[0] = time.monotonic()

    cpu0 = _cpu_seconds()
    result = run_fold(
        cfg,
        data,
        fold,
        spec.seed,
        hooks=FoldHooks(
            on_epoch=on_epoch,
            save_checkpoint=save_checkpoint,
            resume_from=resume,
            should_stop=(lambda: Path(stop_marker).exists()) if stop_marker else None,
        ),
    )
    ended = time.time()
    payload = {
        FINAL_KEY: True,
        "trial": spec.id,
        "variant": spec.variant,
        "fold": spec.fold,
        "fold_index": spec.fold_index,
        "seed": spec.seed,
        "oracle": bool(result.oracle) or plan_oracle,
        "class_names": list(data.class_names),  # what the integer classes of the logs mean
        "predictions": result.predictions.to_dict(orient="list"),
        "history": [dict(r) for r in result.history],
        EPOCH_TIMES_KEY: ended_at if len(ended_at) == len(result.history) else None,
        "selected_epoch": int(result.selected_epoch),
        "test_scores": dict(result.test_scores),
        "val_scores": dict(result.val_scores) if result.val_scores is not None else None,
        "timings": {**result.timings, "cpu": _cpu_seconds() - cpu0},
        "params": int(result.params),
        "stopped": bool(getattr(result, "stopped", False)),
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
        "ended_at": ended,
    }
    return payload


def _cpu_seconds() -> float:
    """CPU time of this process so far (all threads): trial cost independent of machine load."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _node_id() -> str | None:
    try:
        import ray  # lazy: the --trial debug path runs without Ray

        if ray.is_initialized():
            return ray.get_runtime_context().get_node_id()
    except Exception:  # noqa: BLE001 - diagnostics only
        return None
    return None


def _device_info(cfg: ExperimentConfig) -> dict[str, Any]:
    # lazy: torch takes seconds to import; the driver imports this module too
    import torch

    from mer.training.runtime import resolve_runtime

    info: dict[str, Any] = {"hostname": socket.gethostname()}
    info["cuda_available"] = bool(torch.cuda.is_available())
    info["device"] = str(resolve_runtime(cfg.train).device)  # what run_fold will train on
    info["cuda_visible_devices"] = os.environ.get("CUDA_VISIBLE_DEVICES")
    try:
        import ray  # lazy: the --trial debug path runs without Ray

        if ray.is_initialized():
            info["ray_gpu_ids"] = [str(g) for g in ray.get_gpu_ids()]
    except Exception:  # noqa: BLE001 - diagnostics only
        pass
    return info


def spec_from_config(plan: SweepPlan, config: dict[str, Any]) -> tuple[TrialSpec, ExperimentConfig]:
    """A Tune config → (trial spec, its experiment config).

    Ablation trials carry `{"spec": "<variant>/<fold>/s<seed>"}`. Search trials may instead carry
    `{"variant": <planned variant>, "fold": ..., "seed": ..., "overrides": {dotted: value},
    "label": <result name, e.g. a search configuration id>}`: the overrides are applied to that
    variant's config and results are filed under `label`.
    """
    if "spec" in config:
        spec = plan.spec(str(config["spec"]))
        base = spec.variant
    else:
        base = str(config["variant"])
        found = plan.resolve_trial(f"{base}/{config['fold']}/{int(config['seed'])}")
        spec = TrialSpec(str(config.get("label") or base), found.fold, found.seed, found.fold_index)
    cfg = plan.variants[base].cfg
    overrides = config.get("overrides") or {}
    if overrides:
        cfg = with_overrides(cfg, dict(overrides))
    return spec, cfg


def tune_trainable(
    config: dict[str, Any],
    *,
    plan: SweepPlan,
    data_refs: dict[str, Any],
    done: frozenset[str] = frozenset(),
    hooks: TrialHooks | None = None,
    report_every_s: float = 30.0,
    inbox: Any = None,
    min_checkpoint_interval_s: float = MIN_CHECKPOINT_INTERVAL_S,
    live: LiveSettings | None = None,
) -> None:
    """The Tune function trainable (wrapped with `tune.with_parameters` by the runner).

    `data_refs` maps a variant's data key to an ObjectRef of its PreparedData, put once by the
    driver; only the one this trial needs is fetched (zero-copy from the node's object store).
    `done` lists trials whose results the driver already has (a resumed sweep): they return
    at once instead of training again. `inbox`: the driver's payload inbox (mer.sweep.inbox).
    `live`: the trial logs its own W&B run while it trains (mer.sweep.live; None: the driver
    logs it, or W&B is off).
    """
    # lazy: only Tune trials run this; the --trial debug path imports this module without Ray
    import ray
    from ray import tune

    logging.getLogger("ray.train").setLevel(logging.WARNING)  # "Checkpoint created" per report
    spec, cfg = spec_from_config(plan, config)
    if spec.id in done:
        tune.report({SKIPPED_KEY: True, FINAL_KEY: False, "trial": spec.id})
        return
    base = config.get("variant") or spec.variant
    vp = plan.variants[base]
    data = ray.get(data_refs[vp.data_key])
    fold = plan.fold(TrialSpec(base, spec.fold, spec.seed, spec.fold_index))
    run = open_live_run(live, spec, cfg, vp.oracle, vp.wandb_tags)
    tune_reporter = TuneReporter(
        inbox, search="spec" not in config, min_checkpoint_interval_s=min_checkpoint_interval_s
    )
    reporter: Reporter = tune_reporter if run is None else LiveReporter(tune_reporter, run)
    try:
        execute_trial(
            spec,
            cfg,
            data,
            fold,
            reporter,
            hooks=hooks,
            report_every_s=report_every_s,
            plan_oracle=vp.oracle,
            stop_marker=config.get("cancel_marker"),
            plan_labels=vp.wandb_tags,
        )
    except BaseException:
        if run is not None:
            run.fail()
        raise

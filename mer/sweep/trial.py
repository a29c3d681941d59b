"""One trial = one (variant, fold, seed) → `mer.train.run_fold`, reported through a Reporter.

The same function runs inside a Ray Tune trial (`tune_trainable`, TuneReporter: `tune.report`,
checkpoints in Tune's storage) and in the current process for debugging (`run_sweep.py --trial`,
LocalReporter: no Ray, breakpoints work). run_fold knows nothing of either: it calls FoldHooks.

What a trial reports:
- progress results (`mer_final: False`): on every checkpoint epoch (with the checkpoint) and at
  most every `report_every_s` seconds otherwise, since each report is a round trip to the driver;
- one final result (`mer_final: True`) holding the prediction log, history and scores, which the
  driver's results callback writes to `OUT/trials/...` (the driver owns the results folder, so
  trials on other nodes need no shared file system).

Test hooks (environment variables read by the sweep driver and handed to trials as `TestHooks`,
so they work on any node): MER_TEST_TRIAL_EVENTS=FILE appends one JSON line per trial start/end
(pid, node, timestamps, device, resumed epoch); MER_TEST_FAIL_ONCE=DIR makes trials whose id
matches MER_TEST_FAIL_MATCH (fnmatch, default `*`) raise once right after their first checkpoint
(a marker in DIR remembers it), to exercise retry-from-checkpoint; MER_TEST_FAIL_ALWAYS=PATTERN
makes matching trials always fail at start; MER_TEST_TRIAL_SLEEP=S sleeps S seconds at start;
MER_TEST_TRIAL_BARRIER=N makes a trial wait at start until N trials have started (events file;
at most 120 s), so a test can see how many trials Ray runs at once.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import socket
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from mer.config import ExperimentConfig, with_overrides
from mer.experiment.plan import SweepPlan, TrialSpec
from mer.util.jsonio import dumps

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "state.pt"
FINAL_KEY = "mer_final"
SKIPPED_KEY = "mer_skipped"
PROGRESS_KEYS = ("epoch", "loss", "lr", "train_acc", "val_uf1", "val_uar", "val_acc", "seconds")


class InjectedFailure(RuntimeError):
    """Raised by the MER_TEST_FAIL_* test hooks."""


# --------------------------------------------------------------------------------- test hooks
@dataclass(frozen=True)
class TestHooks:
    """Fault and timing probes for tests (see the module docstring); all off by default."""

    __test__ = False  # not a pytest class

    events: str | None = None
    fail_once_dir: str | None = None
    fail_match: str = "*"
    fail_always: str | None = None
    sleep_s: float = 0.0
    barrier: int = 0

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> TestHooks:
        env = dict(os.environ if env is None else env)
        hooks = cls(
            events=env.get("MER_TEST_TRIAL_EVENTS") or None,
            fail_once_dir=env.get("MER_TEST_FAIL_ONCE") or None,
            fail_match=env.get("MER_TEST_FAIL_MATCH") or "*",
            fail_always=env.get("MER_TEST_FAIL_ALWAYS") or None,
            sleep_s=float(env.get("MER_TEST_TRIAL_SLEEP") or 0.0),
            barrier=int(env.get("MER_TEST_TRIAL_BARRIER") or 0),
        )
        if hooks.active:  # a leftover variable must not silently slow or fail a real sweep
            names = sorted(k for k in env if k.startswith("MER_TEST_") and env[k])
            log.warning("test hooks active (%s): trials may sleep or fail on purpose", names)
        return hooks

    @property
    def active(self) -> bool:
        return (
            bool(self.events or self.fail_once_dir or self.fail_always)
            or self.sleep_s > 0
            or self.barrier > 0
        )

    def event(self, kind: str, spec: TrialSpec, **extra: Any) -> None:
        if not self.events:
            return
        rec = {"event": kind, "trial": spec.id, "time": time.time(), "pid": os.getpid(), **extra}
        with open(self.events, "a") as fh:  # O_APPEND: one short line per write stays whole
            fh.write(dumps(rec, indent=None) + "\n")

    def at_start(self, spec: TrialSpec) -> None:
        if self.fail_always and fnmatch.fnmatchcase(spec.id, self.fail_always):
            raise InjectedFailure(f"MER_TEST_FAIL_ALWAYS: trial {spec.id} fails by request")
        if self.sleep_s > 0:
            time.sleep(self.sleep_s)
        if self.barrier and self.events:
            deadline = time.monotonic() + 120.0
            while self._starts() < self.barrier and time.monotonic() < deadline:
                time.sleep(0.05)

    def _starts(self) -> int:
        with open(self.events) as fh:
            return sum(1 for line in fh if '"event": "start"' in line)

    def after_checkpoint(self, spec: TrialSpec, epoch: int) -> None:
        if not self.fail_once_dir or not fnmatch.fnmatchcase(spec.id, self.fail_match):
            return
        marker = Path(self.fail_once_dir) / f"{spec.safe}.failed"
        if marker.exists():
            return
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(f"{epoch}\n")
        self.event("injected_failure", spec, epoch=epoch)
        raise InjectedFailure(f"MER_TEST_FAIL_ONCE: trial {spec.id} fails after epoch {epoch}")


# ---------------------------------------------------------------------------------- reporters
class Reporter(Protocol):
    def report(self, metrics: dict[str, Any], checkpoint: dict[str, Any] | None = None) -> None:
        """Send a result (and optionally a run_fold state dict to resume from)."""

    def restore(self) -> dict[str, Any] | None:
        """The state dict to resume from (a retry or `--resume`), or None."""


def _save_state(state: dict[str, Any], folder: Path) -> None:
    import torch

    tmp = folder / (CHECKPOINT_FILE + ".tmp")
    torch.save(state, tmp)
    tmp.replace(folder / CHECKPOINT_FILE)


def _load_state(folder: Path) -> dict[str, Any]:
    import torch

    return torch.load(folder / CHECKPOINT_FILE, map_location="cpu", weights_only=True)


class TuneReporter:
    """Reports through `ray.tune.report`; checkpoints as Tune checkpoints (retries resume)."""

    def report(self, metrics: dict[str, Any], checkpoint: dict[str, Any] | None = None) -> None:
        from ray import tune

        if checkpoint is None:
            tune.report(metrics)
            return
        with tempfile.TemporaryDirectory(prefix="mer-ckpt-") as tmp:
            _save_state(checkpoint, Path(tmp))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))

    def restore(self) -> dict[str, Any] | None:
        from ray import tune

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

    def restore(self) -> dict[str, Any] | None:
        if not self.resume or self.checkpoint_dir is None:
            return None
        if not (self.checkpoint_dir / CHECKPOINT_FILE).exists():
            log.info("no checkpoint in %s: starting the fold from scratch", self.checkpoint_dir)
            return None
        return _load_state(self.checkpoint_dir)


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
    test_hooks: TestHooks | None = None,
    report_every_s: float = 30.0,
    plan_oracle: bool = False,
    stop_marker: str | None = None,
    plan_labels: Sequence[str] = (),
) -> dict[str, Any]:
    """Train and evaluate one fold; report progress, checkpoints and the final payload.

    `stop_marker`: a file whose appearance ends training early (a search configuration that was
    pruned); checked once per epoch. `plan_labels`: the variant's labels as W&B tags
    (VariantPlan.wandb_tags: partial, subject-dependent), recorded in the payload's `labels`.
    """
    hooks = test_hooks or TestHooks()
    started = time.time()
    resume = reporter.restore()
    resumed_epoch = int(resume["epoch"]) if resume is not None and "epoch" in resume else None
    node = _node_id()
    hooks.event("start", spec, node=node, resumed_from=resumed_epoch, **_device_info(cfg))
    if resumed_epoch is not None:
        log.info("%s: resuming from the checkpoint of epoch %d", spec.id, resumed_epoch)
    try:
        payload = _train(
            spec, cfg, data, fold, reporter, hooks, resume, report_every_s, plan_oracle, stop_marker
        )
    except BaseException as exc:
        hooks.event("error", spec, error=repr(exc)[:300])
        raise
    payload.update(resumed_from=resumed_epoch, node=node, started_at=started)
    payload["labels"] = list(plan_labels)
    hooks.event("end", spec, node=node, resumed_from=resumed_epoch, started=started)
    reporter.report(payload)
    return payload


def _train(
    spec: TrialSpec,
    cfg: ExperimentConfig,
    data: Any,
    fold: Any,
    reporter: Reporter,
    hooks: TestHooks,
    resume: dict[str, Any] | None,
    report_every_s: float,
    plan_oracle: bool,
    stop_marker: str | None,
) -> dict[str, Any]:
    from mer.train import FoldHooks, run_fold

    hooks.at_start(spec)

    pending: dict[str, Any] = {}
    last_report = [time.monotonic()]

    def save_checkpoint(state: dict[str, Any]) -> None:
        pending["state"] = state  # sent with the same epoch's record in on_epoch

    def on_epoch(rec: dict[str, Any]) -> None:
        metrics = {k: rec[k] for k in PROGRESS_KEYS if isinstance(rec.get(k), (int, float))}
        metrics.update({FINAL_KEY: False, "trial": spec.id})
        state = pending.pop("state", None)
        if state is not None:
            reporter.report(metrics, checkpoint=state)
            last_report[0] = time.monotonic()
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
    import resource

    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _node_id() -> str | None:
    try:
        import ray

        if ray.is_initialized():
            return ray.get_runtime_context().get_node_id()
    except Exception:  # noqa: BLE001 - diagnostics only
        return None
    return None


def _device_info(cfg: ExperimentConfig) -> dict[str, Any]:
    import torch

    from mer.training.runtime import resolve_runtime

    info: dict[str, Any] = {"hostname": socket.gethostname()}
    info["cuda_available"] = bool(torch.cuda.is_available())
    info["device"] = str(resolve_runtime(cfg.train).device)  # what run_fold will train on
    info["cuda_visible_devices"] = os.environ.get("CUDA_VISIBLE_DEVICES")
    try:
        import ray

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
    test_hooks: TestHooks | None = None,
    report_every_s: float = 30.0,
) -> None:
    """The Tune function trainable (wrapped with `tune.with_parameters` by the runner).

    `data_refs` maps a variant's data key to an ObjectRef of its PreparedData, put once by the
    driver; only the one this trial needs is fetched (zero-copy from the node's object store).
    `done` lists trials whose results the driver already has (a resumed sweep): they return
    at once instead of training again.
    """
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
    execute_trial(
        spec,
        cfg,
        data,
        fold,
        TuneReporter(),
        test_hooks=test_hooks,
        report_every_s=report_every_s,
        plan_oracle=vp.oracle,
        stop_marker=config.get("cancel_marker"),
        plan_labels=vp.wandb_tags,
    )

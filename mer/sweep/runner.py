"""Runs a sweep's trials with Ray Tune: connect, prepare data once, run, collect, summarise.

The driver prepares every distinct dataset of the sweep once (variants whose `data` sections
differ, e.g. AU policy on/off, get one each), puts each in the object store, and hands trials the
references (`tune.with_parameters`): trials never read media or caches from disk. A Tune callback
files each finished trial's predictions under `OUT/trials/` as it arrives, retries failed trials
from their last checkpoint (`FailureConfig`), records permanent failures, and writes W&B runs. A
restarted driver (`--resume`) restores the Tune experiment and skips trials whose results are
already on disk.

For other sweep modes (the Optuna search) the pieces are public: `open_session` (Ray, data,
plan, results folder) and `Session.run(search_alg=..., num_samples=...)` run any set of trial
configs understood by `mer.sweep.trial.spec_from_config`.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from ray import tune

from mer.config import ExperimentConfig, FacesConfig, SearchConfig, flatten, to_dict
from mer.errors import ConfigError, DataError
from mer.experiment import layout
from mer.experiment import plan as plan_mod
from mer.experiment.plan import SweepPlan, TrialSpec
from mer.experiment.store import ResultsStore, write_run_files
from mer.experiment.summary import Summary, console_table, write_summary
from mer.sweep.tracking import Tracker, display_rows, make_tracker
from mer.sweep.trial import FINAL_KEY, SKIPPED_KEY, TestHooks, spec_from_config, tune_trainable
from mer.util.jsonio import read_json, to_plain, write_json

log = logging.getLogger(__name__)

EXPERIMENT = "tune"  # Tune experiment folder under OUT/ray


@dataclass
class RunOptions:
    """Command-line choices of one sweep run (see `mer.sweep.main`)."""

    out: Path
    resume: bool = False
    overwrite: bool = False
    max_concurrent: int | None = None
    wandb: str | None = None  # None: tracking.wandb.mode of the config
    address: str | None = None  # None: start a local Ray
    storage: str | None = None  # Tune storage (shared path for clusters); default OUT/ray
    num_cpus: int | None = None  # CPUs of a local Ray (default: all)
    report_every_s: float = 30.0
    argv: list[str] | None = None
    test_hooks: TestHooks = field(default_factory=TestHooks.from_env)


def output_dir(cfg: ExperimentConfig, out: str | Path | None) -> Path:
    """`--out` or `{cfg.output}/{cfg.name}`, absolute."""
    path = Path(out) if out else Path(cfg.output).expanduser() / cfg.name
    return path.expanduser().resolve()


# ----------------------------------------------------------------------------------- Ray setup
def connect(address: str | None, *, num_cpus: int | None = None) -> bool:
    """Connect to a cluster (`auto` or HOST:PORT) or start a local Ray; True if started here.

    A local start passes address="local": without it ray.init would join whatever cluster
    /tmp/ray points at (someone else's on a shared machine).
    """
    import ray

    if ray.is_initialized():
        return False
    if address:
        check_reachable(address)
        try:
            ray.init(address=address, log_to_driver=True)
        except Exception as exc:  # noqa: BLE001 - ConnectionError, Ray's AuthenticationError
            if not isinstance(exc, ConnectionError) and "auth" not in type(exc).__name__.lower():
                raise
            hint = (
                ""
                if os.environ.get("RAY_AUTH_MODE") == "token"
                else "; a cluster with token authentication also needs RAY_AUTH_MODE=token (and "
                "its token, e.g. ~/.ray/auth_token) in this shell. Do not `ray stop` a shared head"
            )
            raise ConfigError(f"--address {address}: {exc}{hint}") from None
    else:
        _checkout_on_pythonpath()
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False)
    res = ray.cluster_resources()
    log.info(
        "Ray: %d node(s), %g CPU, %g GPU", _alive_nodes(), res.get("CPU", 0), res.get("GPU", 0)
    )
    return True


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """A HOST:PORT address answers, and speaks gRPC as Ray's GCS does; ConfigError otherwise.

    ray.init keeps retrying an address that does not answer (or answers something else),
    without a deadline and deaf to Ctrl-C; a typo in --address must fail in seconds instead.
    `auto` is resolved as Ray does (RAY_ADDRESS, else the cluster this machine last started)
    and that address is checked. Ray Client (ray://) is refused: Tune would run the experiment
    in a remote actor, out of reach of the callbacks that file each trial's results here.
    """
    import socket

    if address.startswith(("http://", "https://")):
        raise ConfigError(
            f"--address {address}: expected auto or HOST:PORT of the head node's GCS (6379 by "
            "default), not a URL; http://HOST:8265 is the dashboard, used by `ray job submit`"
        )
    if address.startswith("ray://"):
        raise ConfigError(
            f"--address {address}: Ray Client is not supported (the sweep files each trial's "
            "results from the driver's own process); run run_sweep.py on the head node "
            "(`ray attach cluster.yaml --tmux`, or `ray job submit`) with --address auto"
        )
    if address == "local":
        return
    if address == "auto":
        resolved = _resolve_auto()
        if resolved is None:
            return
        try:
            check_reachable(resolved, timeout_s)
        except ConfigError as exc:
            raise ConfigError(
                f"--address auto (resolved to {resolved} from RAY_ADDRESS or the cluster "
                f"this machine last started): {str(exc).split(': ', 1)[1]}"
            ) from None
        return
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"--address {address!r}: expected auto or HOST:PORT (e.g. 10.0.0.1:6379)")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s) as conn:
            speaks_grpc = os.environ.get("RAY_USE_TLS", "0") != "0" or _speaks_grpc(conn)
    except OSError as exc:
        raise ConfigError(
            f"--address {address}: no Ray cluster answers there ({exc}); check the host and port "
            "(`ray status` on the head node) or start one with `ray start --head`"
        ) from None
    if not speaks_grpc:
        hint = " (8265 is Ray's dashboard, used by `ray job submit`)" if port == "8265" else ""
        raise ConfigError(
            f"--address {address}: something answers there, but not Ray{hint}; give the head "
            "node's GCS address (HOST:6379 by default; `ray status` shows it)"
        )


def _resolve_auto() -> str | None:
    """The address `ray.init(address="auto")` would use; None when Ray leaves it open."""
    try:
        from ray._private.services import get_ray_address_from_environment
    except ImportError:  # another Ray layout: leave it to ray.init
        return None
    try:
        resolved = get_ray_address_from_environment("auto", None)
    except ConnectionError as exc:
        raise ConfigError(f"--address auto: {exc}") from None
    return None if not resolved or resolved in ("auto", "local") else resolved


# HTTP/2 connection preface and an empty SETTINGS frame: a gRPC server (Ray's GCS and Ray
# Client both are) answers with a SETTINGS frame of its own; an HTTP/1 server does not.
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def _speaks_grpc(conn: Any) -> bool:
    """Whether the server on `conn` answers the HTTP/2 preface with a SETTINGS frame."""
    try:
        conn.sendall(_H2_PREFACE)
        head = b""
        while len(head) < 9:
            chunk = conn.recv(9 - len(head))
            if not chunk:
                return False
            head += chunk
    except OSError:  # timeout or reset: not a gRPC server
        return False
    return head[3] == 0x04  # frame type SETTINGS


def _checkout_on_pythonpath() -> None:
    """Workers of a local Ray import `mer` as the driver does, also from an uninstalled checkout
    (they inherit the environment of the Ray processes ray.init starts)."""
    import mer

    root = str(Path(mer.__file__).resolve().parents[1])
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if root not in parts:
        os.environ["PYTHONPATH"] = os.pathsep.join([root, *parts])


def _alive_nodes() -> int:
    import ray

    return sum(1 for n in ray.nodes() if n.get("Alive"))


def autoscaler_ceiling() -> dict[str, float]:
    """The most CPUs/GPUs the cluster's autoscaler may bring up (its node types x max_workers);
    empty without an autoscaler (a local Ray, `ray start` by hand). Ray Train and Data read the
    same (private) state."""
    try:
        from ray._private.state import state

        found = state.get_max_resources_from_cluster_config() or {}
        return {k: float(v) for k, v in found.items()}
    except Exception:  # noqa: BLE001 - no autoscaler state, or another Ray layout
        return {}


def capacity(
    cfg: ExperimentConfig,
    cluster: dict[str, float],
    ceiling: dict[str, float],
    *,
    remote: bool = True,
) -> dict[str, float]:
    """CPUs and GPUs the cluster has now or may have once its autoscaler has scaled up
    (`ceiling`); `resources.wait_for_gpus` overrides what the autoscaler state says (true with
    no known ceiling: unbounded, the autoscaler's max_workers decides). A Ray started by this
    process (`remote` False) has no autoscaler: what it has is all there is."""
    cap = {k: max(cluster.get(k, 0.0), ceiling.get(k, 0.0)) for k in ("CPU", "GPU")}
    wait = cfg.resources.wait_for_gpus if remote else False
    if wait is False:
        cap["GPU"] = cluster.get("GPU", 0.0)
    elif wait and cap["GPU"] == 0:
        cap = {"CPU": math.inf, "GPU": math.inf}
    return cap


def trial_resources(
    cfg: ExperimentConfig,
    cluster: dict[str, float],
    ceiling: dict[str, float] | None = None,
    *,
    remote: bool = False,
) -> dict[str, float]:
    """Resources of one trial. Without any GPU, now or from the autoscaler (`ceiling`), trials
    run on CPU (logged). With GPU nodes still to come (cluster.yaml: min_workers 0) they keep
    their GPU share and wait: asking is what makes the autoscaler start GPU workers."""
    gpu = float(cfg.resources.gpu_per_trial)
    cap = capacity(cfg, cluster, ceiling or {}, remote=remote)
    if cap["GPU"] == 0 and gpu > 0:
        if remote and cfg.resources.wait_for_gpus is None:
            log.warning(
                "the Ray cluster has no GPU node now and reports none to come: trials run on "
                "CPU (resources.gpu_per_trial %g -> 0). If its autoscaler starts GPU workers on "
                "demand (cluster.yaml), set resources.wait_for_gpus: true",
                gpu,
            )
        else:
            log.info(
                "the Ray cluster has no GPUs: trials run on CPU (resources.gpu_per_trial %g -> 0)",
                gpu,
            )
        gpu = 0.0
    elif cluster.get("GPU", 0) == 0 and gpu > 0:
        log.warning(
            "no GPU node is up yet: trials ask for %g GPU each and wait for the autoscaler to "
            "start GPU workers (%s); resources.wait_for_gpus false runs them on CPU",
            gpu,
            f"up to {cap['GPU']:g} GPUs" if cap["GPU"] < 1e6 else "resources.wait_for_gpus",
        )  # fmt: skip
    cluster = cap
    if gpu > cluster.get("GPU", 0):
        raise ConfigError(
            f"resources.gpu_per_trial: {gpu:g} GPUs per trial but the cluster has "
            f"{cluster.get('GPU', 0):g}; no trial could ever start"
        )
    cpu = float(cfg.resources.cpu_per_trial)
    if cpu > cluster.get("CPU", 0):
        raise ConfigError(
            f"resources.cpu_per_trial: {cpu:g} CPUs per trial but the cluster has "
            f"{cluster.get('CPU', 0):g}"
        )
    return {"CPU": cpu, "GPU": gpu}


def check_devices(plan: SweepPlan, resources: dict[str, float]) -> None:
    """`train.device: cuda` in a variant whose trials get no GPU share would fail inside every
    trial (after retries); refused before any trial starts."""
    if resources.get("GPU", 0) > 0:
        return
    cuda = [name for name, v in plan.variants.items() if v.cfg.train.device == "cuda"]
    if cuda:
        why = (
            "the Ray cluster has no GPUs"
            if plan.cfg.resources.gpu_per_trial > 0
            else "resources.gpu_per_trial is 0"
        )
        raise ConfigError(
            f"train.device: cuda (variant{'s' if len(cuda) > 1 else ''} {', '.join(cuda)}), "
            f"but {why}, so no trial would see a GPU; use train.device auto or cpu, or "
            "connect to a cluster with GPUs (--address)"
        )


def max_concurrent(
    cfg: ExperimentConfig,
    resources: dict[str, float],
    cluster: dict[str, float],
    requested: int | None,
    num_trials: int,
) -> int:
    """--max-concurrent, else resources.max_concurrent, else what the cluster holds at once."""
    if requested:
        return int(requested)
    if cfg.resources.max_concurrent:
        return int(cfg.resources.max_concurrent)
    limits = []
    for key in ("CPU", "GPU"):
        have = cluster.get(key, 0)
        if resources[key] > 0 and math.isfinite(have):  # inf: the autoscaler decides
            limits.append(math.floor(have / resources[key] + 1e-9))
    cpus = cluster.get("CPU", 1)
    n = min(limits) if limits else (int(cpus) if math.isfinite(cpus) else num_trials)
    return max(1, min(n, max(1, num_trials)))


# ------------------------------------------------------------------------------- the callback
# The Tune callback is pickled into the experiment state (tuner.pkl) and unpickled on restore,
# so it carries no state of its own: it forwards to the session registered here by
# `Session.run`, which is the fresh one of the current driver process.
_ACTIVE: dict[str, Session] = {}


class SweepCallback(tune.Callback):
    """Forwards Tune events to the active Session (stateless, so it pickles and restores)."""

    def on_trial_result(self, iteration, trials, trial, result, **info):  # noqa: ANN001
        s = _ACTIVE.get("session")
        if s is not None:
            s.on_result(trial.config, result)

    def on_trial_complete(self, iteration, trials, trial, **info):  # noqa: ANN001
        s = _ACTIVE.get("session")
        if s is not None:
            s.on_complete(trial)

    def on_trial_recover(self, iteration, trials, trial, **info):  # noqa: ANN001
        s = _ACTIVE.get("session")
        if s is not None:
            s.on_recover(trial.config, trial)

    def on_trial_error(self, iteration, trials, trial, **info):  # noqa: ANN001
        s = _ACTIVE.get("session")
        if s is not None:
            s.on_error(trial.config, trial)


def _trial_error(trial: Any) -> str:
    """The failed trial's error text: Tune writes it to the trial's local (driver) folder first
    and syncs it to storage later, so read it there."""
    local = trial.error_file
    if local and Path(local).exists():
        return Path(local).read_text()
    return str(trial.get_error() or "unknown error (Tune kept no error file)")


def trial_name(trial: Any) -> str:
    c = trial.config
    if "spec" in c:
        return str(c["spec"])
    return layout.trial_id(c.get("label") or c["variant"], c["fold"], c["seed"])


def trial_dirname(trial: Any) -> str:
    return layout.fold_safe(trial_name(trial)) + f"-{trial.trial_id}"


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
        experiment: str = EXPERIMENT,
    ):
        import ray

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
        mode = opts.wandb or cfg.tracking.wandb.mode
        self.tracker: Tracker = make_tracker(mode, self.out, cfg)
        self.wandb_mode = mode
        self.done_at_start = self.store.done_ids()
        self.finished: set[str] = set(self.done_at_start)
        self.failed: set[str] = set()
        self._variant_logged: set[str] = set()
        self._variant_queued = False  # a variant summary run was queued during the run
        self.interrupted = False  # Ctrl-C / SIGUSR1 ended the Tune run early
        self.experiment = experiment  # Tune experiment name under a shared --storage
        self._catch_up_tracking()

    # ------------------------------------------------------------------------ tune plumbing
    def trainable(self) -> Any:
        fn = tune.with_parameters(
            tune_trainable,
            plan=self.plan,
            data_refs=self.data_refs,
            done=frozenset(self.done_at_start),
            test_hooks=self.opts.test_hooks,
            report_every_s=self.opts.report_every_s,
        )
        return tune.with_resources(fn, self.resources)

    @property
    def storage(self) -> tuple[str, str]:
        if self.opts.storage:
            return str(storage_key(self.opts.storage)), self.experiment
        return str(self.out / "ray"), EXPERIMENT

    def missing_trials(self) -> list[str]:
        """Planned trials with no result on disk that did not fail in this run, in plan order."""
        done = self.store.done_ids()
        return [t.id for t in self.plan.trials if t.id not in done and t.id not in self.failed]

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
        from ray.tune.logger import JsonLoggerCallback

        # Tune's CSV/TensorBoard loggers would flatten the final prediction payload into
        # columns; results are filed by our callback, Tune keeps its JSON log.
        os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
        # num_to_keep forces an experiment snapshot after checkpoints (cheap here); Tune warns
        # about it on every checkpoint of short trials.
        os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
        storage_path, name = self.storage
        if fresh_experiment:
            name = f"{name}-{fresh_experiment}"
        exp_path = f"{storage_path.rstrip('/')}/{name}"
        n_conc = concurrency or max_concurrent(
            self.cfg, self.resources, self.capacity, self.opts.max_concurrent, len(self.plan.trials)
        )
        log.info(
            "trials: %d, %g CPU + %g GPU each, up to %d at a time; storage %s",
            len(self.plan.trials),
            self.resources["CPU"],
            self.resources["GPU"],
            n_conc,
            exp_path,
        )
        if not self.opts.storage and _alive_nodes() > 1:
            log.warning(
                "a multi-node cluster with the default local storage %s: checkpoints of "
                "trials on other nodes stay on those nodes, so a retry elsewhere starts "
                "its fold again; pass --storage with a path every node sees (NFS, "
                "s3://...) to resume there",
                exp_path,
            )
        if self.done_at_start:
            log.info(
                "%d trial(s) already finished in %s: not run again",
                len(self.done_at_start & {t.id for t in self.plan.trials}),
                self.out,
            )
        _ACTIVE["session"] = self
        try:
            if not fresh_experiment and self.opts.resume and tune.Tuner.can_restore(exp_path):
                log.info("restoring the Tune experiment at %s", exp_path)
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
                        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
                        callbacks=[SweepCallback(), JsonLoggerCallback(), *callbacks],
                        verbose=0,
                    ),
                )
            return tuner.fit()
        finally:
            _ACTIVE.pop("session", None)

    # ------------------------------------------------------------------------- callbacks
    def on_result(self, config: dict[str, Any], result: dict[str, Any]) -> None:
        if result.get(SKIPPED_KEY) or not result.get(FINAL_KEY):
            return
        spec, vcfg = spec_from_config(self.plan, config)
        self.store.write_trial(spec, result)
        self.finished.add(spec.id)
        self.failed.discard(spec.id)
        n_done = len(self.finished & {t.id for t in self.plan.trials})
        # A search fold trial's test score is no estimate of anything (its fold's validation
        # subjects are other folds' test subjects): it stays in the prediction log, unsummarised.
        split = "val" if self.cfg.search is not None else "test"
        sc = result.get(f"{split}_scores") or {}
        n_clips = sum(1 for s in result["predictions"].get("split", []) if s == split)
        log.info(
            "[%s] %s done in %.1f s: %s acc %.3f on %d clip(s)%s",
            "search" if split == "val" else f"{n_done}/{len(self.plan.trials)}",
            spec.id,
            (result.get("timings") or {}).get("total", 0.0),
            split,
            sc.get("acc", float("nan")),
            n_clips,
            f" (resumed at epoch {result['resumed_from']})" if result.get("resumed_from") else "",
        )
        tracked = (
            result if split == "test" else {k: v for k, v in result.items() if k != "test_scores"}
        )
        self.tracker.trial(
            spec,
            vcfg,
            tracked,
            bool(result.get("oracle")),
            on_done=self._marker(spec, layout.WANDB_TRIAL_MARKER),
        )
        self._maybe_variant_done(spec)

    def on_complete(self, trial: Any) -> None:
        """A finished fold needs no checkpoint (its results are in trials/): free the storage,
        which for the paper model is ~90 MB per trial."""
        try:
            import pyarrow.fs as pafs

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
        err = _trial_error(trial)
        self.store.write_failure(spec, str(err), attempts=trial.num_failures)
        self.failed.add(spec.id)
        log.error(
            "%s failed permanently after %d attempt(s): %s",
            spec.id,
            trial.num_failures,
            str(err).strip().splitlines()[-1] if str(err).strip() else err,
        )
        self._maybe_variant_done(spec)

    def _marker(self, spec: TrialSpec, name: str) -> Any:
        path = self.store.trial_dir(spec) / name

        def touch() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()

        return touch

    def _catch_up_tracking(self) -> None:
        """After a restart: W&B runs of finished trials that the killed driver had not written."""
        if not self.tracker.enabled:
            return
        for rec in self.store.records().values():
            if not rec.done or (rec.path / layout.WANDB_TRIAL_MARKER).exists():
                continue
            try:
                spec = self.plan.spec(rec.trial)
            except ConfigError:
                continue
            payload = dict(rec.info)
            hist = rec.history()
            payload["history"] = to_plain(hist.to_dict(orient="records"))
            self.tracker.trial(
                spec,
                self.plan.variants[spec.variant].cfg,
                payload,
                bool(rec.info.get("oracle")),
                on_done=self._marker(spec, layout.WANDB_TRIAL_MARKER),
            )

    def _maybe_variant_done(self, spec: TrialSpec) -> None:
        """Pool a (variant, seed) once all its folds are in (finished or failed); a variant's
        W&B summary run once all its seeds are."""
        variant = spec.variant
        if variant not in self.plan.variants or variant in self._variant_logged:
            return
        settled = self.finished | self.failed
        if not {t.id for t in self.plan.trials_of(variant, spec.seed)} <= settled:
            return
        summary = write_summary(self.out, self.plan)
        seed = next(r for r in summary.seeds if r["variant"] == variant and r["seed"] == spec.seed)
        log.info(
            "%s seed %d: pooled UF1 %s over %d/%d folds%s",
            variant,
            spec.seed,
            f"{seed['uf1']:.4f}" if "uf1" in seed else "-",
            seed["folds_done"],
            seed["folds_total"],
            "" if seed["complete"] else ", INCOMPLETE",
        )
        if not {t.id for t in self.plan.trials_of(variant)} <= settled:
            return
        row = summary.table[summary.table["variant"] == variant].iloc[0].to_dict()
        log.info(
            "variant %s finished: pooled UF1 %.4f, UAR %.4f (%s)",
            row["name"],
            row["uf1_mean"],
            row["uar_mean"],
            row["status"],
        )
        self._variant_queued |= self._log_variant(summary, variant)

    def _log_variant(self, summary: Summary, variant: str) -> bool:
        """Queue the variant's W&B summary run unless this exact state was logged before (a
        `--resume` of a finished sweep adds no duplicate runs). True when queued."""
        if variant in self._variant_logged:
            return False
        self._variant_logged.add(variant)
        row = summary.table[summary.table["variant"] == variant].iloc[0].to_dict()
        state = {k: row.get(k) for k in ("folds_done", "folds_failed", "uf1_mean", "uar_mean")}
        marker = self.store.trials_dir / variant / layout.WANDB_SUMMARY_MARKER
        if not self.tracker.enabled:
            return False
        if marker.exists() and read_json(marker) == to_plain(state):
            return False
        seeds = [r for r in summary.seeds if r["variant"] == variant]
        pred = summary.predictions
        pred = pred[pred["variant"] == variant] if len(pred) else pred

        def done() -> None:
            write_json(marker, state)

        shown = display_rows(summary.table)[variant]
        self.tracker.variant(self.plan, variant, row, seeds, pred, on_done=done, display_row=shown)
        return True

    # ----------------------------------------------------------------------------- finish
    def _write_report(self) -> dict[str, Path]:
        """OUT/report/ (tables, figures, HTML): what `mer report OUT` writes. A failure here is
        logged with its traceback and leaves the sweep's results, already on disk, as they are."""
        from mer.report import write_report

        try:
            written = write_report(self.out)
        except Exception:  # noqa: BLE001 - reporting must not lose a finished sweep
            log.exception("could not write the report; run `mer report %s` to retry", self.out)
            return {}
        log.info("report: %s", written.get("html", self.out / "report"))
        return written

    def finish(self) -> Summary:
        summary = write_summary(self.out, self.plan)
        report = self._write_report()
        # an interrupted run logs no W&B summary runs: its variants are only paused, and the
        # --resume that finishes them logs the real ones
        if not self.interrupted:
            queued = [self._log_variant(summary, variant) for variant in self.plan.variants]
            if any(queued) or self._variant_queued:
                self.tracker.sweep(self.plan, summary.table, report=report)
        self.tracker.close()
        if self.started_ray:
            import ray

            ray.shutdown()
        return summary


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def shared_experiment_name(name: str, out: Path) -> str:
    """A new Tune experiment of a sweep under a shared --storage: its name, a digest of its
    results folder and the start time, so two sweeps of one config (other --out, other --set
    values, or an --overwrite of the same folder) never restore each other's checkpoints.
    `--resume` reads the name back from OUT/storage.json."""
    digest = hashlib.sha256(str(Path(out).resolve()).encode()).hexdigest()[:8]
    return f"{_safe(name)}-{digest}-{time.strftime('%Y%m%d-%H%M%S')}"


def storage_key(storage: str | None) -> str | None:
    """--storage as Tune gets it and runs compare it: local paths absolute (Tune's pyarrow
    refuses relative ones), URIs (s3://...) as given without a trailing slash."""
    if not storage:
        return None
    if "://" in storage:
        return storage.rstrip("/")
    return str(Path(storage).expanduser().resolve())


def _read_storage_record(out: Path) -> dict[str, Any] | None:
    path = out / layout.STORAGE_FILE
    if not path.exists():
        return None
    try:
        record = read_json(path, what="it records --storage")
    except DataError as exc:  # a --resume option problem: the run stops before it starts
        raise ConfigError(str(exc)) from None
    return record if isinstance(record, dict) else {}


def _check_storage(opts: RunOptions) -> None:
    """--resume must find the Tune state where the sweep put it: refuse another --storage."""
    record = _read_storage_record(opts.out)
    if record is None:
        return
    recorded = record.get("storage")
    if storage_key(recorded) != storage_key(opts.storage):
        where = f"--storage {recorded}" if recorded else "no --storage (OUT/ray)"
        now = f"--storage {opts.storage}" if opts.storage else "no --storage"
        raise ConfigError(
            f"--resume: {opts.out} keeps its Tune state under {where}, but this run has {now}; "
            "resume with the same --storage (its checkpoints are there)"
        )


def experiment_for(cfg: ExperimentConfig, opts: RunOptions) -> str:
    """The Tune experiment this run uses: `tune` under OUT/ray; under a shared --storage the
    one OUT/storage.json names when resuming, the pre-storage.json name for a sweep older than
    that file, else a new one."""
    if not opts.storage:
        return EXPERIMENT
    record = _read_storage_record(opts.out) if opts.resume else None
    if record and record.get("experiment"):
        return str(record["experiment"])
    if opts.resume and (opts.out / layout.CONFIG_FILE).exists():
        return _safe(cfg.name)  # written by a mer without storage.json: its experiment name
    return shared_experiment_name(cfg.name, opts.out)


def _record_storage(opts: RunOptions, experiment: str) -> None:
    record = {"storage": storage_key(opts.storage), "experiment": experiment}
    write_json(opts.out / layout.STORAGE_FILE, record, indent=None)


# ------------------------------------------------------------------------------ opening a run
def _foreign_entries(out: Path) -> list[str]:
    """Entries of `out` no sweep writes: a folder holding them is not ours to fill or delete."""
    if not out.is_dir():
        return []
    return sorted(e.name for e in out.iterdir() if not layout.is_sweep_entry(e.name))


def _check_out_dir(cfg: ExperimentConfig, opts: RunOptions) -> bool:
    """Refuse an output folder this run may not use; True when --overwrite is to clear it
    (done by the caller only once the data and plan are ready, so a failing run keeps it)."""
    out = opts.out
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: is a file; the results folder must be a folder")
    foreign = _foreign_entries(out)
    if foreign:
        raise ConfigError(
            f"{out} holds files no sweep wrote ({', '.join(foreign[:5])}"
            f"{' ...' if len(foreign) > 5 else ''}); choose an empty or new folder with --out"
        )
    try:  # an unwritable --out fails now, not after data preparation and Ray start-up
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot create the results folder ({exc})") from None
    previous = out / layout.CONFIG_FILE
    if opts.overwrite and not opts.resume:
        return any(out.iterdir())
    if not previous.exists():
        if opts.resume:
            log.info("--resume: no sweep in %s yet; starting it", out)
        return False
    if not opts.resume:
        raise ConfigError(
            f"{out} already holds a sweep's results; continue it with --resume, write elsewhere "
            "with --out DIR, or replace it with --overwrite"
        )
    old_raw = yaml.safe_load(previous.read_text()) or {}
    old = flatten(old_raw)
    new = flatten(to_dict(cfg))
    # a key a newer mer added (absent from the old file) at its default changes nothing, nor
    # one set to what mer did before it existed (data.faces: FacesConfig.LEGACY)
    defaults = flatten(to_dict(ExperimentConfig()))
    defaults.update({f"search.{k}": v for k, v in flatten(to_dict(SearchConfig())).items()})
    defaults.update({f"data.faces.{k}": v for k, v in to_dict(FacesConfig()).items()})
    legacy = {f"data.faces.{k}": v for k, v in FacesConfig.LEGACY.items()}
    # resources.* say where and how many trials run, not what they compute: free to change
    diff = sorted(
        k
        for k in set(old) | set(new)
        if old.get(k) != new.get(k)
        and not (k not in old and new.get(k) in (defaults.get(k), legacy.get(k, defaults.get(k))))
        and not k.startswith("resources.")
    )
    if diff:
        raise ConfigError(
            f"--resume: the config differs from the sweep in {out} at {', '.join(diff[:8])}"
            f"{' ...' if len(diff) > 8 else ''}; resume with the same config and --set "
            "options, or use --out for a new sweep"
        )
    _check_faces_legacy(old_raw, cfg, out)
    _check_storage(opts)
    return False


def _check_faces_legacy(old_raw: dict[str, Any], cfg: ExperimentConfig, out: Path) -> None:
    """A sweep started before data.faces existed must not go on with faces handled otherwise."""
    from mer.data.cache import legacy_changes  # the data layer loads on use (prepare_datasets)

    changed = legacy_changes(old_raw, cfg)
    if changed:
        sets = " ".join(f"--set data.faces.{k}={v}" for k, v in FacesConfig.LEGACY.items())
        raise ConfigError(
            f"--resume: the sweep in {out} was started before data.faces existed, and today's "
            f"defaults (dlib min_score, face tracking, per-clip boxes) would prepare other data "
            f"for {', '.join(changed)} than its finished trials had; resume with the faces "
            f"handling it had ({sets.replace('True', 'true').replace('False', 'false')}), "
            "or use --out for a new sweep"
        )


def _clear_out_dir(out: Path) -> None:
    """--overwrite: remove the previous sweep's entries, and nothing else (a data cache built
    inside --out since the folder was checked stays)."""
    log.warning("--overwrite: removing the previous results in %s", out)
    for entry in out.iterdir():
        if not layout.is_sweep_entry(entry.name):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def prepare_datasets(
    vcfgs: dict[str, ExperimentConfig], used_by: str | None = None
) -> dict[str, Any]:
    """PreparedData per distinct data section (built or read from the cache, once); `used_by`
    (the sweep's folder) is recorded for `mer cache list`."""
    from mer.data.cache import prepare_data

    data: dict[str, Any] = {}
    for name, vcfg in vcfgs.items():
        key = plan_mod.data_key(vcfg)
        if key not in data:
            t0 = time.monotonic()
            data[key] = prepare_data(vcfg.data, used_by=used_by)
            log.info(
                "data %s (first used by %s): %d clips ready in %.1f s",
                key,
                name,
                len(data[key].samples),
                time.monotonic() - t0,
            )
    return data


def open_session(
    cfg: ExperimentConfig, opts: RunOptions, variants: dict[str, ExperimentConfig] | None = None
) -> Session:
    """Check the output folder, prepare data, plan, write config/plan/environment, start Ray."""
    if opts.address:
        check_reachable(opts.address)  # before data preparation, which can take minutes
    clear = _check_out_dir(cfg, opts)
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
    started = connect(opts.address, num_cpus=opts.num_cpus)
    try:
        import ray

        remote = bool(opts.address)
        cluster, ceiling = dict(ray.cluster_resources()), autoscaler_ceiling() if remote else {}
        resources = trial_resources(cfg, cluster, ceiling, remote=remote)
        cluster_capacity = capacity(cfg, cluster, ceiling, remote=remote)
        check_devices(plan, resources)
        experiment = experiment_for(cfg, opts)
        if clear:  # data, plan and cluster are ready: now the old results may go
            _clear_out_dir(opts.out)
        write_run_files(opts.out, plan, argv=opts.argv)
        _record_storage(opts, experiment)
        return Session(cfg, opts, plan, data, started, resources, cluster_capacity, experiment)
    except BaseException:
        if started:
            import ray

            ray.shutdown()
        raise


def run_ablation(cfg: ExperimentConfig, opts: RunOptions) -> int:
    """Every (variant, fold, seed) as one Tune trial; prints the summary table. Exit status:
    0 when every trial finished, 1 when some failed (their variants are marked INCOMPLETE),
    130 when Ctrl-C / SIGUSR1 stopped the run (continue with --resume)."""
    session = open_session(cfg, opts)
    try:
        ids = [t.id for t in session.plan.trials]
        # until Tune returns with every trial ended, the run counts as interrupted: a second
        # Ctrl-C raises KeyboardInterrupt out of fit() and must not log summary runs either
        session.interrupted = True
        grid = session.run(param_space={"spec": _grid(ids)})
        # Tune returns normally after Ctrl-C (or SIGUSR1) too: only an experiment whose every
        # trial ended may have lost results to rerun; an interrupted one stops here
        unended = len(ids) - ended_trials(grid)
        ended = unended == 0
        session.interrupted = not ended
        if not ended:
            log.warning(
                "sweep interrupted: %d of %d trial(s) did not end; continue with the same "
                "command plus --resume (not Tuner.restore)",
                unended, len(ids),
            )  # fmt: skip
        lost = session.missing_trials() if opts.resume and ended else []
        if lost:
            # Tune restores a trial it saw finish as finished, even when its results folder was
            # deleted since: those run again in an experiment of their own.
            log.warning(
                "--resume: %d trial(s) the restored Tune experiment counts as finished have no "
                "results in %s (first: %s); running them again",
                len(lost), opts.out, lost[0],
            )  # fmt: skip
            session.interrupted = True
            rerun = session.run(
                param_space={"spec": _grid(lost)},
                fresh_experiment=f"rerun-{time.strftime('%Y%m%d-%H%M%S')}",
            )
            session.interrupted = ended_trials(rerun) < len(lost)
    finally:
        summary = session.finish()
    print(f"\n{cfg.name}: pooled test metrics per variant (mean ± std over seeds)\n")
    print(console_table(summary.table))
    print(f"\nresults: {opts.out} (summary.md, summary.csv, predictions.csv, trials/)")
    failed = int(summary.table["folds_failed"].sum())
    missing = int((summary.table["folds_total"] - summary.table["folds_done"]).sum()) - failed
    if session.interrupted:
        print(f"INTERRUPTED: {missing} trial(s) not finished; continue with --resume")
        return 130
    if failed or missing:
        see = f"see {opts.out}/trials/*/*/*/error.txt; " if failed else ""
        print(
            f"INCOMPLETE: {failed} trial(s) failed, {missing} not run; {see}rerun with --resume "
            "to retry them"
        )
        return 1
    return 0


def ended_trials(grid: Any) -> int:
    """Trials of a ResultGrid that ended: failed, or whose last report is the final (or the
    already-done) one. An interrupted trial shows as TERMINATED in Tune, so status says nothing;
    trials the interruption kept from starting are not in the grid at all."""
    n = 0
    for result in grid:
        metrics = result.metrics or {}
        if result.error is not None or metrics.get(FINAL_KEY) or metrics.get(SKIPPED_KEY):
            n += 1
    return n


def _grid(values: list[str]) -> Any:
    return tune.grid_search(values)

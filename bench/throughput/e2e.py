"""One real trial end to end: a LOSO fold through mer.train.run_fold timed phase by phase
(and, with --e2e-ray, the same fold as one Ray Tune trial)."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from bench.throughput.raysession import ray_start, ray_stop
from bench.throughput.spec import PAPER_SHAPE, TINY_MODEL, TINY_SHAPE


def process_age() -> float | None:
    """Seconds since this process started (interpreter start-up and imports included)."""
    try:
        ticks = os.sysconf("SC_CLK_TCK")
        start = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19]) / ticks
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - start)
    except (OSError, ValueError, IndexError):
        return None


def e2e_data(cfg: Any, clips: int, subjects: int, seed: int, mode: str):
    """A PreparedData-like object and one LOSO fold (test = subject 0).

    `memory`: random uint8 clips made here (no decord/av: works on a bare GPU image);
    `prepare`: mer.data.cache.prepare_data of a synthetic casme2-layout dataset (needs the media
    stack; the first call renders and caches it)."""
    import pandas as pd

    from mer.protocol import Fold

    if mode == "prepare":
        from mer.data.cache import prepare_data

        data = prepare_data(cfg.data, progress=False)
        samples = data.samples
    else:
        t, h = cfg.data.frames.count, cfg.data.size
        g = torch.Generator().manual_seed(seed)
        shape = (clips, t, h, h, cfg.model.in_channels)
        subject = [f"synthetic/s{i % subjects:02d}" for i in range(clips)]
        samples = pd.DataFrame(
            {
                "sample_id": [f"{s}/c{i:03d}" for i, s in enumerate(subject)],
                "dataset": "synthetic",
                "subject": subject,
                "clip": [f"c{i:03d}" for i in range(clips)],
                "label": (np.arange(clips) % cfg.model.num_classes).astype(np.int64),
            }
        )
        data = SimpleNamespace(
            samples=samples,
            class_names=["negative", "positive", "surprise"][: cfg.model.num_classes],
            global_clips=torch.randint(0, 256, shape, dtype=torch.uint8, generator=g).numpy(),
            region_clips=torch.randint(0, 256, shape, dtype=torch.uint8, generator=g).numpy(),
            key="bench-memory",
            path=None,
            oracle_input=False,
        )
    subj = samples["subject"].to_numpy()
    first = sorted(set(subj))[0]
    test = np.flatnonzero(subj == first).astype(np.int64)
    train = np.flatnonzero(subj != first).astype(np.int64)
    fold = Fold(first, 0, (first,), train, np.zeros(0, np.int64), test)
    return data, fold


def e2e_config(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    from mer.config import apply_overrides

    t, h, _ = TINY_SHAPE if args.tiny else PAPER_SHAPE
    model: dict[str, Any] = {"preset": "casme2", **(TINY_MODEL if args.tiny else {})}
    raw: dict[str, Any] = {
        "name": "bench-e2e",
        "data": {
            "dataset": "synthetic",
            "size": h,
            "frames": {"count": t},
            "synthetic": {"layout": "casme2", "size": max(h, 32), "frames": max(t + 4, 24)},
        },
        "model": model,
        "train": {"epochs": args.e2e_epochs, "device": device.type},
    }
    return apply_overrides(raw, list(args.e2e_set))


def run_e2e(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """One fold through mer.train.run_fold, timed phase by phase."""
    startup = process_age()
    t0 = time.perf_counter()
    from mer.config import from_dict
    from mer.predlog import save_fold_result
    from mer.train import run_fold
    from mer.training.runtime import resolve_runtime

    t_imports = time.perf_counter() - t0
    raw = e2e_config(args, device)
    cfg = from_dict(raw)
    clips = args.e2e_clips or (24 if args.tiny else 145)
    subjects = args.e2e_subjects or (4 if args.tiny else 24)
    t0 = time.perf_counter()
    data, fold = e2e_data(cfg, clips, subjects, args.seed, args.e2e_data)
    t_data = time.perf_counter() - t0
    runtime = resolve_runtime(cfg.train)
    result = run_fold(cfg, data, fold, args.seed)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mer-bench-") as tmp:
        save_fold_result(result, tmp)
    t_report = time.perf_counter() - t0
    tm = result.timings
    phases = {
        "startup (interpreter + imports before the harness)": startup,
        "imports (mer.train, pandas)": t_imports,
        f"data ({args.e2e_data})": t_data,
        "run_fold setup (model, optimiser)": tm["setup"],
        "cache to device": tm["to_device"],
        "train": tm["train"],
        "predict": tm["predict"],
        "report (prediction logs)": t_report,
    }
    total = sum(v for v in phases.values() if v is not None)
    other = total - tm["train"]
    epoch_s = [float(r["seconds"]) for r in result.history]
    rest = epoch_s[1:] or epoch_s
    train_200 = epoch_s[0] + 199 * statistics.median(rest)
    out: dict[str, Any] = {
        "epochs": len(epoch_s),
        "train_clips": int(len(fold.train)),
        "test_clips": int(len(fold.test)),
        "precision": "bf16" if runtime.amp_dtype is not None else "fp32",
        "channels_last": runtime.channels_last,
        "batch": cfg.train.batch_size,
        "phases_s": phases,
        "total_s": total,
        "non_training_s": other,
        "non_training_share": other / total,
        "epoch_s_first": epoch_s[0],
        "epoch_s_median_rest": statistics.median(rest),
        "train_clips_s": len(fold.train) / statistics.median(rest),
        "extrapolated_200_epochs": {
            "train_s": train_200,
            "non_training_share": other / (other + train_200),
        },
        "overrides": list(args.e2e_set),
    }
    if args.e2e_ray:
        try:
            out["ray"] = run_e2e_ray(raw, data, fold, device)
        except Exception as exc:  # noqa: BLE001 - optional part
            out["ray"] = {"error": f"{type(exc).__name__}: {exc}"[:400]}
            print(traceback.format_exc(), file=sys.stderr, flush=True)
    return out


def e2e_trainable(config: dict, data: Any = None, fold: Any = None, raw: dict | None = None):
    """A Tune function trainable running one fold the way the sweep does (mer.sweep.trial when
    it exists, else run_fold + one report)."""
    from ray import tune

    from mer.config import from_dict

    cfg = from_dict(raw)
    try:
        from mer.experiment.plan import TrialSpec
        from mer.sweep.trial import TuneReporter, execute_trial
    except ImportError:
        from mer.train import run_fold

        result = run_fold(cfg, data, fold, 0)
        tune.report({"timings": dict(result.timings), "mer_final": True})
        return
    execute_trial(TrialSpec("bench", fold.name, 0), cfg, data, fold, TuneReporter())


def run_e2e_ray(raw: dict, data: Any, fold: Any, device: torch.device) -> dict[str, Any]:
    from ray import tune

    t_init = ray_start(device, cpus=2)
    try:
        trainable = tune.with_parameters(e2e_trainable, data=data, fold=fold, raw=raw)
        resources = {"cpu": 1, "gpu": 1 if device.type == "cuda" else 0}
        with tempfile.TemporaryDirectory(prefix="mer-bench-tune-") as storage:
            tuner = tune.Tuner(
                tune.with_resources(trainable, resources),
                tune_config=tune.TuneConfig(num_samples=1),
                run_config=tune.RunConfig(name="bench_e2e", storage_path=storage, verbose=0),
            )
            t0 = time.perf_counter()
            grid = tuner.fit()
            t_fit = time.perf_counter() - t0
            res = grid[0]
            metrics = dict(res.metrics or {})
            error = str(res.error)[:300] if res.error else None
    finally:
        ray_stop()
    timings = metrics.get("timings")
    if timings is None:
        timings = {
            k.split("/", 1)[1]: v for k, v in metrics.items() if k.startswith("timings/")
        } or None
    out: dict[str, Any] = {"ray_init_s": t_init, "tuner_fit_s": t_fit, "error": error}
    out["via"] = "mer.sweep.trial.execute_trial" if "trial" in metrics else "run_fold"
    if timings:
        out["trial_run_fold_total_s"] = timings.get("total")
        out["trial_train_s"] = timings.get("train")
        out["tune_overhead_s"] = t_fit - float(timings.get("total") or 0.0)
    return out

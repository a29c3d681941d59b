"""The rows of one run: each setting measured (single-process or packed), checked against the
plain recipe, printed as soon as it is measured, and the results rewritten after every row."""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
import traceback
from typing import Any

import torch

from bench.throughput.device import cleanup
from bench.throughput.measure import (
    check_trajectory,
    compare,
    flops_per_clip,
    local_timing,
    reference,
)
from bench.throughput.packed import packed_timing
from bench.throughput.raysession import ray_stop
from bench.throughput.settings import Setting, expand_settings
from bench.throughput.spec import Spec
from bench.throughput.table import format_line, header_line, markdown_table, write_outputs
from bench.throughput.timing import matmul_ceiling


def measure_row(
    s: Setting, spec: Spec, device: torch.device, refs: dict, *, use_ray: bool
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "setting": s.name,
        "batch": s.batch,
        "models": s.models,
        "procs": s.procs,
        "clips_per_step": s.clips_per_step,
        "optim": s.same_optimisation,
        "tol": s.tolerance,
    }
    t0 = time.perf_counter()
    try:
        do_check = spec.check_steps > 0
        if s.procs > 1:
            timing = packed_timing(s, spec, device, check=do_check, use_ray=use_ray)
            traj = timing.pop("check_traj")
            members = 1
        else:
            traj = check_trajectory(s, spec, device) if do_check else None
            timing = local_timing(s, spec, device)
            members = s.models
        row.update(timing)
        if traj is not None:
            ref = [reference(spec, device, s.batch, m, refs) for m in range(members)]
            ok, worst = compare(traj, ref, s.tolerance)
            row["max_rel_diff"] = worst
            row["check"] = "ok" if ok else "FAIL"
        else:
            row["check"] = "-"
    except Exception as exc:  # noqa: BLE001 - one failing row must not end the run
        row["check"] = "ERROR"
        row["error"] = f"{type(exc).__name__}: {exc}"[:400]
        print(traceback.format_exc(), file=sys.stderr, flush=True)
        cleanup(device)
    row["seconds"] = time.perf_counter() - t0
    return row


def finish_row(row: dict[str, Any], meta: dict[str, Any], base_rate: float | None) -> None:
    rate = row.get("clips_s")
    if rate is None:
        return
    row["tflops"] = rate * meta["flops_per_clip"] / 1e12
    row["frac_ceiling"] = row["tflops"] / meta["ceiling_tflops"]
    row["speedup"] = rate / base_rate if base_rate else None


def run_matrix(args: argparse.Namespace, spec: Spec, device: torch.device, result: dict) -> None:
    settings = expand_settings(args.settings)
    meta = result["meta"]
    use_ray = not args.no_ray and importlib.util.find_spec("ray") is not None
    if any(s.procs > 1 for s in settings):
        share = "1/N GPU" if device.type == "cuda" else "one CPU"
        meta["packing"] = f"ray ({share} per process)" if use_ray else "torch.multiprocessing"
    t_start = time.perf_counter()
    ceiling, label = matmul_ceiling(device)
    meta["ceiling_tflops"], meta["ceiling"] = ceiling, label
    meta["flops_per_clip"] = flops_per_clip(spec, device)
    print(
        f"# {meta['device']} | torch {meta['torch']} | {meta['config']}\n"
        f"# ceiling {ceiling:.1f} TFLOP/s ({label}); "
        f"{meta['flops_per_clip'] / 1e9:.3g} GFLOP per clip (fwd+bwd)",
        flush=True,
    )
    print(header_line(), flush=True)
    rows: list[dict[str, Any]] = result["rows"]
    skipped: list[str] = result["skipped"]
    refs: dict = {}
    base_rate: float | None = None
    last, last_procs = 0.0, 1
    for s in settings:
        elapsed = time.perf_counter() - t_start
        estimate = last * max(1.0, s.procs / last_procs)  # more processes start slower
        over = elapsed >= args.time_budget or elapsed + estimate > args.time_budget
        if args.time_budget and over and s != Setting():  # the baseline always runs
            skipped.append(s.name)
            print(f"{s.name}: skipped (time budget {args.time_budget:.0f} s)", flush=True)
            continue
        row = measure_row(s, spec, device, refs, use_ray=use_ray)
        if s == Setting() and row.get("clips_s"):
            base_rate = row["clips_s"]
        finish_row(row, meta, base_rate)
        rows.append(row)
        last, last_procs = row["seconds"], s.procs
        print(format_line(row), flush=True)
        write_outputs(args.out, args.tag, result)
    ray_stop()
    print("", flush=True)
    print(markdown_table(rows), flush=True)

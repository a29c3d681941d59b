"""The command line: options, the default matrix for the device, and main."""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from bench.throughput.device import describe_device, pick_device
from bench.throughput.e2e import run_e2e
from bench.throughput.matrix import run_matrix
from bench.throughput.merge import merge
from bench.throughput.settings import GROUPS, TOKENS, SettingError
from bench.throughput.spec import make_spec
from bench.throughput.table import render_e2e, write_outputs
from mer.models import build_model


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.throughput",
        description="Training throughput of the paper model over a matrix of settings.",
    )
    p.add_argument(
        "--settings",
        action="append",
        default=None,
        help="comma-separated settings ('+'-joined tokens) and @groups; see --list",
    )
    p.add_argument("--list", action="store_true", help="print the tokens and groups, then exit")
    p.add_argument("--tiny", action="store_true", help="small model and 8×16×16 clips (CPU smoke)")
    p.add_argument("--steps", type=int, default=30, help="timed steps per window (batch-8 units)")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--repeats", type=int, default=3, help="timed windows per row (median)")
    p.add_argument("--check-steps", type=int, default=5, help="0 = no equivalence checks")
    p.add_argument("--pool", type=int, default=0, help="clips in the data pool (default 64/16)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    p.add_argument("--time-budget", type=float, default=0.0, help="seconds; skip rows after it")
    p.add_argument("--no-ray", action="store_true", help="packed rows via torch.multiprocessing")
    p.add_argument("--out", type=Path, default=None, help="write TAG.md and TAG.json here")
    p.add_argument("--tag", default="throughput")
    p.add_argument("--e2e", action="store_true", help="time one real trial (run_fold)")
    p.add_argument("--e2e-epochs", type=int, default=5)
    p.add_argument("--e2e-clips", type=int, default=0, help="default 145 (tiny: 24)")
    p.add_argument("--e2e-subjects", type=int, default=0, help="default 24 (tiny: 4)")
    p.add_argument("--e2e-data", choices=["memory", "prepare"], default="memory")
    p.add_argument("--e2e-set", action="append", default=[], help="KEY=VALUE config override")
    p.add_argument("--e2e-ray", action="store_true", help="also time it as one Ray Tune trial")
    p.add_argument("--merge", nargs="+", type=Path, default=None, help="JSON results to merge")
    args = p.parse_args(argv)
    if args.settings is not None:
        args.settings = [x for item in args.settings for x in item.split(",")]
    return args


def run(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the harness; returns {"meta", "rows", "skipped", "e2e"} (also written under --out)."""
    args = parse_args(argv)
    if args.list:
        for tok, text in TOKENS.items():
            print(f"{tok:11} {text}")
        for name, items in GROUPS.items():
            print(f"@{name}: {', '.join(items)}")
        return {}
    if args.merge:
        return merge(args.merge, args.out, args.tag)
    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        return _run(args)
    finally:
        torch.set_num_threads(threads)  # callers (tests) keep their setting


def _run(args: argparse.Namespace) -> dict[str, Any]:
    device = pick_device(args.device)
    spec = make_spec(args)
    t, h, w = spec.shape
    params = sum(
        p.numel() for p in build_model(spec.model_cfg, input_shape=spec.shape).parameters()
    )
    meta = describe_device(device)
    meta.update(
        {
            "config": f"{'tiny' if spec.tiny else 'casme2 preset'}, clips {t}×{h}×{w}×3",
            "params": params,
            "steps": f"{spec.steps} per window (batch-8 units), {spec.repeats} windows, warm-up "
            f"{spec.warmup}, checks {spec.check_steps} steps, pool {spec.pool} clips",
            "spec": {k: v for k, v in asdict(spec).items() if k != "model_cfg"},
        }
    )
    result: dict[str, Any] = {"meta": meta, "rows": [], "skipped": [], "e2e": None}
    if args.settings is None and not args.e2e:
        args.settings = ["@cpu"] if device.type == "cpu" else ["@main", "@stack"]
    if args.settings:
        run_matrix(args, spec, device, result)
    if args.e2e:
        result["e2e"] = run_e2e(args, device)
        print(render_e2e(result["e2e"]), flush=True)
    write_outputs(args.out, args.tag, result)
    return result


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        run(argv)
    except SettingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0

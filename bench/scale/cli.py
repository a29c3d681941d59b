"""Options, the child processes and the printed table of `python -m bench.scale`.

    python -m bench.scale                                  # 2x1, 5x1, 5x3 at 68 folds
    python -m bench.scale --shapes 1x1,2x1 --wandb disabled  # a quick look
    python -m bench.scale --out bench/scale-after.md --set tracking.wandb.granularity=variant

The parent first warms the caches (`mer prepare` of the largest shape, and `mer summary`, which
counts every variant's model statistics), then runs each size in a fresh child (`--one`), so
peak RSS is that size's own and every size starts warm; then, in another child, `--resume` of the
finished largest sweep, and `--first-runs` plain `python -m mer sweep` start-ups of the smallest
size timed to their first trial (bench/scale/first.py: nothing imported ahead of the command, as
a user runs it). Results folders go under --work (deleted unless --keep).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.scale import first as first_mod
from bench.scale import study, table
from mer.experiment.environment import cpu_name


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    p.add_argument("--folds", type=int, default=68, help="synthetic subjects = LOSO folds (68)")
    p.add_argument(
        "--shapes", default="2x1,5x1,5x3", help="variants x seeds per size (default 2x1,5x1,5x3)"
    )
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--checkpoint-every", type=int, default=1)
    p.add_argument("--num-cpus", type=int, default=2, help="CPUs of the local Ray")
    p.add_argument("--wandb", choices=("offline", "disabled"), default="offline")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--work", type=Path, default=Path("/tmp/mer-bench-scale"))
    p.add_argument("--extrapolate", type=int, default=4080, help="target study size (4,080)")
    p.add_argument("--out", type=Path, help="also write the markdown table here")
    p.add_argument("--keep", action="store_true", help="keep the results folders")
    p.add_argument("--no-resume", action="store_true", help="skip the --resume timing")
    p.add_argument(
        "--first-runs",
        type=int,
        default=3,
        help="plain `mer sweep` start-ups timed to the first trial at the smallest size (0: none)",
    )
    # child modes
    p.add_argument("--one", metavar="VxS", help=argparse.SUPPRESS)
    p.add_argument("--resume-of", metavar="VxS", help=argparse.SUPPRESS)
    p.add_argument("--json", type=Path, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _sweep_argv(args: argparse.Namespace, shape: study.Shape, out: Path) -> list[str]:
    sets = study.overrides(
        shape,
        args.work / "cache",
        epochs=args.epochs,
        checkpoint_every=args.checkpoint_every,
        extra=args.set,
    )
    argv = [str(study.SWEEP), "--out", str(out), "--wandb", args.wandb]
    argv += ["--num-cpus", str(args.num_cpus)]
    for s in sets:
        argv += ["--set", s]
    return argv


def _child(args: argparse.Namespace) -> int:
    from bench.scale import probe

    if args.one:
        shape = study.parse_shape(args.one, args.folds)
        out = args.work / f"out-{shape.label}"
        shutil.rmtree(out, ignore_errors=True)
        rec = probe.run_one(_sweep_argv(args, shape, out), out, args.work / "starts.jsonl")
        rec.update(trials=shape.trials, shape=shape.label, folds=shape.folds)
    else:
        shape = study.parse_shape(args.resume_of, args.folds)
        rec = probe.run_resume(_sweep_argv(args, shape, args.work / f"out-{shape.label}"))
    args.json.write_text(json.dumps(rec, indent=1))
    return 0


def _forward(args: argparse.Namespace) -> list[str]:
    fwd = ["--folds", str(args.folds), "--epochs", str(args.epochs)]
    fwd += ["--checkpoint-every", str(args.checkpoint_every), "--num-cpus", str(args.num_cpus)]
    fwd += ["--wandb", args.wandb, "--work", str(args.work)]
    for s in args.set:
        fwd += ["--set", s]
    return fwd


def _run_child(extra: list[str], args: argparse.Namespace, log: Path) -> dict[str, Any]:
    path = args.work / "record.json"
    path.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "bench.scale", *_forward(args), *extra, "--json", str(path)]
    with open(log, "w") as fh:
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0 or not path.exists():
        raise SystemExit(f"child {' '.join(extra)} failed (exit {proc.returncode}); see {log}")
    return json.loads(path.read_text())


def _warm(args: argparse.Namespace, shapes: list[study.Shape]) -> None:
    """Data cache and model statistics of the largest shape (every other shape's are a subset)."""
    big = max(shapes, key=lambda s: s.trials)
    sets = study.overrides(
        big, args.work / "cache", epochs=args.epochs, checkpoint_every=args.checkpoint_every,
        extra=args.set,
    )  # fmt: skip
    flags = [x for s in sets for x in ("--set", s)]
    for cmd in (["prepare", str(study.SWEEP), "--quiet"], ["summary", str(study.SWEEP)]):
        t0 = time.time()
        with open(args.work / f"warm-{cmd[0]}.log", "w") as fh:
            code = subprocess.run(
                [sys.executable, "-m", "mer", *cmd, *flags], stdout=fh, stderr=subprocess.STDOUT
            ).returncode
        if code != 0:
            raise SystemExit(f"warm-up `mer {cmd[0]}` failed; see {args.work}")
        print(f"warm-up mer {cmd[0]}: {time.time() - t0:.1f} s", flush=True)


def _machine() -> str:
    return f"{os.cpu_count()} CPUs ({cpu_name()}), Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    args.work = args.work.resolve()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.one or args.resume_of:
        return _child(args)
    shapes = [study.parse_shape(s, args.folds) for s in args.shapes.split(",")]
    print(f"machine: {_machine()}; load average {os.getloadavg()}", flush=True)
    _warm(args, shapes)
    records = []
    loads = [os.getloadavg()]
    for shape in sorted(shapes, key=lambda s: s.trials):
        print(f"running {shape.trials} trials ({shape.label}) ...", flush=True)
        rec = _run_child(["--one", shape.label], args, args.work / f"one-{shape.label}.log")
        loads.append(os.getloadavg())
        records.append(rec)
        print(
            f"  {shape.trials} trials: {rec['wall_s']:.0f} s, first trial "
            f"{rec['first_trial_s'] or float('nan'):.1f} s, driver CPU {rec['cpu_s']:.0f} s, "
            f"status {rec['status']}, load {loads[-1][0]:.2f}",
            flush=True,
        )
    if args.first_runs > 0:
        small = min(shapes, key=lambda s: s.trials)
        print(f"timing {args.first_runs} plain start-ups ({small.label}) ...", flush=True)
        argv = _sweep_argv(args, small, args.work / "first")
        first = first_mod.first_trial(argv, args.work, args.first_runs)
        next(r for r in records if r["shape"] == small.label)["first_plain"] = first
        print(f"  first trial after {first['median']:.1f} s (median)", flush=True)
    if not args.no_resume:
        big = max(shapes, key=lambda s: s.trials)
        res = _run_child(["--resume-of", big.label], args, args.work / "resume.log")
        next(r for r in records if r["shape"] == big.label)["resume"] = res
    text = "\n".join(
        [
            f"Machine: {_machine()}. Load average (1, 5, 15 min) before and after each size: "
            + "; ".join(f"{a:.2f} {b:.2f} {c:.2f}" for a, b, c in loads)
            + ".",
            f"Study: {args.folds} folds x shapes {args.shapes} (variants x seeds), "
            f"{args.epochs} epoch(s), checkpoint every {args.checkpoint_every}, local Ray of "
            f"{args.num_cpus} CPUs, W&B {args.wandb}"
            + (f", --set {' '.join(args.set)}" if args.set else "")
            + ".",
            "",
            table.markdown(records, args.extrapolate),
            "",
            *table.resume_lines(records),
        ]
    )
    print()
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
        (args.out.with_suffix(".json")).write_text(json.dumps(records, indent=1))
    if not args.keep:
        for shape in shapes:
            shutil.rmtree(args.work / f"out-{shape.label}", ignore_errors=True)
    return 0

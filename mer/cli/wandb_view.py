"""`mer wandb-view RUN_DIR`: a ready W&B workspace for a sweep (mer.sweep.workspace): the ablation
table with intervals, bar charts per variant, learning curves by variant and, for a search, a
parallel-coordinates panel, saved as a view of the sweep's W&B project.

Saving needs the network and `wandb login`; `--spec FILE` (`-` for stdout) writes the view's
specification instead, offline. An online sweep saves its view when it finishes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mer.cli import common


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "wandb-view",
        parents=[common.parent(config=False)],
        help="save a ready W&B workspace (table, bar charts, curves) for a sweep's runs",
        description="Build the W&B workspace of a sweep's results folder (its runs after "
        "`wandb sync` or an online sweep) and save it as a view of its W&B project.",
    )
    p.add_argument("run_dir", help="the sweep's output folder, e.g. results/demo")
    p.add_argument("--entity", help="W&B entity (default: tracking.wandb.entity, else yours)")
    p.add_argument(
        "--spec",
        metavar="FILE",
        help="write the view's specification (JSON) to FILE, '-' for stdout, instead of "
        "saving it (no network)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # lazy: wandb and the config schema are slow imports; `mer --help` stays fast
    from mer.sweep.workspace import build_workspace, load_sweep_config, save_workspace, view_spec

    cfg = load_sweep_config(args.run_dir)
    workspace = build_workspace(cfg, entity=args.entity, out=Path(args.run_dir))
    if args.spec:
        text = json.dumps(view_spec(workspace), indent=1, sort_keys=True)
        if args.spec == "-":
            sys.stdout.write(text + "\n")
        else:
            with open(args.spec, "w") as f:
                f.write(text + "\n")
            print(f"W&B view specification: {args.spec}")
        return 0
    print(f"W&B workspace of {cfg.name}: {save_workspace(workspace)}")
    return 0

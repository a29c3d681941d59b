"""`mer cache list|clean`: the prepared-data caches of a cache dir (mer.data.listing)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mer.cli import common


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    c = subparsers.add_parser(
        "cache",
        parents=[common.parent(config=False)],
        help="list the prepared-data caches, or remove superseded and unused ones",
        description="`list`: every cache of a cache dir (key, dataset, size, last used, the "
        "sweeps using it). `clean`: remove superseded caches (same data settings, rebuilt), "
        "leftovers of killed builds, and with --older-than caches unused that long.",
    )
    c.add_argument("action", choices=("list", "clean"))
    c.add_argument(
        "--cache-dir", default=None,
        help="the cache dir (default: data.cache_dir of --config, else ~/.cache/mer)",
    )  # fmt: skip
    c.add_argument("--config", default=None, help="a sweep YAML whose data.cache_dir to use")
    c.add_argument("--older-than", type=float, default=None, metavar="DAYS",
                   help="clean: also remove caches not used for DAYS days")  # fmt: skip
    c.add_argument("--key", action="append", default=[], help="clean: remove this cache")
    c.add_argument("--dry-run", action="store_true", help="clean: say what would be removed")
    c.add_argument("--json", action="store_true", help="list: JSON instead of text")
    c.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # lazy: the config schema and the cache modules import numpy and pandas; `mer --help` stays
    # fast
    from mer.config import DataConfig, load_config
    from mer.data import listing
    from mer.data.budget import fmt_bytes

    root = args.cache_dir
    if root is None and args.config:
        root = load_config(args.config, []).data.cache_dir
    if root is None:
        root = DataConfig().cache_dir
    root = Path(root).expanduser()
    if args.action == "list":
        entries = listing.list_caches(root)
        if args.json:
            print(json.dumps(listing.as_json(entries), indent=1))
        else:
            print("\n".join(listing.describe(entries, root)))
        return 0
    removed, skipped = listing.clean(
        root, older_than=args.older_than, keys=args.key, dry_run=args.dry_run
    )
    verb = "would remove" if args.dry_run else "removed"
    for e in removed:
        print(f"{verb} {e.path}  {fmt_bytes(e.bytes)}  ({e.stale})")
    for e, why in skipped:
        print(f"kept {e.path}: {why}")
    total = sum(e.bytes for e in removed)
    print(f"{verb} {len(removed)} entr{'y' if len(removed) == 1 else 'ies'}, {fmt_bytes(total)}")
    return 0

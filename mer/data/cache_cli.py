"""`mer prepare SWEEP.yaml [--verify] [--dry-run]` and `mer cache list|clean`: the command-line
glue of the prepared-data cache (the work is in mer.data.cache, preflight and listing)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "prepare",
        help="decode clips, select frames and crop regions once for every data config of a sweep",
        description="Prepare (or reuse) the cached arrays of every distinct data config among "
        "the sweep's variants; prints each cache path, clip count and speed. An interrupted "
        "prepare continues where it stopped; clips that fail are reported together at the end.",
    )
    p.add_argument("config", help="sweep YAML")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key (repeatable), e.g. data.size=64")  # fmt: skip
    p.add_argument(
        "--workers", type=int, default=0,
        help="decoding processes (default 0: one per CPU, at most 8)",
    )  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--verify", action="store_true",
        help="check every byte of existing caches against their manifests' digests (without "
        "it: shapes, sizes and a sample of 3 clips per array)",
    )  # fmt: skip
    p.add_argument(
        "--dry-run", action="store_true",
        help="decode nothing: check the media without decoding and estimate the sizes",
    )  # fmt: skip
    p.set_defaults(func=_cmd_prepare)

    c = subparsers.add_parser(
        "cache",
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
    c.set_defaults(func=_cmd_cache)


def _cmd_prepare(args: argparse.Namespace) -> int:
    # lazy: the config schema and the decoders are slow imports; `mer --help` stays fast
    from mer.config import load_config

    cfg = load_config(args.config, args.set)
    if args.dry_run:
        from mer.data.preflight import dry_run_lines

        print("\n".join(dry_run_lines(cfg)))
        return 0
    from mer.data.cache import prepare_sweep

    used_by = f"mer prepare {Path(args.config).resolve()}"
    for data, built, seconds in prepare_sweep(
        cfg, progress=not args.quiet, workers=args.workers, verify=args.verify, used_by=used_by
    ):
        n = len(data.samples)
        speed = f"{n / max(seconds, 1e-9):.1f} clips/s" if built else "reused, nothing decoded"
        oracle = "  [oracle regions]" if data.oracle_input else ""
        checked = "  verified" if args.verify and not built else ""
        print(f"{data.path}  {n} clips  {speed}{oracle}{checked}")
    return 0


def _cmd_cache(args: argparse.Namespace) -> int:
    from mer.data import listing

    root = args.cache_dir
    if root is None and args.config:
        from mer.config import load_config

        root = load_config(args.config, []).data.cache_dir
    if root is None:
        from mer.config import DataConfig

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
    from mer.data.budget import fmt_bytes

    verb = "would remove" if args.dry_run else "removed"
    for e in removed:
        print(f"{verb} {e.path}  {fmt_bytes(e.bytes)}  ({e.stale})")
    for e, why in skipped:
        print(f"kept {e.path}: {why}")
    total = sum(e.bytes for e in removed)
    print(f"{verb} {len(removed)} entr{'y' if len(removed) == 1 else 'ies'}, {fmt_bytes(total)}")
    return 0

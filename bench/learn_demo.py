"""Does the full pipeline learn? Synthetic CASME II-layout data → every LOSO fold → pooled UF1.

The full dual-branch model (EC-CBAM, GRU, MSMH; AU-region branch B with `au_oracle` regions from
the annotated synthetic landmarks), shrunk in width so that the whole protocol trains on two CPU
cores in well under two minutes, with the paper's training recipe (weighted CE, L2 on the four
kernels, Adam) and a fixed epoch budget. Target: pooled LOSO UF1 >= 0.6.

    python -m bench.learn_demo                 # prints data/prepare/train seconds and scores
    python -m bench.learn_demo --epochs 30 --set data.synthetic.intensity=1.5

The results are oracle (regions chosen from ground-truth AUs): that is what the demo checks, the
whole data → model → metrics path, not a benchmark number.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from typing import Any

# The demo configuration (the values reported to the sweep owner for sweeps/demo.yaml).
DEMO_CONFIG: dict[str, Any] = {
    "name": "learn-demo",
    "data": {
        "dataset": "synthetic",
        "synthetic": {
            "layout": "casme2",
            "subjects": 6,
            "clips": 9,
            "frames": 24,
            "size": 96,
            "seed": 0,
            "intensity": 4.0,
            "framing": "face",
        },
        "frames": {"count": 8, "select": "motion_topk"},
        "size": 32,
        "regions": {"landmarks": "annotated", "policy": "au_oracle"},
    },
    "protocol": {"split": "loso", "selection": "fixed_epochs"},
    "model": {
        "preset": "casme2",
        "conv_a_channels": 8,
        "conv_b_channels": 8,
        "merge_channels": 16,
        "attention_reduction": 4,
        "pool": 2,
        "dense": [32, 16],
        "recurrent_units": 32,
        "msmh_scales": [2, 4, 8, 16],
        "head": [32, 16],
        "dropout": 0.3,
    },
    "train": {
        "epochs": 60,
        "batch_size": 8,
        "lr": 3.0e-3,
        "lr_step": 0,
        "scaling": "train_stats",
        "threads": 1,
    },
    "seeds": [0],
}


def demo_config(overrides: list[str] | None = None, cache_dir: str | None = None):
    from mer.config import apply_overrides, from_dict

    raw = apply_overrides(DEMO_CONFIG, list(overrides or []))
    if cache_dir is not None:
        raw["data"]["cache_dir"] = cache_dir
    return from_dict(raw)


def run_demo(cfg, *, seed: int = 0, progress: bool = False) -> dict[str, Any]:
    """Prepare the data, train every fold in this process, pool; returns timings and scores."""
    import pandas as pd

    from mer.data.cache import prepare_data
    from mer.metrics import pooled_report
    from mer.protocol import make_folds
    from mer.train import run_fold

    t0 = time.perf_counter()
    data = prepare_data(cfg.data, progress=progress)
    t_data = time.perf_counter() - t0
    folds = make_folds(data.samples, cfg.protocol, seed)
    t1 = time.perf_counter()
    results = [run_fold(cfg, data, f, seed, progress=progress) for f in folds]
    t_train = time.perf_counter() - t1
    pred = pd.concat([r.predictions for r in results], ignore_index=True)
    report = pooled_report(pred, cfg.model.num_classes, data.class_names)
    return {
        "clips": len(data.samples),
        "clip_shape": tuple(data.global_clips.shape[1:]),
        "folds": len(folds),
        "params": results[0].params,
        "prepare_s": t_data,
        "train_s": t_train,
        "report": report,
        "results": results,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, help="override train.epochs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--cache-dir", help="default: a fresh temporary folder (data built anew)")
    ap.add_argument("--progress", action="store_true")
    args = ap.parse_args(argv)
    overrides = list(args.set) + ([f"train.epochs={args.epochs}"] if args.epochs else [])
    with tempfile.TemporaryDirectory(prefix="mer-learn-demo-") as tmp:
        cfg = demo_config(overrides, args.cache_dir or tmp)
        threads = cfg.train.threads or os.cpu_count()
        t0 = time.perf_counter()
        out = run_demo(cfg, seed=args.seed, progress=args.progress)
        total = time.perf_counter() - t0
    rep = out["report"]
    c = rep["composite"]
    print(
        f"learn demo: {out['clips']} clips {out['clip_shape']}, {out['folds']} LOSO folds, "
        f"model {out['params']:,} params, {cfg.train.epochs} epochs, {threads} threads"
    )
    print(
        f"  seconds: prepare {out['prepare_s']:.1f}  train {out['train_s']:.1f}  total {total:.1f}"
    )
    print(f"  pooled LOSO  uf1 {c['uf1']:.3f}  uar {c['uar']:.3f}  acc {c['acc']:.3f}")
    print(f"  confusion (rows true, cols pred) {rep['confusion']}  oracle {rep.get('oracle')}")
    ok = c["uf1"] >= 0.6
    print(f"  target uf1 >= 0.6: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

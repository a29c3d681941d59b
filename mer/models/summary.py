"""Parameters, forward GFLOPs and output shape of every ablation variant (`mer summary`).

Models are built on the meta device: no memory is allocated and no weights are drawn, so even the
10 M-parameter presets at 30×128×128 are summarised in well under a second. FLOPs are those
`torch.utils.flop_counter.FlopCounterMode` counts (matmuls and convolutions, 2 per multiply-add;
pooling, activations and other elementwise ops are not counted) for one clip, forward only.

Counting needs torch (seconds to import) and, on its first use in a process, torch._dynamo (which
FlopCounterMode's dispatch wrapper imports): about 2 s for the first model and a few tenths for
each further one. A sweep plans every variant's model before it starts, so the numbers are cached
on disk by what determines them (`stats_key`: the model section, the input shape, the source of
mer/models and the torch version) under `{data.cache_dir}/model_stats/`: a second start of the
same sweep (or `--resume`) counts nothing and imports no torch for it. A cached entry holds the
numbers the counter gave, unchanged.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from mer.config import ExperimentConfig, flatten, to_dict, variant_config
from mer.errors import ConfigError
from mer.util.files import write_text_atomic

log = logging.getLogger(__name__)
STATS_DIR = "model_stats"


def input_shape(cfg: ExperimentConfig) -> tuple[int, int, int, int, int]:
    """(1, C, T, H, W): one clip of this config's prepared data."""
    return (1, cfg.model.in_channels, cfg.data.frames.count, cfg.data.size, cfg.data.size)


@lru_cache(maxsize=1)
def code_digest() -> str:
    """The source of the model code and the torch version: counts change when either does."""
    h = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    with contextlib.suppress(metadata.PackageNotFoundError):
        h.update(metadata.version("torch").encode())
    return h.hexdigest()


def stats_key(cfg: ExperimentConfig) -> str:
    """What a model's statistics depend on: its model section, the input shape, the code."""
    what = {"model": to_dict(cfg.model), "shape": input_shape(cfg), "code": code_digest()}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:24]


def stats_path(cfg: ExperimentConfig) -> Path:
    return Path(cfg.data.cache_dir).expanduser() / STATS_DIR / f"{stats_key(cfg)}.json"


def model_stats(cfg: ExperimentConfig, *, cache: bool = True) -> dict[str, Any]:
    """params (int), gflops (forward, one clip) and output_shape of cfg's model, on meta; read
    from the cache when counted before (`cache`: use and fill it; see the module docstring)."""
    path = stats_path(cfg) if cache else None
    if path is not None and path.exists():
        try:
            found = json.loads(path.read_text())
            return {
                "params": int(found["params"]),
                "gflops": float(found["gflops"]),
                "output_shape": tuple(int(n) for n in found["output_shape"]),
            }
        except (OSError, ValueError, KeyError, TypeError):
            log.warning("%s: unreadable model statistics; counting again", path)
    stats = count_model(cfg)
    if path is not None:
        try:
            write_text_atomic(
                path, json.dumps({**stats, "output_shape": list(stats["output_shape"])})
            )
        except OSError as exc:  # a read-only cache only costs the next start the counting
            log.warning("could not cache model statistics in %s: %s", path, exc)
    return stats


def count_model(cfg: ExperimentConfig) -> dict[str, Any]:
    """params (int), gflops (forward, one clip) and output_shape of cfg's model, on meta."""
    # lazy: torch takes ~1 s to import; cached statistics (and `mer --help`) need none of it
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from mer.models.network import build_model, count_parameters

    shape = input_shape(cfg)
    with torch.device("meta"):
        model = build_model(cfg.model, input_shape=shape[2:])
        x = torch.empty(shape)
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            out = model(x, x)
    return {
        "params": count_parameters(model),
        "gflops": counter.get_total_flops() / 1e9,
        "output_shape": tuple(out.shape),
    }


def switches(cfg: ExperimentConfig) -> dict[str, Any]:
    """Every resolved setting as dotted keys (model.*, data.*, train.*, ...), without the
    ablation table itself, so a variant's differences show whatever section they touch."""
    return {k: v for k, v in flatten(cfg).items() if k != "ablations"}


def summary_rows(cfg: ExperimentConfig) -> list[dict[str, Any]]:
    """One row per ablation variant: variant, params, gflops, output_shape, differs."""
    rows = []
    base: dict[str, Any] | None = None
    for name in cfg.variants:
        vcfg = variant_config(cfg, name)
        current = switches(vcfg)
        if base is None:
            base = current
        keys = list(current) + [k for k in base if k not in current]
        differs = {k: current.get(k) for k in keys if base.get(k) != current.get(k)}
        try:
            stats = model_stats(vcfg)
        except ConfigError as exc:
            raise ConfigError(f"ablations.{name}: {exc}") from None
        rows.append({"variant": name, **stats, "differs": differs})
    return rows


def _fmt_value(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ",".join(str(v) for v in value) + "]"
    return str(value)


def format_table(rows: list[dict[str, Any]]) -> str:
    header = ["variant", "parameters", "GFLOPs", "output", "differs from " + rows[0]["variant"]]
    body = []
    for row in rows:
        differs = ", ".join(
            f"{k.removeprefix('model.')}={_fmt_value(v)}" for k, v in row["differs"].items()
        )
        body.append(
            [
                row["variant"],
                f"{row['params']:,}",
                f"{row['gflops']:.2f}",
                "×".join(str(n) for n in row["output_shape"]),
                differs or "-",
            ]
        )
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    right = {1, 2}

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), sep, *(line(r) for r in body)])

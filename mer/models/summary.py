"""Parameters, forward GFLOPs and output shape of every ablation variant (`mer summary`).

Models are built on the meta device: no memory is allocated and no weights are drawn, so even the
10 M-parameter presets at 30×128×128 are summarised in well under a second. FLOPs are those
`torch.utils.flop_counter.FlopCounterMode` counts (matmuls and convolutions, 2 per multiply-add;
pooling, activations and other elementwise ops are not counted) for one clip, forward only.
"""

from __future__ import annotations

import logging
from typing import Any

from mer.config import ExperimentConfig, flatten, variant_config
from mer.errors import ConfigError

log = logging.getLogger(__name__)


def input_shape(cfg: ExperimentConfig) -> tuple[int, int, int, int, int]:
    """(1, C, T, H, W): one clip of this config's prepared data."""
    return (1, cfg.model.in_channels, cfg.data.frames.count, cfg.data.size, cfg.data.size)


def model_stats(cfg: ExperimentConfig) -> dict[str, Any]:
    """params (int), gflops (forward, one clip) and output_shape of cfg's model, on meta."""
    import torch  # here, not at import time: `mer --help` stays fast
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

"""The original code's per-dataset model configurations (MODEL.md §4), as ModelConfig values.

Dataset-side settings of those scripts (T, branch-B input, epochs, LR step) live in the sweep
YAMLs (`data.frames.count`, `data.regions.policy`, `train.*`), since they are not the model's.
"""

from __future__ import annotations

from dataclasses import replace

from mer.config import ModelConfig

_CASME2 = ModelConfig(preset="casme2")

PRESETS: dict[str, ModelConfig] = {
    "casme2": _CASME2,
    "samm": replace(_CASME2, preset="samm", dropout=0.3),
    "smic": replace(
        _CASME2, preset="smic", merge_channels=32, attention="ec_cbam_sum", dropout=0.3
    ),
    "casme3": replace(_CASME2, preset="casme3", pool=2, head_dropout=0.3),
    "deception": replace(_CASME2, preset="deception", merge_channels=32, dropout=0.3, num_classes=2),
}

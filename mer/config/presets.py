"""The original code's per-dataset model configurations (MODEL.md §4) as plain data: each preset's
`model.*` values that differ from ModelConfig's defaults (which are the casme2 preset).

`model.preset: NAME` in a sweep expands to these values, and keys written beside it win. Plain
data, so that the config does not import the models package; `mer.models.presets.PRESETS` builds
the ModelConfig of each from here. Parameter counts and notes: mer/models/presets.py.
"""

from __future__ import annotations

from typing import Any

MODEL_PRESETS: dict[str, dict[str, Any]] = {
    "casme2": {},
    "samm": {"dropout": 0.3},
    "smic": {"merge_channels": 32, "attention": "ec_cbam_sum", "dropout": 0.3},
    "casme3": {"pool": 2, "head_dropout": 0.3},
    # Lie-detection script: besides MSMH, a causal Keras MultiHeadAttention(num_heads=4,
    # key_dim=512) max-pooled over time, concatenated (510 + 512 → head); extra Dropout(0.3)
    # after the per-step stack, before the head and after head layers 1, 2. ≈7.1 M at T=16.
    "deception": {
        "merge_channels": 32,
        "dropout": 0.3,
        "dense_out_dropout": 0.3,
        "pooling": "msmh_mha",
        "mha_heads": 4,
        "mha_key_dim": 512,
        "mha_causal": True,
        "head_in_dropout": 0.3,
        "head_dropout": 0.3,
        "num_classes": 2,
    },
    # CAS(ME)^2 and MEVIEW: one script in the original (`CAS(ME)2_MEVIEW/`): pool 2 like casme3
    # but without its extra head dropout, 4 classes (negative, positive, surprise, others); at
    # T = 8 the GRU sees 2 steps. Two names, one model, so each sweep names its dataset.
    "casme_sq": {"pool": 2, "num_classes": 4},
    "meview": {"pool": 2, "num_classes": 4},
}

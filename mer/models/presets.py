"""The original code's per-dataset model configurations (MODEL.md §4), as ModelConfig values
(the values themselves are plain data in mer.config.presets, which the config expands).

Dataset-side settings of those scripts (T, branch-B input, epochs, LR step) live in the sweep
YAMLs (`data.frames.count`, `data.regions.policy`, `train.*`), since they are not the model's.

Parameter counts (tests/test_model_network.py asserts them), input (T, 128, 128):

| preset    | T  | params     | where the size goes                                          |
|-----------|----|------------|--------------------------------------------------------------|
| casme2    | 30 |  3,817,055 | MODEL.md §1                                                  |
| samm      | 30 |  3,817,055 | casme2 with dropout 0.3                                      |
| smic      | 10 |  2,836,759 | 32 merge channels: per-step Linear 15·15·32 = 7,200 → 128    |
| casme3    | 30 | 10,362,463 | pool 2: 30→15→8, 128→64→32; Linear 32·32·64 = 65,536 → 128   |
| deception | 16 |  7,103,190 | 32 channels, 16→6→2; + MHA(4 heads, key 512) 4,200,960,     |
|           |    |            | head 1,022 → 128                                             |
| casme_sq, | 8  | 10,362,528 | pool 2: 8→4→2 GRU steps, 128→64→32; 4 classes (CAS(ME)^2 and |
| meview    |    |            | MEVIEW share one script in the original)                     |
"""

from __future__ import annotations

from mer.config import MODEL_PRESETS, ModelConfig

# Built from the config's plain preset data (mer/config/presets.py), which `model.preset` expands.
PRESETS: dict[str, ModelConfig] = {
    name: ModelConfig(preset=name, **values) for name, values in MODEL_PRESETS.items()
}


# The paper's SMIC ablation rows (MODEL.md §7) as variants of the `smic` preset (T = 10), usable as
# a sweep's `ablations:` mapping. The rows' exact layers are not in the published code, so this is
# the closest reading of their names; the counts below are ours (PyTorch), and the paper gives a
# size only for the last two rows.
#
# | row                          | params     | paper  | notes                                  |
# |------------------------------|------------|--------|----------------------------------------|
# | single branch, CE / WCE      |    986,467 |   -    | no recurrent layer: what the original  |
# |                              |            |        | did between steps and head is unknown; |
# |                              |            |        | here the mean over steps               |
# | single + LSTM                |  2,227,555 |   -    | Keras LSTM has one bias: 2,225,507     |
# | single + GRU                 |  1,931,619 |   -    | GRU's last step goes to the head       |
# | single + GRU + CBAM          |  1,932,598 |   -    | standard CBAM, 32 channels             |
# | dual + CBAM                  |  1,962,870 |   -    |                                        |
# | dual + EC-CBAM               |  1,964,235 |   -    |                                        |
# | dual + EC-CBAM + multi-head  | 10,365,643 | 10.5 M | Keras MultiHeadAttention(8, key_dim=  |
# |                              |            |        | 512) = 8,401,408 in place of MSMH; no  |
# |                              |            |        | clean key_dim gives 10.5 M exactly     |
# | dual + EC-CBAM + MSMH        |  2,836,759 | 2.8 M  | the smic preset                        |
_SINGLE = {"model.branches": "single", "model.attention": "none", "model.pooling": "last"}
SMIC_ABLATIONS: dict[str, dict[str, object]] = {
    "single_ce": {
        **_SINGLE,
        "model.recurrent": "none",
        "model.pooling": "mean",
        "train.loss": "ce",
    },
    "single_wce": {**_SINGLE, "model.recurrent": "none", "model.pooling": "mean"},
    "single_lstm": {**_SINGLE, "model.recurrent": "lstm"},
    "single_gru": {**_SINGLE},
    "single_gru_cbam": {**_SINGLE, "model.attention": "cbam"},
    "dual_cbam": {"model.attention": "cbam", "model.pooling": "last"},
    "dual_ec_cbam": {"model.pooling": "last"},
    "dual_ec_cbam_mha": {"model.pooling": "mha", "model.mha_heads": 8, "model.mha_key_dim": 512},
    "dual_ec_cbam_msmh": {},
}

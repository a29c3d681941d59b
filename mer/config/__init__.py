"""Typed, validated experiment configuration (a sweep YAML as pydantic models).

Modules, one job each: `types` (strict field types), `schema` (the sections), `checks` (rules
across keys), `messages` (validation errors as one-line messages), `presets` (model presets as
plain data), `yamlio` (YAML 1.2 in and out), `overrides` (dotted `--set` overrides), `plain`
(config as plain data: to_dict, config_hash, flatten), `load` (files, variants, derived configs).
Search spaces are parsed and checked by the sweep layer (mer.sweep.space.check_search_config).
"""

from mer.config.load import from_dict, load_config, replace, variant_config, with_overrides
from mer.config.overrides import apply_overrides, parse_override, set_dotted
from mer.config.plain import config_hash, flatten, get_dotted, to_dict
from mer.config.presets import MODEL_PRESETS
from mer.config.schema import (
    AugmentConfig,
    DataConfig,
    ExperimentConfig,
    FacesConfig,
    FramesConfig,
    ModelConfig,
    ObjectiveConfig,
    ProtocolConfig,
    RegionsConfig,
    ReportConfig,
    ResourcesConfig,
    SearchConfig,
    SourceConfig,
    SyntheticConfig,
    TrackingConfig,
    TrainConfig,
    WandbConfig,
)
from mer.config.yamlio import dump_yaml, read_yaml

__all__ = [
    "MODEL_PRESETS",
    "AugmentConfig",
    "DataConfig",
    "ExperimentConfig",
    "FacesConfig",
    "FramesConfig",
    "ModelConfig",
    "ObjectiveConfig",
    "ProtocolConfig",
    "RegionsConfig",
    "ReportConfig",
    "ResourcesConfig",
    "SearchConfig",
    "SourceConfig",
    "SyntheticConfig",
    "TrackingConfig",
    "TrainConfig",
    "WandbConfig",
    "apply_overrides",
    "config_hash",
    "dump_yaml",
    "flatten",
    "from_dict",
    "get_dotted",
    "load_config",
    "parse_override",
    "read_yaml",
    "replace",
    "set_dotted",
    "to_dict",
    "variant_config",
    "with_overrides",
]

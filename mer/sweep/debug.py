"""One trial of a sweep in this process, without Ray (`mer sweep X.yaml --trial V/FOLD[/SEED]`).

Why: a trial that fails on the cluster must be reproducible where a debugger works. This runs the
very code a Tune trial runs (`mer.sweep.trial.execute_trial`, with a LocalReporter in place of
Tune's), on the same plan and prepared data, and files its results under OUT/debug/ (never among
the sweep's own results). `--resume` continues from the trial's last local checkpoint.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from mer.config import ExperimentConfig, variant_config
from mer.data.cache import prepare_data
from mer.errors import ConfigError
from mer.experiment.plan import TrialSpec, build_plan, data_key_of
from mer.experiment.store import ResultsStore
from mer.sweep.hooks import load_trial_hooks
from mer.sweep.trial import LocalReporter, execute_trial

log = logging.getLogger(__name__)


def run_one_trial(
    cfg: ExperimentConfig, text: str, out: Path, *, resume: bool
) -> tuple[TrialSpec, dict[str, Any], Path]:
    """Run trial `text` (VARIANT/FOLD[/SEED]) of the sweep `cfg` whose results folder is `out`;
    returns its spec, final payload and the folder its files went to (OUT/debug/trials/...)."""
    variant = text.split("/")[0]
    if not variant or text.count("/") not in (1, 2):
        raise ConfigError(f"--trial {text!r}: expected VARIANT/FOLD[/SEED], e.g. full/sub01/0")
    if variant not in cfg.ablations:
        raise ConfigError(
            f"--trial {text!r}: unknown variant {variant!r}; this sweep has "
            f"{', '.join(cfg.ablations)}"
        )
    hooks = load_trial_hooks()
    vcfg = variant_config(cfg, variant)
    data = prepare_data(vcfg.data)
    key = data_key_of(vcfg.data)
    plan = build_plan(
        cfg, lambda d: (data.samples, list(data.class_names)), variants={variant: vcfg}
    )
    assert plan.variants[variant].data_key == key
    spec = plan.resolve_trial(text)
    store = ResultsStore(out / "debug")
    folder = store.trial_dir(spec)
    reporter = LocalReporter(folder / "checkpoint", resume=resume)
    log.info("trial %s in this process (no Ray); results in %s", spec.id, folder)
    payload = execute_trial(
        spec,
        vcfg,
        data,
        plan.fold(spec),
        reporter,
        hooks=hooks,
        report_every_s=0.0,
        plan_oracle=plan.variants[variant].oracle,
    )
    store.write_trial(spec, payload)
    return spec, payload, folder

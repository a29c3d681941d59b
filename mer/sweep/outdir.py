"""The results folder of a sweep over its lifetime: naming, checks, clearing, the storage record.

Why apart from the session: these rules decide, before any data is prepared or Ray started,
whether this run may use the folder at all, and they must hold for every mode (ablation, search,
hold-out evaluation). The folder is claimed first (mer.experiment.claim: its lock, and the list of
entries this sweep may write), so a second run on it is refused before either prepares data. A
folder holding files no sweep wrote is never filled or deleted; a sweep's folder is only
continued (`--resume`, with the same config) or replaced (`--overwrite`: only the entries a sweep
recorded as its own are deleted, and only once the new run is ready to start, so a run that
cannot start keeps the old results); and a `--resume` must find the Tune state where the sweep
put it (`storage.json`).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import yaml

from mer.config import ExperimentConfig, FacesConfig, SearchConfig, flatten, to_dict
from mer.errors import ConfigError, DataError
from mer.experiment import claim, layout
from mer.sweep.options import RunOptions
from mer.util.jsonio import read_json, write_json

log = logging.getLogger(__name__)

EXPERIMENT = "tune"  # Tune experiment folder under OUT/ray


def output_dir(cfg: ExperimentConfig, out: str | Path | None) -> Path:
    """`--out` or `{cfg.output}/{cfg.name}`, absolute."""
    path = Path(out) if out else Path(cfg.output).expanduser() / cfg.name
    return path.expanduser().resolve()


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def shared_experiment_name(name: str, out: Path) -> str:
    """A new Tune experiment of a sweep under a shared --storage: its name, a digest of its
    results folder and the start time, so two sweeps of one config (other --out, other --set
    values, or an --overwrite of the same folder) never restore each other's checkpoints.
    `--resume` reads the name back from OUT/storage.json."""
    digest = hashlib.sha256(str(Path(out).resolve()).encode()).hexdigest()[:8]
    return f"{_safe(name)}-{digest}-{time.strftime('%Y%m%d-%H%M%S')}"


def storage_key(storage: str | None) -> str | None:
    """--storage as Tune gets it and runs compare it: local paths absolute (Tune's pyarrow
    refuses relative ones), URIs (s3://...) as given without a trailing slash."""
    if not storage:
        return None
    if "://" in storage:
        return storage.rstrip("/")
    return str(Path(storage).expanduser().resolve())


def _read_storage_record(out: Path) -> dict[str, Any] | None:
    path = out / layout.STORAGE_FILE
    if not path.exists():
        return None
    try:
        record = read_json(path, what="it records --storage")
    except DataError as exc:  # a --resume option problem: the run stops before it starts
        raise ConfigError(str(exc)) from None
    return record if isinstance(record, dict) else {}


def _check_storage(opts: RunOptions) -> None:
    """--resume must find the Tune state where the sweep put it: refuse another --storage."""
    record = _read_storage_record(opts.out)
    if record is None:
        return
    recorded = record.get("storage")
    if storage_key(recorded) != storage_key(opts.storage):
        where = f"--storage {recorded}" if recorded else "no --storage (OUT/ray)"
        now = f"--storage {opts.storage}" if opts.storage else "no --storage"
        raise ConfigError(
            f"--resume: {opts.out} keeps its Tune state under {where}, but this run has {now}; "
            "resume with the same --storage (its checkpoints are there)"
        )


def experiment_for(cfg: ExperimentConfig, opts: RunOptions) -> str:
    """The Tune experiment this run uses: `tune` under OUT/ray; under a shared --storage the
    one OUT/storage.json names when resuming, the pre-storage.json name for a sweep older than
    that file, else a new one."""
    if not opts.storage:
        return EXPERIMENT
    record = _read_storage_record(opts.out) if opts.resume else None
    if record and record.get("experiment"):
        return str(record["experiment"])
    if opts.resume and (opts.out / layout.CONFIG_FILE).exists():
        return _safe(cfg.name)  # written by a mer without storage.json: its experiment name
    return shared_experiment_name(cfg.name, opts.out)


def record_storage(opts: RunOptions, experiment: str) -> None:
    """OUT/storage.json: where this run keeps its Tune state, for `experiment_for` on --resume."""
    record = {"storage": storage_key(opts.storage), "experiment": experiment}
    write_json(opts.out / layout.STORAGE_FILE, record, indent=None)


def foreign_entries(out: Path) -> list[str]:
    """Entries of `out` no sweep writes: a folder holding them is not ours to fill or delete."""
    if not out.is_dir():
        return []
    return sorted(e.name for e in out.iterdir() if not layout.is_sweep_entry(e.name))


def _check_usable(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: is a file; the results folder must be a folder")
    foreign = foreign_entries(out)
    if foreign:
        raise ConfigError(
            f"{out} holds files no sweep wrote ({', '.join(foreign[:5])}"
            f"{' ...' if len(foreign) > 5 else ''}); choose an empty or new folder with --out"
        )


def sweep_entries(cfg: ExperimentConfig | None) -> set[str]:
    """Every entry a sweep of `cfg` may write in its results folder (its hold-out evaluation's
    folder too), but the claim folder, which no sweep deletes."""
    names = set(layout.SWEEP_ENTRIES) - {layout.CLAIM_DIR}
    if cfg is not None and cfg.search is not None:
        names.add(layout.holdout_name(cfg))
    return names


def claim_out_dir(cfg: ExperimentConfig, opts: RunOptions) -> claim.FolderClaim:
    """Take the results folder for this run before any work (refused while another mer process
    writes it) and record, before writing any, which entries this sweep creates there."""
    _check_usable(opts.out)
    held = claim.claim(opts.out, "search" if cfg.search is not None else "sweep", command=opts.argv)
    try:
        claim.record_owned(opts.out, sweep_entries(cfg))
    except BaseException:
        held.release()
        raise
    return held


def _overwrite_plan(out: Path, cfg: ExperimentConfig | None) -> tuple[list[str], list[str]]:
    """--overwrite: (entries to delete, entries kept) of `out`; ConfigError when an entry holding
    results is not recorded as a sweep's own (an older mer's sweep, or put there by hand): the
    new sweep would mix its results with them, and mer deletes nothing it did not write."""
    owned = claim.owned_entries(out)
    present = sorted(e.name for e in out.iterdir() if e.name != layout.CLAIM_DIR)
    delete = [e for e in present if owned is not None and e in owned]
    kept = [e for e in present if e not in delete]
    blocking = [e for e in kept if layout.is_sweep_entry(e) and e not in layout.SIDE_ENTRIES]
    if blocking:
        raise ConfigError(
            f"--overwrite: {out} holds {', '.join(blocking[:8])}"
            f"{' ...' if len(blocking) > 8 else ''}, which no sweep recorded as its own "
            f"({layout.CLAIM_DIR}/{claim.OWNED_FILE}: "
            "written by an older mer, or by hand), so mer deletes none of it; delete them "
            "yourself, continue that sweep with --resume, or use another --out"
        )
    return delete, kept


def check_out_dir(cfg: ExperimentConfig, opts: RunOptions) -> bool:
    """Refuse an output folder this run may not use; True when --overwrite is to clear it
    (done by the caller only once the data and plan are ready, so a failing run keeps it)."""
    out = opts.out
    _check_usable(out)
    try:  # an unwritable --out fails now, not after data preparation and Ray start-up
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot create the results folder ({exc})") from None
    previous = out / layout.CONFIG_FILE
    if opts.overwrite and not opts.resume:
        return bool(_overwrite_plan(out, cfg)[0])
    if not previous.exists():
        if opts.resume:
            log.info("--resume: no sweep in %s yet; starting it", out)
        return False
    if not opts.resume:
        raise ConfigError(
            f"{out} already holds a sweep's results; continue it with --resume, write elsewhere "
            "with --out DIR, or replace it with --overwrite"
        )
    old_raw = yaml.safe_load(previous.read_text()) or {}
    old = flatten(old_raw)
    new = flatten(to_dict(cfg))
    # a key a newer mer added (absent from the old file) at its default changes nothing, nor
    # one set to what mer did before it existed (data.faces: FacesConfig.LEGACY)
    defaults = flatten(to_dict(ExperimentConfig()))
    defaults.update({f"search.{k}": v for k, v in flatten(to_dict(SearchConfig())).items()})
    defaults.update({f"data.faces.{k}": v for k, v in to_dict(FacesConfig()).items()})
    legacy = {f"data.faces.{k}": v for k, v in FacesConfig.LEGACY.items()}
    # resources.* say where and how many trials run, report.* how results are shown, not what
    # the trials compute: both free to change
    diff = sorted(
        k
        for k in set(old) | set(new)
        if old.get(k) != new.get(k)
        and not (k not in old and new.get(k) in (defaults.get(k), legacy.get(k, defaults.get(k))))
        and not k.startswith(("resources.", "report."))
    )
    if diff:
        raise ConfigError(
            f"--resume: the config differs from the sweep in {out} at {', '.join(diff[:8])}"
            f"{' ...' if len(diff) > 8 else ''}; resume with the same config and --set "
            "options, or use --out for a new sweep"
        )
    _check_faces_legacy(old_raw, cfg, out)
    _check_storage(opts)
    return False


def _check_faces_legacy(old_raw: dict[str, Any], cfg: ExperimentConfig, out: Path) -> None:
    """A sweep started before data.faces existed must not go on with faces handled otherwise."""
    from mer.data.keys import legacy_changes  # lazy: the data code loads pandas (start-up)

    changed = legacy_changes(old_raw, cfg)
    if changed:
        sets = " ".join(f"--set data.faces.{k}={v}" for k, v in FacesConfig.LEGACY.items())
        raise ConfigError(
            f"--resume: the sweep in {out} was started before data.faces existed, and today's "
            f"defaults (dlib min_score, face tracking, per-clip boxes) would prepare other data "
            f"for {', '.join(changed)} than its finished trials had; resume with the faces "
            f"handling it had ({sets.replace('True', 'true').replace('False', 'false')}), "
            "or use --out for a new sweep"
        )


def clear_out_dir(out: Path, cfg: ExperimentConfig | None = None) -> None:
    """--overwrite: remove the entries a sweep recorded as its own (mer.experiment.claim), and
    nothing else: whatever else is there (a report folder you made, a data cache built inside
    --out since the folder was checked) is kept and named."""
    delete, kept = _overwrite_plan(out, cfg)
    log.warning(
        "--overwrite: removing the previous results in %s (%s)", out, ", ".join(delete) or "none"
    )
    if kept:
        log.warning("--overwrite: kept %s in %s (no sweep recorded them as its own)",
                    ", ".join(kept), out)  # fmt: skip
    for name in delete:
        entry = out / name
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()

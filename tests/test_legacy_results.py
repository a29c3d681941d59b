"""Results folders written by an OLD mer (commit b1a5e1d, before the structure refactor) must
still resume and report with today's code. The folders are tests/fixtures/legacy/{ablation,search}
(how they were made, and why they are never regenerated: tests/fixtures/legacy/README.md).

Tune pickles objects by class path into its experiment state (tuner.pkl, experiment_state*.json,
the searcher's and variant generator's state): every path in LEGACY_PICKLED_PATHS must stay
importable, and unpickle into the objects the current code uses, or an interrupted sweep of a
user can no longer be resumed.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import pickle
import pickletools
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.support import faults

pytest.importorskip("ray")

REPO = Path(__file__).resolve().parents[1]
LEGACY = REPO / "tests" / "fixtures" / "legacy"
# Where make_fixtures.py ran the sweeps: the pickles hold this absolute path (README.md). The
# tests resume copies elsewhere and check that nothing is written here.
ORIGINAL = Path("/tmp/mer-legacy-b1a5e1d")

# Every mer class or function that the fixtures' pickles name (module:qualname). Moving one of
# these needs an alias at the old path (and the alias must BE the class the code now uses).
LEGACY_PICKLED_PATHS = frozenset(
    {
        # tuner.pkl: RunConfig(callbacks=[SweepCallback(), ...]); the search's TuneConfig holds
        # the FoldFanoutSearcher, whose __dict__ holds ExperimentConfig dataclasses (the sweep
        # config and one per variant) and the parsed search space
        "mer.sweep.runner:SweepCallback",
        "mer.sweep.search.searcher:FoldFanoutSearcher",
        "mer.sweep.space:SearchSpace",
        "mer.sweep.space:Param",
        "mer.config:ExperimentConfig",
        "mer.config:DataConfig",
        "mer.config:SyntheticConfig",
        "mer.config:FramesConfig",
        "mer.config:RegionsConfig",
        "mer.config:ProtocolConfig",
        "mer.config:ModelConfig",
        "mer.config:TrainConfig",
        "mer.config:AugmentConfig",
        "mer.config:SearchConfig",
        "mer.config:ObjectiveConfig",
        "mer.config:ResourcesConfig",
        "mer.config:TrackingConfig",
        "mer.config:WandbConfig",
        # experiment_state*.json (every trial), basic-variant-state / search_gen_state: the
        # TuneConfig's trial_name_creator and trial_dirname_creator
        "mer.sweep.runner:trial_name",
        "mer.sweep.runner:trial_dirname",
    }
)
# Named by folders written before the search module became a package (commit 44a3c2f); no
# fixture holds them, mer.sweep.search re-exports both.
OLDER_PICKLED_PATHS = frozenset({"mer.sweep.search:FoldFanoutSearcher", "mer.sweep.search:_Open"})
# tuner.pkl records the trainable's name; Tuner.restore refuses a trainable named otherwise.
LEGACY_TRAINABLE_NAME = "tune_trainable"

_STRING_OPS = frozenset(
    {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING"}
    | {"STRING"}
)
_HEX_PICKLE = re.compile(r"80(?:[0-9a-f]{2})+")  # Ray's hex-encoded cloudpickles in JSON


def pickled_globals(data: bytes) -> set[str]:
    """The module:qualname of every class or function a pickle refers to (loads nothing)."""
    memo: dict[int, Any] = {}
    stack: list[Any] = []  # only what STACK_GLOBAL reads matters: the last two strings pushed
    found: set[str] = set()
    for op, arg, _ in pickletools.genops(data):
        name = op.name
        if name in _STRING_OPS:
            stack.append(arg)
        elif name == "MEMOIZE":
            memo[len(memo)] = stack[-1] if stack else None
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[arg] = stack[-1] if stack else None
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            stack.append(memo.get(arg))
        elif name == "GLOBAL":
            module, qualname = arg.split(" ", 1)
            found.add(f"{module}:{qualname}")
            stack.append(None)
        elif name == "STACK_GLOBAL":
            found.add(f"{stack[-2]}:{stack[-1]}")
            stack[-2:] = [None]
        else:
            stack.append(None)
    return found


def _embedded_pickles(obj: Any) -> Iterator[bytes]:
    """Hex-encoded pickles inside Tune's experiment_state JSON (itself nested JSON strings)."""
    if isinstance(obj, dict):
        for value in obj.values():
            yield from _embedded_pickles(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from _embedded_pickles(value)
    elif isinstance(obj, str):
        if _HEX_PICKLE.fullmatch(obj):
            yield bytes.fromhex(obj)
        elif obj[:1] in ("{", "["):
            with contextlib.suppress(ValueError):  # a string that only looks like JSON
                yield from _embedded_pickles(json.loads(obj))


def legacy_pickles(out: Path) -> Iterator[tuple[Path, bytes]]:
    """Every pickle under OUT/ray: tuner.pkl, searcher / variant generator states (some named
    .json), trials' params.pkl, and those embedded in experiment_state*.json."""
    for path in sorted((out / "ray").rglob("*")):
        if not path.is_file():
            continue
        raw = path.read_bytes()
        if raw[:1] == b"\x80":
            yield path, raw
        elif path.name.startswith("experiment_state") and path.suffix == ".json":
            for data in _embedded_pickles(json.loads(raw)):
                yield path, data


def _resolve(path: str) -> Any:
    module, qualname = path.split(":")
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _tuner_state(kind: str) -> dict[str, Any]:
    return pickle.loads((LEGACY / kind / "out" / "ray" / "tune" / "tuner.pkl").read_bytes())


# ----------------------------------------------------------------------------- fast checks
def test_every_path_the_legacy_pickles_name_is_importable():
    found: dict[str, set[str]] = {}
    scanned: set[str] = set()
    for kind in ("ablation", "search"):
        for path, data in legacy_pickles(LEGACY / kind / "out"):
            scanned.add(re.sub(r"-\d{4}-.*", "", path.name))
            for name in pickled_globals(data):
                found.setdefault(name, set()).add(f"{kind}/{path.name}")
    assert scanned == {
        "tuner.pkl", "params.pkl", "experiment_state", "basic-variant-state",
        "search_gen_state", "searcher-state",
    }  # fmt: skip
    mer_paths = {name for name in found if name.split(".")[0].split(":")[0] == "mer"}
    assert mer_paths == LEGACY_PICKLED_PATHS  # the list above is complete, and all in use
    unresolved = []
    for name in sorted(set(found) | OLDER_PICKLED_PATHS):
        try:
            _resolve(name)
        except (ImportError, AttributeError) as exc:
            unresolved.append(f"{name} ({sorted(found.get(name, ['older folders']))[0]}): {exc}")
    assert not unresolved, "\n".join(unresolved)


def test_legacy_ablation_tuner_state_unpickles_into_the_current_callback():
    from mer.sweep.runner import SweepCallback, trial_dirname, trial_name

    state = _tuner_state("ablation")
    assert state["__trainable_name"] == LEGACY_TRAINABLE_NAME
    callbacks = state["_run_config"].callbacks
    # the very class Session.run registers: a look-alike copy left at the old path would
    # unpickle fine but forward nothing (results of resumed trials never filed)
    assert [type(c) for c in callbacks if type(c).__name__ == "SweepCallback"] == [SweepCallback]
    tune_config = state["_tune_config"]
    assert tune_config.trial_name_creator is trial_name
    assert tune_config.trial_dirname_creator is trial_dirname


def test_legacy_searcher_unpickles_with_its_config_and_takes_its_saved_state():
    from mer.config import load_config, to_dict
    from mer.sweep.search import FoldFanoutSearcher
    from mer.sweep.trial import tune_trainable

    state = _tuner_state("search")
    assert state["__trainable_name"] == LEGACY_TRAINABLE_NAME == tune_trainable.__name__
    searcher = state["_tune_config"].search_alg
    assert isinstance(searcher, FoldFanoutSearcher)
    assert searcher.folds == {"full": ["kfold0", "kfold1", "kfold2"]}
    assert searcher.storage == str(ORIGINAL / "search" / "out" / "search" / "study.journal")
    # the pickled __dict__ (attribute names and the ExperimentConfig dataclasses in it) is the
    # legacy format: the current code must read it as the config the sweep ran
    cfg = searcher._cfg
    assert to_dict(cfg) == to_dict(load_config(LEGACY / "search.yaml"))
    assert cfg.search.trials == 3 and cfg.model.merge_channels == 8
    assert to_dict(searcher._vcfgs["full"]) == to_dict(cfg)
    # what Tune does on restore: searcher.restore(searcher-state-*.pkl) -> set_state
    (saved,) = (LEGACY / "search" / "out" / "ray" / "tune").glob("searcher-state-*.pkl")
    searcher.restore(str(saved))
    with open(saved, "rb") as fh:
        expected = pickle.load(fh)
    assert searcher.get_state() == expected
    assert [(c["number"], c["pending"], c["outstanding"]) for c in expected["open"]] == [
        (1, [2], [1])
    ]


def test_legacy_checkpoint_loads_into_the_current_model():
    """The interrupted trial's Tune checkpoint (its resume loads it): format, model state dict
    keys and shapes as the current network builds them."""
    import torch

    from mer.config import load_config, variant_config
    from mer.models.network import build_model
    from mer.training.loop import CHECKPOINT_FORMAT

    ckpts = sorted((LEGACY / "ablation" / "out" / "ray" / "tune").glob("*/checkpoint_*/state.pt"))
    assert ckpts
    cfg = variant_config(load_config(LEGACY / "ablation.yaml"), "regions_none")
    for path in ckpts:
        state = torch.load(path, map_location="cpu", weights_only=True)
        assert state["format"] == CHECKPOINT_FORMAT
        assert (state["fold"], state["seed"], state["selection"]) == (
            "casme2/sub01",
            0,
            "fixed_epochs",
        )
        model = build_model(cfg)
        model.load_state_dict(state["model"])  # strict: same parameter names and shapes
        groups = state["optimizer"]["param_groups"]
        assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


# ------------------------------------------------------------------------------ resume runs
def _env(events: Path) -> dict[str, str]:
    prefixes = ("RAY_", "MER_TEST_", "MER_TRIAL_HOOKS")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env.update(PYTHONPATH=str(REPO), MER_TRIAL_HOOKS=faults.HOOKS)
    env.update(MER_TEST_TRIAL_EVENTS=str(events))
    return env


def _resume(run: Path, kind: str, concurrent: int, events: Path) -> subprocess.CompletedProcess:
    """The command that made the fixture (make_fixtures.py) plus --resume, in its folder."""
    events.touch()
    cmd = [sys.executable, str(REPO / "run_sweep.py"), f"{kind}.yaml", "--out", "out"]
    cmd += ["--resume", "--max-concurrent", str(concurrent), "--num-cpus", "1"]
    return subprocess.run(
        cmd, cwd=run, env=_env(events), capture_output=True, text=True, timeout=600
    )


def _events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def _filed_files(out: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in out.glob("trials/*/*/*/*")
        if p.name in ("result.json", "predictions.csv", "history.csv")
    }


def _filed_trials(out: Path) -> set[str]:
    """Ids of the trials whose results the driver filed (an event log's "end" is no proof: a
    trial may train to its end in its worker after the driver has stopped listening)."""
    return {json.loads(p.read_text())["trial"] for p in out.glob("trials/*/*/*/result.json")}


def _report_table(out: Path, dest: Path) -> pd.DataFrame:
    from mer.cli import main

    assert main(["report", str(out), "--out", str(dest), "--format", "md"]) == 0
    assert (dest / "report.md").stat().st_size > 0
    return pd.read_csv(dest / "report.csv")


@pytest.mark.slow
def test_interrupted_legacy_ablation_resumes_in_a_moved_folder(tmp_path):
    run = tmp_path / "ablation"
    shutil.copytree(LEGACY / "ablation", run)
    shutil.copy(LEGACY / "ablation.yaml", run / "ablation.yaml")
    out = run / "out"
    before = _filed_files(out)
    first = _events(run / "events.jsonl")
    finished = _filed_trials(out)
    interrupted = {e["trial"] for e in first if e["event"] == "start"} - finished
    assert len(finished) == 3 and len(before) == 3 * 3 and len(interrupted) == 1
    (stopped,) = interrupted
    tune_dir = next((out / "ray" / "tune").glob(stopped.replace("/", "__") + "-*"))
    import torch

    ckpt_epochs = {
        torch.load(p, weights_only=True)["epoch"] for p in tune_dir.glob("checkpoint_*/state.pt")
    }
    summary_before = pd.read_csv(out / "summary.csv").set_index("variant")
    original_existed = (ORIGINAL / "ablation").exists()

    events = tmp_path / "events.jsonl"
    done = _resume(run, "ablation", 6, events)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    assert "restoring the Tune experiment" in done.stderr  # Tuner.restore of the old tuner.pkl

    after = _filed_files(out)
    assert {k: after[k] for k in before} == before  # finished trials' files byte for byte
    assert len(after) == 6 * 3
    resumed = _events(events)
    starts = [e["trial"] for e in resumed if e["event"] == "start"]
    ends = [e["trial"] for e in resumed if e["event"] == "end"]
    planned = {f"{v}/casme2/sub0{i}/s0" for v in ("full", "regions_none") for i in (1, 2, 3)}
    assert sorted(starts) == sorted(ends) == sorted(planned - finished)  # each once, no rerun
    (restart,) = [e for e in resumed if e["event"] == "start" and e["trial"] == stopped]
    assert restart["resumed_from"] in ckpt_epochs and restart["resumed_from"] > 0
    variant, *fold, seed = stopped.split("/")  # trials/VARIANT/SEED/FOLD (fold's / -> __)
    stopped_dir = out / "trials" / variant / seed[1:] / "__".join(fold)
    assert (
        json.loads((stopped_dir / "result.json").read_text())["resumed_from"]
        == (restart["resumed_from"])
    )

    summary = pd.read_csv(out / "summary.csv").set_index("variant")
    assert list(summary.index) == ["full", "regions_none"]
    assert summary["complete"].all() and (summary["status"] == "complete").all()
    assert (summary["folds_done"] == 3).all() and (summary["folds_total"] == 3).all()
    metrics = ["uf1_mean", "uar_mean", "acc_mean"]
    assert summary.loc["full", metrics].tolist() == summary_before.loc["full", metrics].tolist()

    table = _report_table(out, tmp_path / "report").set_index("variant")
    assert list(table.index) == list(summary.index)
    for variant, row in summary.iterrows():
        for m in metrics:
            assert table.loc[variant, m] == pytest.approx(row[m], abs=1e-12), (variant, m)
        assert table.loc[variant, "folds_done"] == table.loc[variant, "folds_total"] == 3
        assert table.loc[variant, "complete"]
    # Tune rebased every restored trial to the moved folder: nothing went to the old one
    assert original_existed or not (ORIGINAL / "ablation").exists()


def _moved_search(tmp_path: Path) -> Path:
    """The search fixture copied to a folder it was not made in (README.md: its pickles name
    /tmp/mer-legacy-b1a5e1d/search); the fixture's bytes stay as they are."""
    run = tmp_path / "search"
    shutil.copytree(LEGACY / "search", run)
    shutil.copy(LEGACY / "search.yaml", run / "search.yaml")
    return run


def _study(journal: Path) -> Any:
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(journal)))
    return optuna.load_study(study_name="legacy-search/full", storage=storage)


@pytest.mark.slow
def test_interrupted_legacy_search_resumes_its_searcher_and_study_in_a_moved_folder(tmp_path):
    """The pickled searcher (tuner.pkl) holds the first run's journal path and results folder,
    and Tune's restored search algorithm the first run's storage path: a moved folder resumes
    from where it is, and nothing is written at the old place."""
    from optuna.trial import TrialState

    original_existed = ORIGINAL.exists()
    run = _moved_search(tmp_path)
    out = run / "out"
    copy = tmp_path / "before.journal"  # read the old study from a copy: Optuna locks the file
    shutil.copy(out / "search" / "study.journal", copy)
    old = _study(copy).get_trials()
    assert [t.state for t in old] == [TrialState.COMPLETE, TrialState.RUNNING]
    assert set(old[1].user_attrs) >= {"fold_000"} and "fold_001" not in old[1].user_attrs
    before = _filed_files(out)
    finished = _filed_trials(out)
    assert finished == {f"full.c0000/kfold{i}/s0" for i in range(3)} | {"full.c0001/kfold0/s0"}

    events = tmp_path / "events.jsonl"
    done = _resume(run, "search", 1, events)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    assert "restoring the Tune experiment" in done.stderr
    # Tune unpickled the FoldFanoutSearcher from tuner.pkl and gave it its saved state
    assert "restored searcher state (1 open configuration(s))" in done.stderr

    trials = _study(out / "search" / "study.journal").get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3  # budget 3, none wasted
    assert [t.params for t in trials[:2]] == [t.params for t in old]  # config 1 continued
    assert trials[0].values == old[0].values
    assert trials[1].user_attrs["fold_000"] == old[1].user_attrs["fold_000"]
    assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == 3  # none repeated

    after = _filed_files(out)
    assert {k: after[k] for k in before} == before
    starts = sorted(e["trial"] for e in _events(events) if e["event"] == "start")
    search_starts = [s for s in starts if s.startswith("full.c")]
    assert search_starts == ["full.c0001/kfold1/s0", "full.c0001/kfold2/s0"] + [
        f"full.c0002/kfold{i}/s0" for i in range(3)
    ]
    held = json.loads((out / "plan.json").read_text())["variants"]["full"]["holdout_subjects"]
    assert [s for s in starts if s not in search_starts] == sorted(f"full/{s}/s0" for s in held)

    summary = pd.read_csv(out / "search" / "summary.csv")
    assert summary["config_id"].tolist() == [0, 1, 2]
    assert (summary["state"] == "COMPLETE").all() and (summary["folds_done"] == 3).all()
    for t in trials:
        assert summary.loc[t.number, "uf1"] == pytest.approx(t.values[0], abs=1e-12)
    best = json.loads((out / "search" / "best.json").read_text())["variants"]["full"]
    assert best["best"]["config_id"] == max(trials, key=lambda t: t.values[0]).number
    assert best["holdout"]["available"] and best["holdout"]["n_test"] > 0

    # the study, the new trials' Tune folders and cancel markers: all in the moved folder
    assert original_existed or not ORIGINAL.exists()
    tune_dirs = {p.name.split("-")[0] for p in (out / "ray" / "tune").glob("full*__s0-*")}
    assert {f"full.c0002__kfold{i}__s0" for i in range(3)} <= tune_dirs
    assert "the results folder is " in done.stderr  # the searcher said where it resumes

    table = _report_table(out, tmp_path / "report").set_index("variant")
    labels = {f"full.c{t.number:04d}": t for t in trials}
    assert sorted(table.index) == sorted(labels)
    for label, t in labels.items():
        assert table.loc[label, "uf1_mean"] == pytest.approx(t.values[0], abs=1e-12)
        assert table.loc[label, "uf1_mean"] == pytest.approx(
            summary.loc[t.number, "uf1"], abs=1e-12
        )


@pytest.mark.slow
def test_a_fold_filed_before_the_search_was_told_is_taken_from_the_results_folder(tmp_path):
    """The driver files a fold's results a moment before Tune tells the searcher: stopped in
    between, the fold is in OUT/trials but not in the study. On --resume the trainable skips it
    as done, and the searcher must take its result from the results folder (it used to fail
    the configuration: "the runner skipped the trial as done, but the study holds no result")."""
    from optuna.trial import TrialState

    run = _moved_search(tmp_path)
    out = run / "out"
    # fold 1 of configuration 1 (running when the fixture was interrupted) as if filed then:
    # its val rows are written here, so the study must end up holding exactly these labels
    src, dst = (out / "trials" / "full.c0001" / "0" / f"kfold{i}" for i in (0, 1))
    shutil.copytree(src, dst)
    info = json.loads((dst / "result.json").read_text())
    info.update(trial="full.c0001/kfold1/s0", fold="kfold1", fold_index=1)
    (dst / "result.json").write_text(json.dumps(info))
    pred = pd.read_csv(dst / "predictions.csv").assign(fold="kfold1")
    pred.loc[pred["split"] == "val", "pred"] = pred.loc[pred["split"] == "val", "true"]
    pred.to_csv(dst / "predictions.csv", index=False)
    val = pred[pred["split"] == "val"]

    events = tmp_path / "events.jsonl"
    done = _resume(run, "search", 1, events)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    trials = _study(out / "search" / "study.journal").get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    rec = trials[1].user_attrs["fold_001"]
    assert rec["val_true"] == val["true"].tolist() and rec["val_pred"] == val["pred"].tolist()
    starts = sorted(e["trial"] for e in _events(events) if e["event"] == "start")
    assert "full.c0001/kfold1/s0" not in starts  # never trained again
    assert [s for s in starts if s.startswith("full.c")] == ["full.c0001/kfold2/s0"] + [
        f"full.c0002/kfold{i}/s0" for i in range(3)
    ]

"""Nothing lost, nothing mixed, nothing run that was not meant (issue 17), without Ray: the results
folder's lock and owned-entries record, --overwrite next to foreign files, names that must stay
one folder, finite configs and the non-finite loss guard, `cpu_per_trial: 0`, what --resume may
unpickle, SIGTERM as SIGINT, the Ray watchdog, and a fold filed before the driver stopped.
The runs with Ray are in test_reliability_ray.py; the bad-input campaign in
test_bad_input_campaign.py."""

from __future__ import annotations

import json
import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from mer.cli import main as mer_main
from mer.config import load_config
from mer.errors import ConfigError
from mer.experiment import claim, layout
from mer.sweep.options import RunOptions
from mer.sweep.outdir import check_out_dir, claim_out_dir, clear_out_dir
from tests.conftest import tiny_overrides

REPO = Path(__file__).resolve().parents[1]
DEMO = str(REPO / "sweeps" / "demo.yaml")


def _sets(tmp_path: Path, *extra: str) -> list[str]:
    return [a for o in [*tiny_overrides(tmp_path / "cache"), *extra] for a in ("--set", o)]


HOLD = """
import sys, time
from mer.experiment.claim import claim
claim(sys.argv[1], "sweep", command=["mer", "sweep", "held.yaml"])
print("HELD", flush=True)
time.sleep(600)
"""


@contextmanager
def _holder(script: str, folder: Path, ready: str) -> Iterator[subprocess.Popen]:
    """Another process running `script` on `folder`, once it printed `ready` (killed after)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(folder)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == ready
        yield proc
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
def held_folder(tmp_path):
    """A results folder whose lock another process holds (killed at the end)."""
    folder = tmp_path / "held"
    with _holder(HOLD, folder, "HELD") as proc:
        yield folder, proc


# --------------------------------------------------------------------------- 1: the lock
def test_a_second_writer_is_refused_naming_who_holds_the_folder(held_folder, tmp_path, capsys):
    folder, proc = held_folder
    with pytest.raises(ConfigError) as err:
        claim.claim(folder, "sweep")
    msg = str(err.value)
    assert f"is in use by a sweep (pid {proc.pid} on {socket.gethostname()}, started " in msg
    assert "mer sweep held.yaml" in msg and "use another --out" in msg
    # a sweep, `mer train --out` and a report writing inside the folder: all refused, exit 2
    ray_starts = sum(1 for t in threading.enumerate() if t.name == "mer-ray-start")
    assert mer_main(["sweep", DEMO, *_sets(tmp_path), "--out", str(folder)]) == 2
    assert f"pid {proc.pid}" in capsys.readouterr().err
    assert not (tmp_path / "cache").exists()  # refused before any data was prepared
    # ... and before Ray was started for it (mer.sweep.startup claims first)
    assert sum(1 for t in threading.enumerate() if t.name == "mer-ray-start") == ray_starts
    args = ["train", DEMO, *_sets(tmp_path), "--fold", "sub01", "--out", str(folder)]
    assert mer_main(args) == 2
    assert f"pid {proc.pid}" in capsys.readouterr().err
    assert mer_main(["report", str(folder)]) == 2
    assert f"pid {proc.pid}" in capsys.readouterr().err
    # a report written elsewhere only reads the folder: not refused by the lock
    assert mer_main(["report", str(folder), "--out", str(tmp_path / "elsewhere")]) == 2
    assert f"pid {proc.pid}" not in capsys.readouterr().err


SLOW_HOLDER = """
import json, os, sys, time
from filelock import FileLock
from mer.experiment import claim
folder = sys.argv[1]
os.makedirs(f"{folder}/.mer", exist_ok=True)
lock = FileLock(f"{folder}/.mer/{claim.LOCK_FILE}", timeout=0)
lock.acquire()
print("LOCKED", flush=True)
time.sleep(0.5)  # two runs started together on a loaded box: the holder record comes late
claim.write_json(f"{folder}/.mer/{claim.HOLDER_FILE}", {"kind": "sweep", "pid": os.getpid(),
    "host": "here", "command": "mer sweep late.yaml", "started": "now"})
time.sleep(600)
"""


def test_a_run_that_finds_the_lock_taken_waits_for_its_holder_to_say_who(tmp_path):
    """Started together, the second run finds the lock taken before its holder wrote who it is:
    the refusal still names the holder (it used to say only "another mer process")."""
    folder = tmp_path / "held"
    with (
        _holder(SLOW_HOLDER, folder, "LOCKED") as proc,
        pytest.raises(ConfigError, match=rf"in use by a sweep \(pid {proc.pid} on here"),
    ):
        claim.claim(folder, "sweep")


def test_a_lock_left_by_a_dead_process_is_taken_over_with_a_message(held_folder, caplog):
    folder, proc = held_folder
    proc.kill()  # SIGKILL: its holder record stays, the kernel frees the lock
    proc.wait()
    assert claim.holder(folder).pid == proc.pid
    with caplog.at_level(logging.WARNING, logger="mer.experiment.claim"):
        held = claim.claim(folder, "report")
    try:
        assert f"taking over the lock left by a sweep (pid {proc.pid}" in caplog.text
        assert "no longer running" in caplog.text
        assert claim.holder(folder).pid == os.getpid() and claim.holder(folder).kind == "report"
        assert claim.claim(folder, "sweep") is held  # re-entrant in one process
        held.release()
        assert claim.holder(folder) is not None  # still held once
    finally:
        held.release()
    assert claim.holder(folder) is None


# ------------------------------------------------------------------- 2: safe --overwrite
def test_overwrite_never_deletes_what_no_sweep_recorded(tmp_path, capsys):
    """The issue's case: no config.yaml, but report/, debug/, search/ and summary.md holding the
    user's files. --overwrite used to remove them all and exit 0."""
    out = tmp_path / "thesis"
    for rel, text in {
        "report/thesis.tex": "months of work",
        "debug/notes.txt": "notes",
        "search/ideas.txt": "ideas",
        "summary.md": "my summary",
    }.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(text)
    assert mer_main(["sweep", DEMO, *_sets(tmp_path), "--out", str(out), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "--overwrite:" in err and "search, summary.md" in err and "deletes none of it" in err
    assert (out / "report" / "thesis.tex").read_text() == "months of work"
    assert (out / "debug" / "notes.txt").read_text() == "notes"
    assert (out / "search" / "ideas.txt").read_text() == "ideas"
    assert (out / "summary.md").read_text() == "my summary"
    assert not (tmp_path / "cache").exists()


def test_overwrite_deletes_exactly_the_entries_the_sweep_recorded(tmp_path, caplog):
    cfg = load_config(DEMO)
    out = tmp_path / "run"
    (out / "debug").mkdir(parents=True)  # `mer train` wrote here before any sweep
    (out / "debug" / "notes.txt").write_text("keep me")
    opts = RunOptions(out=out, argv=["mer", "sweep"])
    claim_out_dir(cfg, opts).release()  # the first sweep records what it may write
    assert claim.owned_entries(out) == set(layout.SWEEP_ENTRIES) - {".mer", "debug"}
    for name in ("trials", "report", "ray"):
        (out / name).mkdir()
    (out / "config.yaml").write_text("name: previous\n")
    (out / "summary.md").write_text("old table")
    over = RunOptions(out=out, overwrite=True)
    held = claim_out_dir(cfg, over)
    try:
        assert check_out_dir(cfg, over) is True
        with caplog.at_level(logging.WARNING, logger="mer.sweep.outdir"):
            clear_out_dir(out, cfg)
    finally:
        held.release()
    assert sorted(p.name for p in out.iterdir()) == [".mer", "debug"]
    assert (out / "debug" / "notes.txt").read_text() == "keep me"
    assert "kept debug" in caplog.text
    # an entry holding results that no sweep recorded (an older mer's trials/) stops it
    (out / "trials").mkdir()
    (out / ".mer" / "owned.json").write_text(json.dumps({"format": 1, "entries": ["report"]}))
    with pytest.raises(ConfigError, match=r"--overwrite: .* holds trials, which no sweep recorded"):
        check_out_dir(cfg, over)
    assert (out / "trials").is_dir()


# --------------------------------------------------------------------------------- 4: names
@pytest.mark.parametrize(
    "override, words",
    [
        ("ablations={'..': {}}", "variant name '..' is a folder name"),
        ("ablations={'.': {}}", "variant name '.' is a folder name"),
        ("ablations={'a/b': {}}", "variant name 'a/b' is a folder name"),
        ("name=..", "name: expected a folder name"),
        ("name=/tmp/elsewhere", "name: expected a folder name"),
        ("name=../up", "name: expected a folder name"),
    ],
)
def test_names_are_one_safe_folder_name(override, words):
    with pytest.raises(ConfigError, match=words.replace(".", r"\.")):
        load_config(DEMO, [override])


def test_an_absolute_name_cannot_redirect_the_results(tmp_path, capsys):
    target = tmp_path / "elsewhere"
    args = ["sweep", DEMO, *_sets(tmp_path, f"name={target}", f"output={tmp_path / 'results'}")]
    assert mer_main(args) == 2
    assert "name: expected a folder name" in capsys.readouterr().err
    assert not target.exists() and not (tmp_path / "results").exists()


# ---------------------------------------------------------------------- 5: finite numbers
@pytest.mark.parametrize(
    "override",
    [
        "train.lr=.inf",
        "train.lr=.nan",
        "model.dropout=.nan",
        "train.l2=.nan",
        "train.augment.rotate=.nan",
        "train.augment.brightness=.inf",
        "train.betas=[.nan, 0.999]",
        "train.class_weights=[.nan, 1, 1]",
        "resources.gpu_per_trial=.inf",
        "data.synthetic.intensity=.inf",
        "report.level=.nan",
    ],
)
def test_non_finite_numbers_are_refused(override):
    key = override.split("=")[0]
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(DEMO, [override])


def test_a_non_finite_loss_stops_the_fold_naming_the_epoch(tmp_path, capsys):
    """lr 1e30 is finite (accepted) but diverges at once: the fold stops with an error naming
    the epoch, nothing is filed as a result. It used to train on NaN and report scores."""
    out = tmp_path / "fold"
    args = ["train", DEMO, *_sets(tmp_path, "train.lr=1e30"), "--fold", "sub01", "--out", str(out)]
    assert mer_main([*args, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert (
        "train.on_nan: error: the training loss of fold casme2/sub01 (seed 0) is nan at epoch 1"
        in err
    )
    assert not (out / "result.json").exists() and not (out / "predictions.csv").exists()
    assert load_config(DEMO).train.on_nan == "error"
    # `ignore` trains on, as mer did before the guard: scores of a diverged model
    assert mer_main([*args, "--no-progress", "--set", "train.on_nan=ignore"]) == 0
    assert (out / "result.json").exists()


# --------------------------------------------------------------------- 10: cpu_per_trial 0
def test_cpu_per_trial_zero_is_refused_unless_gpus_limit_the_trials():
    from mer.sweep.resources import trial_resources

    with pytest.raises(ConfigError, match="resources.cpu_per_trial: 0 with gpu_per_trial 0"):
        load_config(DEMO, ["resources.cpu_per_trial=0", "resources.gpu_per_trial=0"])
    cfg = load_config(DEMO, ["resources.cpu_per_trial=0", "resources.gpu_per_trial=0.5"])
    # meaningful with GPUs: trials ask for half a GPU each and nothing else
    assert trial_resources(cfg, {"CPU": 4.0, "GPU": 2.0}) == {"CPU": 0.0, "GPU": 0.5}
    with pytest.raises(ConfigError, match="trials get no GPU share .the cluster has no GPU"):
        trial_resources(cfg, {"CPU": 4.0})  # no GPU: the share drops to 0, nothing asked


# ------------------------------------------------------------ 3: what --resume unpickles
class _Planted:
    def __reduce__(self):
        return (os.system, ("touch PLANTED_RAN",))


def _tune_state(out: Path) -> Path:
    exp = out / "ray" / "tune"
    exp.mkdir(parents=True)
    (exp / "tuner.pkl").write_bytes(pickle.dumps({"ok": 1}))
    (exp / "experiment_state-x.json").write_text("{}")
    return exp


def test_resume_state_is_checked_before_anything_is_unpickled(tmp_path, monkeypatch):
    from mer.sweep.resumecheck import check_before_restore, record_state

    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    exp = _tune_state(out)
    (out / ".mer").mkdir()
    check_before_restore(out, str(exp), str(out / "ray"))  # no record: owner/permissions only
    record_state(out, str(exp), ended=True)
    check_before_restore(out, str(exp), str(out / "ray"))
    # a pickle replaced after the run ended: refused, and nothing was unpickled
    (exp / "tuner.pkl").write_bytes(pickle.dumps(_Planted()))
    with pytest.raises(ConfigError, match=r"tuner.pkl changed after the sweep's last run ended"):
        check_before_restore(out, str(exp), str(out / "ray"))
    (exp / "tuner.pkl").write_bytes(pickle.dumps({"ok": 1}))
    (exp / "searcher-state-x.pkl").write_bytes(pickle.dumps(_Planted()))
    with pytest.raises(ConfigError, match=r"searcher-state-x.pkl appeared after"):
        check_before_restore(out, str(exp), str(out / "ray"))
    (exp / "searcher-state-x.pkl").unlink()
    # permissions: a pickle (or a folder above it) anyone may write
    (exp / "tuner.pkl").chmod(0o666)
    with pytest.raises(ConfigError, match=r"tuner.pkl is writable by every user"):
        check_before_restore(out, str(exp), str(out / "ray"))
    (exp / "tuner.pkl").chmod(0o644)
    (out / "ray").chmod(0o777)
    with pytest.raises(ConfigError, match=r"ray is writable by every user"):
        check_before_restore(out, str(exp), str(out / "ray"))
    (out / "ray").chmod(0o755)
    record_state(out, str(exp), ended=False)  # a run started and was killed: no digests
    (exp / "tuner.pkl").write_bytes(pickle.dumps({"ok": 2}))
    check_before_restore(out, str(exp), str(out / "ray"))
    assert not (tmp_path / "PLANTED_RAN").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file to another user")
def test_resume_state_owned_by_another_user_is_refused(tmp_path):
    from mer.sweep.resumecheck import check_before_restore

    out = tmp_path / "out"
    exp = _tune_state(out)
    os.chown(exp / "tuner.pkl", 65534, 65534)
    with pytest.raises(ConfigError, match=r"tuner.pkl is owned by .*uid 65534.*, not by you"):
        check_before_restore(out, str(exp), str(out / "ray"))


# ----------------------------------------------------------------------- 9: SIGTERM, Ray
def test_sigterm_takes_the_sigint_path():
    from mer.util import signals

    previous = signal.getsignal(signal.SIGTERM)
    # outside a Tune run SIGINT is Python's own handler (an earlier test in this process may
    # have left another one installed)
    previous_sigint = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        signals.sigterm_as_interrupt()
        with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
        assert signals.terminated()
        seen = []
        previous_int = signal.signal(signal.SIGINT, lambda s, f: seen.append(s))
        try:
            os.kill(os.getpid(), signal.SIGTERM)  # during a Tune run: Tune's SIGINT handler
            time.sleep(0.2)
        finally:
            signal.signal(signal.SIGINT, previous_int)
        assert seen == [signal.SIGINT]
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_sigint)
        signals._state.update(installed=False, terminated=False)


def test_a_stop_signal_to_tunes_handlers_is_noted_and_still_handled():
    """Tune returns normally when a signal stops it; the watcher tells that run from one whose
    trials all ended (mer.sweep.ablation.run_ended), without changing what the signal does."""
    from mer.util.signals import StopSignals

    got: list[int] = []

    def tunes_sigint(sig, frame):  # Tune's: note the stop, then put back the handler before it
        got.append(sig)
        signal.signal(signal.SIGINT, previous_sigint)

    previous_sigint = signal.signal(signal.SIGINT, tunes_sigint)
    previous_usr1 = signal.signal(signal.SIGUSR1, lambda s, f: got.append(s))
    try:
        quiet = StopSignals()
        quiet.watch()
        quiet.unwatch()
        assert not quiet.seen and signal.getsignal(signal.SIGINT) is tunes_sigint
        watcher = StopSignals()
        watcher.watch()
        watcher.watch()  # a second setup (a rerun) does not wrap the wrapper
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)
        assert watcher.seen and got == [signal.SIGINT]
        assert signal.getsignal(signal.SIGINT) is previous_sigint  # Tune's own restore stands
        os.kill(os.getpid(), signal.SIGUSR1)
        time.sleep(0.2)
        assert got == [signal.SIGINT, signal.SIGUSR1]
        watcher.unwatch()
        assert signal.getsignal(signal.SIGINT) is previous_sigint
        assert signal.getsignal(signal.SIGUSR1) is not watcher._on_signal  # put back
        # a default disposition is never wrapped: watching must not change what a signal does
        signal.signal(signal.SIGUSR1, signal.SIG_DFL)
        untouched = StopSignals()
        untouched.watch()
        assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL
    finally:
        signal.signal(signal.SIGINT, previous_sigint)
        signal.signal(signal.SIGUSR1, previous_usr1)


def test_a_run_ended_only_when_no_signal_stopped_it_and_every_trial_ended():
    from types import SimpleNamespace

    from mer.sweep.ablation import run_ended
    from mer.sweep.trial import FINAL_KEY, SKIPPED_KEY

    def result(**metrics):
        return SimpleNamespace(metrics=metrics, error=None)

    done, skipped, stopped = result(**{FINAL_KEY: True}), result(**{SKIPPED_KEY: True}), result()
    failed = SimpleNamespace(metrics={}, error=RuntimeError("x"))
    # a fresh run: every planned trial must be in Tune's grid and ended
    assert run_ended([done, skipped, failed], 3, restored=False, signalled=False)
    assert not run_ended([done, skipped], 3, restored=False, signalled=False)  # one never started
    assert not run_ended([done, stopped], 2, restored=False, signalled=False)
    # a restored run's grid lacks the trials filed before: every trial in it must have ended
    assert run_ended([done], 5, restored=True, signalled=False)
    assert not run_ended([done, stopped], 5, restored=True, signalled=False)
    # a stop signal reached Tune: interrupted, whatever the grid says
    assert not run_ended([done], 1, restored=False, signalled=True)
    assert not run_ended([done], 5, restored=True, signalled=True)


DRIVER = """
import os, subprocess, sys, time
from mer.sweep import watchdog
ray_like = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
time.sleep(0.3)
watchdog.start(os.getpid(), {ray_like.pid: watchdog.process_table()[ray_like.pid][1]})
print(ray_like.pid, flush=True)
time.sleep(600)
"""


def test_the_watchdog_stops_what_a_killed_driver_started(tmp_path):
    from mer.sweep.watchdog import process_table

    if not process_table():
        pytest.skip("no /proc")
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    child = int(driver.stdout.readline())
    assert child in process_table()
    driver.kill()  # SIGKILL of the driver alone: its child is reparented, not killed
    driver.wait()
    t0 = time.monotonic()
    while child in process_table() and time.monotonic() - t0 < 15:
        time.sleep(0.1)
    gone_after = time.monotonic() - t0
    if child in process_table():
        os.kill(child, signal.SIGKILL)
    assert gone_after < 10, f"still running {gone_after:.1f} s after the driver died"


# ------------------------------------------------- (c) a fold filed but not told to the study
def _file(out: Path, trial_config: dict, result: dict) -> None:
    from mer.experiment.plan import TrialSpec
    from mer.experiment.store import ResultsStore

    spec = TrialSpec(
        trial_config["label"],
        trial_config["fold"],
        trial_config["seed"],
        trial_config["fold_index"],
    )
    ResultsStore(out).write_trial(spec, {**result, "history": []})


def test_a_fold_filed_before_the_driver_stopped_is_told_to_the_study(tmp_path):
    from optuna.trial import TrialState

    from mer.sweep.search import FoldFanoutSearcher
    from tests.test_sweep_search import FOLDS, fake_result, make_cfg

    cfg = make_cfg(tmp_path, trials=1, concurrent_configs=1, pruner="none")
    out = tmp_path / "out"
    first = FoldFanoutSearcher(cfg, FOLDS, out)
    emitted = {tid: first.suggest(tid) for tid in ("t0", "t1")}
    state = first.get_state()  # Tune's checkpoint: folds 0 and 1 running
    # the driver filed both folds' results, then stopped before Tune told the searcher
    for tc in emitted.values():
        _file(out, tc, fake_result(tc, as_table=True))
    filed = {
        tc["fold_index"]: (
            list(fake_result(tc)["val_true"]),
            list(fake_result(tc)["val_pred"]),
        )
        for tc in emitted.values()
    }
    # Tune re-runs fold 0's trial; the trainable skips it as filed: its result comes from disk
    first.on_trial_complete("t0", {"mer_skipped": True, "mer_final": False})
    (trial,) = first.study("full").get_trials()
    rec = trial.user_attrs["fold_000"]
    assert (rec["val_true"], rec["val_pred"]) == filed[0]
    assert trial.state == TrialState.RUNNING  # not failed for want of a result that exists
    # --resume from the checkpoint: fold 1, filed but never told, goes to the study from disk
    resumed = FoldFanoutSearcher(cfg, FOLDS, out)
    resumed.set_state(state)
    (trial,) = resumed.study("full").get_trials()
    rec = trial.user_attrs["fold_001"]
    assert (rec["val_true"], rec["val_pred"]) == filed[1]
    resumed.on_trial_complete("t1", {"mer_skipped": True, "mer_final": False})  # a duplicate
    for tid in ("t2", "t3"):
        tc = resumed.suggest(tid)
        assert tc["fold_index"] in (2, 3)
        resumed.on_trial_complete(tid, fake_result(tc))
    (trial,) = resumed.study("full").get_trials()
    assert trial.state == TrialState.COMPLETE
    assert [trial.user_attrs[f"fold_{i:03d}"]["val_pred"] for i in (0, 1)] == [
        filed[0][1],
        filed[1][1],
    ]

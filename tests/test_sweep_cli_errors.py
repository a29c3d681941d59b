"""run_sweep.py's guard rails: bad launcher options, unreachable clusters, foreign output folders
and unwritable paths end in one line and exit 2, before any data is prepared or Ray started."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from mer.cli import main as mer_main
from mer.cli.sweep import main
from mer.errors import ConfigError
from mer.experiment.claim import record_owned
from mer.sweep.cluster import check_reachable
from mer.sweep.options import RunOptions
from mer.sweep.outdir import check_out_dir, sweep_entries
from tests.conftest import tiny_overrides

REPO = Path(__file__).resolve().parents[1]
DEMO = str(REPO / "sweeps" / "demo.yaml")


def _sets(tmp_path: Path) -> list[str]:
    return [a for o in tiny_overrides(tmp_path / "cache") for a in ("--set", o)]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--resume", "--overwrite"], "not allowed with argument"),
        (["--max-concurrent", "0"], "expected a whole number >= 1, got 0"),
        (["--num-cpus", "-2"], "expected a whole number >= 1, got -2"),
        (["--num-cpus", "two"], "expected a whole number >= 1, got 'two'"),
    ],
)
def test_launcher_options_are_checked_by_argparse(args, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main([DEMO, *args])
    assert exc.value.code == 2 and message in capsys.readouterr().err


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_address_nobody_answers_fails_in_seconds():
    port = _closed_port()
    t0 = time.monotonic()
    with pytest.raises(ConfigError, match=f"--address 127.0.0.1:{port}: no Ray cluster answers"):
        check_reachable(f"127.0.0.1:{port}", timeout_s=2)
    assert time.monotonic() - t0 < 10
    with pytest.raises(ConfigError, match="expected auto or HOST:PORT"):
        check_reachable("nohost")


def test_unreachable_address_stops_before_data_is_prepared(tmp_path, capsys):
    out = tmp_path / "run"
    status = main(
        [DEMO, *_sets(tmp_path), "--out", str(out), "--address", f"127.0.0.1:{_closed_port()}"]
    )
    assert status == 2
    assert "no Ray cluster answers" in capsys.readouterr().err
    assert not (tmp_path / "cache").exists() and not out.exists()


def test_a_folder_holding_other_files_is_never_filled_or_deleted(tmp_path):
    out = tmp_path / "thesis"
    out.mkdir()
    (out / "thesis.tex").write_text("months of work")
    for overwrite in (False, True):
        with pytest.raises(ConfigError, match=r"holds files no sweep wrote \(thesis.tex\)"):
            check_out_dir(None, RunOptions(out=out, overwrite=overwrite))
    assert (out / "thesis.tex").read_text() == "months of work"
    (out / "thesis.tex").unlink()
    (out / "debug").mkdir()  # what `mer train` writes there first
    check_out_dir(None, RunOptions(out=out))


def test_unwritable_paths_are_one_line_errors(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main([DEMO, *_sets(tmp_path), "--out", str(blocker / "sub")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err and str(blocker) in err
    assert mer_main(["summary", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err


@pytest.mark.parametrize("text", ["/sub01", "full", "full/sub01/0/extra"])
def test_malformed_trial_names(text, tmp_path, capsys):
    assert main([DEMO, *_sets(tmp_path), "--out", str(tmp_path / "o"), "--trial", text]) == 2
    assert "expected VARIANT/FOLD[/SEED]" in capsys.readouterr().err


def test_dry_run_checks_each_variants_policy_even_on_shared_annotations(tmp_path, capsys):
    """SMIC has no AU codes: a variant that switches to au_oracle is refused by the dry run,
    although it shares its annotations with a label-free variant planned before it."""
    sets = _sets(tmp_path) + [
        "--set", "data.synthetic.layout=smic",
        "--set", "data.regions.policy=all",
        "--set", "ablations={free: {}, oracle: {data.regions.policy: au_oracle}}",
    ]  # fmt: skip
    assert main([DEMO, *sets, "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "au_oracle" in err and "AU annotations" in err


@pytest.mark.parametrize("dry_run", [True, False])
def test_a_bad_search_space_fails_first(tmp_path, capsys, dry_run):
    """The search space is the sweep layer's to check: run_sweep.py refuses a bad one before it
    reads annotations, prepares data or starts Ray, dry run or not."""
    search = str(REPO / "sweeps" / "demo_search.yaml")
    out = tmp_path / "run"
    sets = _sets(tmp_path) + ["--set", "search.space.data.size={choice: [16, 32]}"]
    argv = [search, *sets, "--out", str(out)] + (["--dry-run"] if dry_run else [])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"error: {search}: search.space.data.size: data cannot be searched" in err
    assert not (tmp_path / "cache").exists() and not out.exists()


def test_resume_accepts_keys_a_newer_mer_added_at_their_defaults(tmp_path):
    """A sweep written before a config key existed resumes; a real change is still refused."""
    import yaml

    from mer.config import dump_yaml, load_config

    cfg = load_config(DEMO)
    out = tmp_path / "run"
    out.mkdir()
    old = yaml.safe_load(dump_yaml(cfg))
    del old["tracking"]["wandb"]["tags"]  # as written by an older mer
    (out / "config.yaml").write_text(yaml.safe_dump(old))
    check_out_dir(cfg, RunOptions(out=out, resume=True))
    changed = load_config(DEMO, ["tracking.wandb.tags=[mine]"])
    with pytest.raises(ConfigError, match="config differs .* at tracking.wandb.tags"):
        check_out_dir(changed, RunOptions(out=out, resume=True))


def test_overwrite_keeps_the_previous_results_when_the_new_run_cannot_start(tmp_path, capsys):
    """--overwrite clears the folder only once the new run's data and plan are ready."""
    out = tmp_path / "run"
    out.mkdir()
    record_owned(out, sweep_entries(None))  # a sweep's folder: it recorded what it writes
    (out / "trials" / "full").mkdir(parents=True)
    (out / "config.yaml").write_text("name: previous\n")
    (out / "summary.md").write_text("last week's table")
    assert check_out_dir(None, RunOptions(out=out, overwrite=True)) is True
    assert (out / "summary.md").exists()  # the check alone deletes nothing
    missing = tmp_path / "nowhere"
    status = main(
        [DEMO, *_sets(tmp_path), "--out", str(out), "--overwrite",
         "--set", "data.dataset=casme2", "--set", f"data.root={missing}",
         "--set", f"data.annotations={missing / 'coding.xlsx'}"]
    )  # fmt: skip
    assert status == 2 and str(missing) in capsys.readouterr().err
    assert (out / "summary.md").read_text() == "last week's table"
    assert (out / "trials" / "full").is_dir()
    assert check_out_dir(None, RunOptions(out=tmp_path / "new", overwrite=True)) is False


def _serve_once(reply: bytes | None) -> int:
    """A one-connection TCP server on localhost that reads the client's bytes and sends `reply`
    (None: says nothing); returns its port."""
    import threading

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def answer() -> None:
        conn, _ = srv.accept()
        with conn, srv:
            conn.recv(64)
            if reply is not None:
                conn.sendall(reply)
            time.sleep(0.5)

    threading.Thread(target=answer, daemon=True).start()
    return srv.getsockname()[1]


def test_an_address_that_answers_but_is_not_ray_is_refused():
    """ray.init would retry a non-Ray port (the dashboard's 8265, a web server) for ever."""
    http = _serve_once(b"HTTP/1.0 400 Bad request\r\n\r\n")
    with pytest.raises(
        ConfigError, match=f"127.0.0.1:{http}: something answers there, but not Ray"
    ):
        check_reachable(f"127.0.0.1:{http}")
    silent = _serve_once(None)
    t0 = time.monotonic()
    with pytest.raises(ConfigError, match="but not Ray"):
        check_reachable(f"127.0.0.1:{silent}", timeout_s=1)
    assert time.monotonic() - t0 < 5
    # a gRPC server (Ray's GCS, Ray Client) answers the HTTP/2 preface with a SETTINGS frame
    grpc = _serve_once(bytes([0, 0, 6, 4, 0, 0, 0, 0, 0]) + bytes(6))
    check_reachable(f"127.0.0.1:{grpc}")


def test_urls_ray_client_and_auto_addresses(monkeypatch):
    with pytest.raises(ConfigError, match="not a URL; http://HOST:8265 is the dashboard"):
        check_reachable("http://10.0.0.1:8265")
    with pytest.raises(ConfigError, match="Ray Client is not supported"):
        check_reachable("ray://10.0.0.1:10001")
    # auto: the address Ray would pick (RAY_ADDRESS first) is checked like any other
    port = _closed_port()
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
    with pytest.raises(ConfigError) as err:
        check_reachable("auto", timeout_s=2)
    assert str(err.value).startswith(f"--address auto (resolved to 127.0.0.1:{port} from ")
    assert "no Ray cluster answers there" in str(err.value)
    grpc = _serve_once(bytes([0, 0, 6, 4, 0, 0, 0, 0, 0]) + bytes(6))
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{grpc}")
    check_reachable("auto")
    check_reachable("local")  # a new local Ray: nothing to check


def test_a_refused_cluster_leaves_the_previous_results_and_cleared_folders_keep_others(
    tmp_path, capsys
):
    """--overwrite with train.device: cuda on a CPU-only Ray: refused before anything is
    removed or written; a clear removes only what a sweep writes."""
    from mer.sweep.outdir import clear_out_dir

    out = tmp_path / "run"
    out.mkdir()
    record_owned(out, sweep_entries(None))  # a sweep's folder: it recorded what it writes
    (out / "trials").mkdir(parents=True)
    (out / "config.yaml").write_text("name: previous\n")
    (out / "summary.md").write_text("last week's table")
    status = main(
        [DEMO, *_sets(tmp_path), "--out", str(out), "--overwrite", "--num-cpus", "1",
         "--set", "train.device=cuda", "--set", "ablations={full: {}}"]
    )  # fmt: skip
    assert status == 2
    assert "train.device: cuda (variant full), but the Ray cluster has no GPUs" in (
        capsys.readouterr().err
    )
    assert (out / "summary.md").read_text() == "last week's table"
    assert (out / "config.yaml").read_text() == "name: previous\n"
    (out / "cache").mkdir()  # e.g. a data.cache_dir inside --out, built after the check
    clear_out_dir(out)
    assert sorted(p.name for p in out.iterdir()) == [".mer", "cache"]


def test_shared_storage_experiments_are_per_run_and_resume_checks_storage(tmp_path, monkeypatch):
    """Two sweeps of one config on one --storage must not restore each other's checkpoints, and
    --resume must look where (and under which experiment) the sweep put its Tune state."""
    from mer.config import dump_yaml, load_config
    from mer.sweep.outdir import (
        experiment_for,
        record_storage,
        shared_experiment_name,
        storage_key,
    )

    a = shared_experiment_name("demo", tmp_path / "out6")
    b = shared_experiment_name("demo", tmp_path / "out7")
    assert a.startswith("demo-") and a.split("-")[1] != b.split("-")[1]  # digest of --out
    assert shared_experiment_name("my sweep/1", tmp_path).startswith("my_sweep_1-")
    # Tune's storage needs absolute paths; URIs are compared without a trailing slash
    monkeypatch.chdir(tmp_path)
    assert storage_key("rel/shared") == str(tmp_path / "rel" / "shared")
    assert storage_key("s3://bucket/mer/") == "s3://bucket/mer" and storage_key(None) is None

    cfg = load_config(DEMO)
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.yaml").write_text(dump_yaml(cfg))
    shared = str(tmp_path / "shared")
    # a sweep from before OUT/storage.json: its experiment was named after the sweep alone
    legacy = RunOptions(out=out, resume=True, storage=shared)
    assert experiment_for(cfg, legacy) == "demo"
    record_storage(legacy, "demo-1234abcd-20261127-080000")
    assert experiment_for(cfg, legacy) == "demo-1234abcd-20261127-080000"  # read back
    assert (
        experiment_for(cfg, RunOptions(out=out, storage=shared)) != "demo-1234abcd-20261127-080000"
    )
    assert experiment_for(cfg, RunOptions(out=out)) == "tune"  # OUT/ray
    check_out_dir(cfg, RunOptions(out=out, resume=True, storage=shared + "/"))
    with pytest.raises(ConfigError) as err:
        check_out_dir(cfg, RunOptions(out=out, resume=True))
    assert f"keeps its Tune state under --storage {shared}" in str(err.value)
    assert "but this run has no --storage" in str(err.value)
    record_storage(RunOptions(out=out), "tune")
    with pytest.raises(ConfigError, match="under no --storage .* this run has --storage"):
        check_out_dir(cfg, RunOptions(out=out, resume=True, storage="s3://bucket/mer"))
    # resources.* may change on --resume (where trials run, not what they compute)
    moved = load_config(DEMO, ["resources.wait_for_gpus=true", "resources.gpu_per_trial=0.5"])
    check_out_dir(moved, RunOptions(out=out, resume=True))
    (out / "storage.json").write_text("{broken")
    with pytest.raises(ConfigError, match="storage.json: not valid JSON"):
        check_out_dir(cfg, RunOptions(out=out, resume=True))

"""A campaign of bad inputs through the real command line (`mer ...`, the function run_sweep.py
calls): non-finite numbers, unsafe names, unknown keys, wrong types, out-of-range values, missing
or broken files, bad and conflicting options, results folders a run may not use.

Every case must end in one `error: ...` line (exit 2; argparse's own `error:` for options it
checks) that names the key, file or option at fault: no traceback, nothing silently accepted.
Config cases run with `--dry-run` (so an input wrongly accepted costs a plan, not a sweep);
results-folder cases run for real and must stop before any data is prepared.

    python -m tests.bad_input_campaign       # prints every case and the counts
(tests/test_bad_input_campaign.py runs it and asserts the counts.)
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import sys
import tempfile
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEMO = str(REPO / "sweeps" / "demo.yaml")
SEARCH = str(REPO / "sweeps" / "demo_search.yaml")


@dataclass
class Case:
    kind: str
    argv: list[str]  # `mer` arguments; {tmp} is replaced by the campaign's folder
    names: str  # what the error must name (a key, a file, an option)
    setup: Callable[[Path], None] | None = None  # files the case needs, written under tmp


@dataclass
class Outcome:
    case: Case
    code: int | None
    err: str
    traceback: bool
    verdict: str = ""  # refused | refused-unnamed | accepted | traceback | other
    line: str = field(default="")


def _sweep(*sets: str, config: str = DEMO, dry: bool = True) -> list[str]:
    argv = ["sweep", config, "--set", "data.cache_dir={tmp}/cache"]
    for s in sets:
        argv += ["--set", s]
    return [*argv, "--dry-run"] if dry else argv


def _yaml(name: str, text: str) -> Callable[[Path], None]:
    def write(tmp: Path) -> None:
        (tmp / name).write_text(text)

    return write


def _demo_with(name: str, old: str, new: str) -> Callable[[Path], None]:
    """sweeps/demo.yaml with one line changed, as a user would edit it."""

    def write(tmp: Path) -> None:
        text = Path(DEMO).read_text()
        assert old in text, old
        (tmp / name).write_text(text.replace(old, new))

    return write


def _folder(files: dict[str, str]) -> Callable[[Path], None]:
    def write(tmp: Path) -> None:
        for rel, text in files.items():
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)

    return write


def _previous_sweep(tmp: Path) -> None:
    """A sweep folder of sweeps/demo.yaml as a sweep writes it (config.yaml, storage.json)."""
    from mer.config import dump_yaml, load_config

    out = tmp / "prev"
    out.mkdir(parents=True, exist_ok=True)
    cfg = load_config(DEMO, [f"data.cache_dir={tmp}/cache"])
    (out / "config.yaml").write_text(dump_yaml(cfg))
    (out / "storage.json").write_text('{"storage": null, "experiment": "tune"}\n')


NONFINITE = [
    ("train.lr", ".inf"), ("train.lr", ".nan"), ("train.lr", "-.inf"), ("train.eps", ".nan"),
    ("train.l2", ".nan"), ("model.dropout", ".nan"), ("model.leaky_slope", ".inf"),
    ("train.augment.rotate", ".nan"), ("train.augment.brightness", ".inf"),
    ("train.lr_gamma", ".nan"), ("resources.gpu_per_trial", ".nan"),
    ("resources.cpu_per_trial", ".inf"), ("data.synthetic.intensity", ".nan"),
    ("data.faces.min_score", ".nan"), ("data.faces.margin", ".inf"),
    ("data.regions.margin", ".nan"), ("report.level", ".nan"), ("report.alpha", ".inf"),
]  # fmt: skip

CASES: list[Case] = [
    # ------------------------------------------------------------ non-finite numbers
    *[Case("non-finite", _sweep(f"{k}={v}"), k) for k, v in NONFINITE],
    Case("non-finite", _sweep("train.betas=[.nan, 0.999]"), "train.betas"),
    Case("non-finite", _sweep("train.class_weights=[.inf, 1, 1]"), "train.class_weights"),
    Case("non-finite", _sweep("search.pruner_p=.nan", config=SEARCH), "search.pruner_p"),
    Case(
        "non-finite",
        _sweep("search.space.train.lr={loguniform: [1.0e-5, .inf]}", config=SEARCH),
        "search.space.train.lr",
    ),
    Case(
        "non-finite",
        _sweep("search.space.model.dropout={uniform: [.nan, 0.5]}", config=SEARCH),
        "search.space.model.dropout",
    ),
    Case(
        "non-finite",
        ["sweep", "{tmp}/lr_inf.yaml", "--dry-run"],
        "train.lr",
        _demo_with("lr_inf.yaml", "lr: 3.0e-3", "lr: .inf"),
    ),
    Case(
        "non-finite",
        ["sweep", "{tmp}/drop_nan.yaml", "--dry-run"],
        "model.dropout",
        _demo_with("drop_nan.yaml", "dropout: 0.3", "dropout: .NaN"),
    ),
    # -------------------------------------------------------------------- unsafe names
    *[
        Case("name", _sweep(f"name={v}"), "name")
        for v in ("..", ".", "/tmp/elsewhere", "../up", "a/b", "a b", "''", ".hidden")
    ],
    *[
        Case("name", _sweep(f"ablations={{'{v}': {{}}}}"), f"variant name '{v}'")
        for v in ("..", ".", "a/b", "", ".x", "x y")
    ],
    # -------------------------------------------------------------------- unknown keys
    Case("unknown key", _sweep("train.lrr=1e-3"), "train.lrr"),
    Case("unknown key", _sweep("modle.dropout=0.1"), "modle"),
    Case("unknown key", _sweep("data.synthetic.subject=3"), "data.synthetic.subject"),
    Case("unknown key", _sweep("ablations={full: {train.lrr: 1}}"), "train.lrr"),
    Case("unknown key", _sweep("resources.gpus=1"), "resources.gpus"),
    Case("unknown key", _sweep("foo=1"), "foo"),
    Case("unknown key", _sweep("report.bootstraps=100"), "report.bootstraps"),
    Case("unknown key", _sweep("tracking.wandb.projct=x"), "tracking.wandb.projct"),
    Case(
        "unknown key",
        _sweep("search.space.train.lrr={loguniform: [1.0e-4, 1.0e-2]}", config=SEARCH),
        "train.lrr",
    ),
    Case(
        "unknown key",
        ["sweep", "{tmp}/typo.yaml", "--dry-run"],
        "trian",
        _demo_with("typo.yaml", "train: {epochs", "trian: {epochs"),
    ),
    # --------------------------------------------------------------------- wrong types
    Case("wrong type", _sweep("train.epochs=abc"), "train.epochs"),
    Case("wrong type", _sweep("train.epochs=1.5"), "train.epochs"),
    Case("wrong type", _sweep("train.batch_size=true"), "train.batch_size"),
    Case("wrong type", _sweep("model.recurrent=7"), "model.recurrent"),
    Case("wrong type", _sweep("seeds=zero"), "seeds"),
    Case("wrong type", _sweep("seeds=[0, a]"), "seeds"),
    Case("wrong type", _sweep("data.size=[1]"), "data.size"),
    Case("wrong type", _sweep("ablations=[1, 2]"), "ablations"),
    Case("wrong type", _sweep("ablations={full: 3}"), "ablations.full"),
    Case("wrong type", _sweep("train.augment=yes"), "train.augment"),
    Case("wrong type", _sweep("train.class_weights=heavy"), "train.class_weights"),
    Case("wrong type", _sweep("model.dense=32"), "model.dense"),
    Case("wrong type", _sweep("train.augment.flip=1"), "train.augment.flip"),
    # --------------------------------------------------------------- out of range, values
    Case("range", _sweep("train.epochs=0"), "train.epochs"),
    Case("range", _sweep("train.batch_size=-1"), "train.batch_size"),
    Case("range", _sweep("model.dropout=1.5"), "model.dropout"),
    Case("range", _sweep("data.frames.count=0"), "data.frames.count"),
    Case("range", _sweep("protocol.split=kfold"), "protocol.split"),
    Case("range", _sweep("protocol.selection=best"), "protocol.selection"),
    Case("range", _sweep("model.num_classes=1"), "model.num_classes"),
    Case("range", _sweep("train.lr=0"), "train.lr"),
    Case("range", _sweep("train.lr=-1"), "train.lr"),
    Case("range", _sweep("seeds=[]"), "seeds"),
    Case("range", _sweep("seeds=[0, 0]"), "seeds"),
    Case("range", _sweep("data.dataset=casme9"), "data.dataset"),
    Case("range", _sweep("resources.max_failures=-1"), "resources.max_failures"),
    Case(
        "range", _sweep("resources.cpu_per_trial=0", "resources.gpu_per_trial=0"), "cpu_per_trial"
    ),
    Case("range", _sweep("train.on_nan=maybe"), "train.on_nan"),
    Case("range", _sweep("search.trials=0", config=SEARCH), "search.trials"),
    # ---------------------------------------------------------- missing or broken files
    Case("file", ["sweep", "{tmp}/nowhere.yaml", "--dry-run"], "nowhere.yaml"),
    Case("file", ["sweep", "{tmp}", "--dry-run"], "{tmp}"),
    Case("file", ["sweep", "{tmp}/empty.yaml", "--dry-run"], "empty.yaml", _yaml("empty.yaml", "")),
    Case(
        "file", ["sweep", "{tmp}/bad.yaml", "--dry-run"], "bad.yaml", _yaml("bad.yaml", "a: [1,\n")
    ),
    Case(
        "file", ["sweep", "{tmp}/list.yaml", "--dry-run"], "list.yaml", _yaml("list.yaml", "- 1\n")
    ),
    Case(
        "file",
        ["sweep", "{tmp}/tag.yaml", "--dry-run"],
        "tag.yaml",
        _yaml("tag.yaml", "name: !!python/object/apply:os.system ['touch {tmp}/PWNED']\n"),
    ),
    Case(
        "file",
        _sweep("data.dataset=casme2", "data.root={tmp}/no_media", "data.annotations={tmp}/no.xlsx"),
        "no.xlsx",
    ),
    Case("file", ["report", "{tmp}/no_run"], "no_run"),
    Case("file", ["report", "{tmp}/not_a_run"], "not_a_run", _folder({"not_a_run/x.txt": "x"})),
    Case("file", ["summary", "{tmp}/nowhere.yaml"], "nowhere.yaml"),
    Case("file", ["prepare", "{tmp}/nowhere.yaml"], "nowhere.yaml"),
    Case(
        "file", ["train", DEMO, "--fold", "sub99", "--set", "data.cache_dir={tmp}/cache"], "sub99"
    ),
    # ------------------------------------------------------- options, conflicting flags
    Case("option", ["sweep", DEMO, "--resume", "--overwrite"], "--overwrite"),
    Case("option", ["sweep", DEMO, "--max-concurrent", "0"], "--max-concurrent"),
    Case("option", ["sweep", DEMO, "--num-cpus", "two"], "--num-cpus"),
    Case("option", _sweep(dry=False) + ["--address", "http://10.0.0.1:8265"], "--address"),
    Case("option", _sweep(dry=False) + ["--address", "ray://10.0.0.1:10001"], "--address"),
    Case("option", _sweep(dry=False) + ["--address", "nohost"], "--address"),
    Case("option", _sweep(dry=False) + ["--trial", "full", "--out", "{tmp}/t"], "--trial"),
    Case("option", _sweep(dry=False) + ["--trial", "nope/sub01", "--out", "{tmp}/t"], "nope"),
    Case("option", ["train", DEMO], "--fold"),
    Case("option", ["train", DEMO, "--fold", "sub01", "--all-folds"], "--all-folds"),
    Case("option", ["report", "{tmp}", "--format", "pdf"], "--format"),
    Case("option", ["sweep", DEMO, "--frobnicate"], "--frobnicate"),
    Case("option", ["sweep", DEMO, "--set", "train.lr", "--dry-run"], "train.lr"),
    Case("option", ["sweep", DEMO, "--set", "=1", "--dry-run"], "=1"),
    Case("option", ["sweep", DEMO, "--wandb", "loud"], "--wandb"),
    Case("option", ["frobnicate"], "frobnicate"),
    # --------------------------------------------------- results folders a run may not use
    Case("folder", _sweep(dry=False) + ["--out", "{tmp}/afile"], "afile", _yaml("afile", "x")),
    Case(
        "folder",
        _sweep(dry=False) + ["--out", "{tmp}/thesis"],
        "thesis.tex",
        _folder({"thesis/thesis.tex": "months of work"}),
    ),
    Case(
        "folder",
        _sweep(dry=False) + ["--out", "{tmp}/mine", "--overwrite"],
        "summary.md",
        _folder({"mine/report/thesis.tex": "x", "mine/summary.md": "y"}),
    ),
    Case("folder", _sweep(dry=False) + ["--out", "{tmp}/prev"], "--resume", _previous_sweep),
    Case(
        "folder",
        _sweep("train.epochs=7", dry=False) + ["--out", "{tmp}/prev", "--resume"],
        "train.epochs",
        _previous_sweep,
    ),
    Case(
        "folder",
        _sweep(dry=False) + ["--out", "{tmp}/prev", "--resume", "--storage", "{tmp}/elsewhere"],
        "--storage",
        _previous_sweep,
    ),
    Case(
        "folder",
        _sweep(dry=False) + ["--out", "{tmp}/prev", "--overwrite"],
        "config.yaml",
        _previous_sweep,
    ),
]


def _fill(text: str, tmp: Path) -> str:
    return text.replace("{tmp}", str(tmp))


def run_case(case: Case, tmp: Path, log: io.StringIO) -> Outcome:
    """Run one case in this process (the real `mer` entry point), classify what it did."""
    from mer.cli import main

    if case.setup is not None:
        case.setup(tmp)
    argv = [_fill(a, tmp) for a in case.argv]
    out, err = io.StringIO(), io.StringIO()
    log.seek(0)
    log.truncate()
    tb = ""
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's own errors
            code = exc.code if isinstance(exc.code, int) else 2
        except BaseException:  # noqa: BLE001 - exactly what the campaign counts
            code, tb = None, traceback.format_exc()
    text = err.getvalue() + tb
    crashed = bool(tb) or "Traceback" in text or "Traceback" in log.getvalue()
    outcome = Outcome(case, code, text, crashed)
    lines = [x for x in text.splitlines() if "error:" in x]
    outcome.line = lines[-1] if lines else text.strip().splitlines()[-1:][0] if text.strip() else ""
    if crashed:
        outcome.verdict = "traceback"
    elif code == 0:
        outcome.verdict = "accepted"
    elif code == 2 and lines:
        named = _fill(case.names, tmp) in text
        outcome.verdict = "refused" if named else "refused-unnamed"
    else:
        outcome.verdict = "other"
    if (tmp / "PWNED").exists():
        outcome.verdict = "traceback"  # a YAML tag executed: worse than any traceback
        outcome.line += " [a YAML tag ran]"
    return outcome


def run_campaign(root: Path) -> list[Outcome]:
    """Every case, each in a folder of its own under `root`."""
    log = io.StringIO()
    handler = logging.StreamHandler(log)
    logging.getLogger().addHandler(handler)
    try:
        results = []
        for i, case in enumerate(CASES):
            tmp = root / f"case{i:03d}"
            tmp.mkdir(parents=True, exist_ok=True)
            results.append(run_case(case, tmp, log))
        return results
    finally:
        logging.getLogger().removeHandler(handler)


def counts(results: list[Outcome]) -> dict[str, dict[str, int]]:
    """Verdicts per kind of input, and in total."""
    table: dict[str, Counter] = {}
    for r in results:
        table.setdefault(r.case.kind, Counter())[r.verdict] += 1
        table.setdefault("total", Counter())[r.verdict] += 1
    return {k: dict(v) for k, v in table.items()}


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="mer-campaign-") as tmp:
        results = run_campaign(Path(tmp))
        for r in results:
            argv = " ".join(_fill(a, Path("TMP")) for a in r.case.argv)
            print(f"{r.verdict:16} exit {r.code!s:4} {r.case.kind:12} mer {argv}")
            print(f"{'':16} {r.line.replace(tmp, 'TMP')[:220]}")
    print(json.dumps(counts(results), indent=1))
    bad = [r for r in results if r.verdict != "refused"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

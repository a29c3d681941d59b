"""The `mer` command line as a whole (mer.cli): one error policy for every command, run_sweep.py
as `mer sweep` under another name, argparse only in mer.cli, and a `--help` that needs neither
torch nor Ray."""

from __future__ import annotations

import argparse
import ast
import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mer.cli import build_parser, common, main
from mer.cli import sweep as sweep_cli
from mer.errors import ConfigError, DataError

REPO = Path(__file__).resolve().parents[1]
DEMO = str(REPO / "sweeps" / "demo.yaml")


def _namespace(exc: BaseException, **extra) -> argparse.Namespace:
    def func(args):  # noqa: ANN001, ANN202
        raise exc

    return argparse.Namespace(func=func, **extra)


@pytest.mark.parametrize(
    "exc, status, message",
    [
        (ConfigError("train.lr: expected a number"), 2, "error: train.lr: expected a number\n"),
        (DataError("x.csv, row 3: no label"), 2, "error: x.csv, row 3: no label\n"),
        (
            NotADirectoryError(20, "Not a directory", "/tmp/file/sub"),
            2,
            "error: [Errno 20] Not a directory: '/tmp/file/sub'\n",
        ),
        (KeyboardInterrupt(), 130, "interrupted\n"),
    ],
)
def test_one_error_policy(exc, status, message, capsys):
    assert common.run(_namespace(exc), []) == status
    assert capsys.readouterr().err == message


def test_an_interrupted_sweep_says_how_to_continue(capsys):
    args = _namespace(KeyboardInterrupt(), interrupted=sweep_cli.INTERRUPTED)
    assert common.run(args, []) == 130
    assert capsys.readouterr().err == "interrupted; continue with --resume\n"
    # the sweep command's parser sets that hint, under either name
    for parser, argv in ((build_parser(), ["sweep", DEMO]), (sweep_cli.build_parser(), [DEMO])):
        assert parser.parse_args(argv).interrupted == sweep_cli.INTERRUPTED


def test_other_errors_are_not_hidden():
    with pytest.raises(ZeroDivisionError):
        common.run(_namespace(ZeroDivisionError("a bug")), [])


def test_verbose_before_or_after_the_command():
    parser = build_parser()
    assert parser.parse_args(["-v", "summary", DEMO]).verbose is True
    assert parser.parse_args(["summary", DEMO, "-v"]).verbose is True
    assert parser.parse_args(["summary", DEMO]).verbose is False
    assert parser.parse_args(["report", "out", "--verbose"]).verbose is True
    assert sweep_cli.build_parser().parse_args([DEMO]).verbose is False
    assert sweep_cli.build_parser().parse_args([DEMO, "-v"]).verbose is True


def _help(parser: argparse.ArgumentParser) -> str:
    return parser.format_help().split("\n\n", 1)[1]  # without the usage line (its prog differs)


def test_run_sweep_is_mer_sweep_under_another_name():
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    mer_sweep, run_sweep = sub.choices["sweep"], sweep_cli.build_parser()
    assert run_sweep.prog == "run_sweep.py" and mer_sweep.prog == "mer sweep"
    assert _help(run_sweep) == _help(mer_sweep)
    assert mer_sweep.format_usage().replace("mer sweep", "run_sweep.py").split() == (
        run_sweep.format_usage().split()
    )
    argv = [DEMO, "--set", "train.epochs=1", "--resume", "--max-concurrent", "3", "--dry-run"]
    a, b = vars(run_sweep.parse_args(argv)), vars(build_parser().parse_args(["sweep", *argv]))
    b.pop("command")
    assert a == {**b, "verbose": False}


@pytest.mark.parametrize("argv", [["--max-concurrent", "0"], ["--resume", "--overwrite"]])
def test_run_sweep_and_mer_sweep_refuse_the_same_options_alike(argv, capsys):
    with pytest.raises(SystemExit) as a:
        sweep_cli.main([DEMO, *argv])
    err_a = capsys.readouterr().err
    with pytest.raises(SystemExit) as b:
        main(["sweep", DEMO, *argv])
    err_b = capsys.readouterr().err
    assert a.value.code == b.value.code == 2
    assert err_a.splitlines()[-1].replace("run_sweep.py", "mer sweep") == err_b.splitlines()[-1]


def test_run_sweep_script_and_mer_sweep_print_the_same_dry_run(tmp_path):
    sets = ["--set", f"data.cache_dir={tmp_path / 'cache'}", "--set", "data.synthetic.subjects=3"]
    script = subprocess.run(
        [sys.executable, "run_sweep.py", DEMO, "--dry-run", *sets],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    module = subprocess.run(
        [sys.executable, "-m", "mer", "sweep", DEMO, "--dry-run", *sets],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert script.returncode == module.returncode == 0, script.stderr + module.stderr

    def steady(text: str) -> str:  # free disk space moves between the two runs
        return re.sub(r"Cache (.*): [0-9.]+ \w+ free", r"Cache \1: N free", text)

    assert steady(script.stdout) == steady(module.stdout) and "trials" in script.stdout
    assert "free for" in script.stdout  # the line steady() normalises is there


def test_help_imports_neither_torch_nor_ray():
    code = (
        "import sys; from mer.cli import build_parser\n"
        "build_parser().format_help()\n"
        "heavy = ('torch', 'ray', 'pandas', 'wandb', 'optuna')\n"
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


def test_synth_layouts_are_the_registry_s_and_a_typo_is_named(tmp_path, capsys):
    """`mer synth --layout` takes every registered synthetic layout and composite (checked when
    it runs, so `mer --help` imports no dataset module); a typo gets the closest name."""
    from mer.cli import main
    from mer.cli.synth import layout_choices
    from mer.datasets.registry import with_synthetic_layout

    assert layout_choices() == [*with_synthetic_layout(), "megc2019"]
    assert main(["synth", str(tmp_path / "x"), "--layout", "casme22"]) == 2
    err = capsys.readouterr().err
    assert "--layout 'casme22': did you mean 'casme2'?" in err
    assert "expected one of " + ", ".join(layout_choices()) in err


def test_argparse_lives_only_in_mer_cli():
    found = []
    for path in sorted((REPO / "mer").rglob("*.py")):
        if path.is_relative_to(REPO / "mer" / "cli"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names] if isinstance(node, ast.Import)
                else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            )  # fmt: skip
            if any(n.split(".")[0] == "argparse" for n in names):
                found.append(str(path.relative_to(REPO)))
    assert found == []


def test_library_info_chatter_shows_only_with_verbose():
    """matplotlib's "generated new fontManager" (a fresh machine's first report) is not a line a
    user must act on: hidden unless -v; its warnings still show."""
    from mer.cli.common import setup_logging

    mpl = logging.getLogger("matplotlib")
    before = mpl.level
    try:
        setup_logging(False)
        assert not mpl.isEnabledFor(logging.INFO) and mpl.isEnabledFor(logging.WARNING)
        setup_logging(True)
        assert mpl.isEnabledFor(logging.DEBUG)
    finally:
        mpl.setLevel(before)

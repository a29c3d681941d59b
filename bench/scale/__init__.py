"""`python -m bench.scale`: what the sweep driver costs as a study grows (issue 19).

The same study shape (a synthetic dataset of `--folds` subjects, LOSO: one fold each; V variants
x S seeds) runs at growing N = folds x V x S with a tiny model and one epoch, so the framework's
own costs show rather than training. Each size runs in a fresh child process (`--one`), which is
the sweep driver: `mer sweep` through `mer.cli.main`, a local Ray of `--num-cpus`, W&B offline
unless `--wandb disabled`. The child times the driver from the inside (wrapping the functions
named in `probe.TARGETS`) and writes one JSON record; the parent prints the table (`table.py`)
with the log-log growth of every column and its extrapolation to `--extrapolate` trials.

Modules: `study` (the config and the --set overrides of one size), `probe` (the child: timers,
trial-start probe, what is measured after the run), `table` (rendering, growth, extrapolation),
`cli` (options, running the children, `main`).
"""

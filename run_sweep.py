"""Entry point: python run_sweep.py sweeps/NAME.yaml [options], the same as `mer sweep` (see
mer/cli/sweep.py); kept because job scripts and cluster.yaml call it by this path."""

from mer.cli.sweep import main

raise SystemExit(main())

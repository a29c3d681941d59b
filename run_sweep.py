"""Entry point: python run_sweep.py sweeps/NAME.yaml [options]  (see mer/sweep/main.py)."""

from mer.sweep.main import main

raise SystemExit(main())

"""Test-only helpers the tests share, kept out of the `mer` package.

`faults`: fault and timing probes plugged into sweep trials (mer.sweep.hooks.TrialHooks);
`wandb_offline`: a reader of W&B's offline run files. Ray workers import `tests.support` like
the driver does: a local Ray started by mer (or by the tests) has the checkout's root on its
PYTHONPATH, where `tests` is a package.
"""

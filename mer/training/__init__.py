"""Pieces of `mer.train.run_fold`: loss, optimiser, augmentation, device data, loop, selection.

The public entry points live in `mer.train` (run_fold, FoldHooks, FoldResult) and `mer.predlog`
(prediction logs); these modules are split out so that each does one job and is testable alone.
Nothing here imports Ray or W&B.
"""

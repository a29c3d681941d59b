"""Experiment layer: what runs a study and reads its results back (Ray-free, W&B-free)."""

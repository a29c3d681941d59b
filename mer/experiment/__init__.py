"""The experiment layer: what a sweep is (plan), where its results live (layout), how they are
written and read back (store, run), turned into tables (aggregate) and shown (formatting,
summary). Ray-free and W&B-free, so `mer report`, the sweep driver and tests share one copy.
"""

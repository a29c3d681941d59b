"""One module per dataset: its reader, its `SPEC` (mer.datasets.spec.DatasetSpec) and, where the
synthetic generator writes its layout, that layout. `mer.datasets.registry` finds the modules here;
`mer.datasets.annotations.load_samples` is the public entry point to the readers.

Each reader turns one dataset's files, as users receive them, into `Record`s; the shared steps
(duplicate ids, media checks, the sample table) live in mer/datasets/records.py so every dataset
gets the same checks and error messages. Adding a dataset: docs/design/ARCHITECTURE.md, "Datasets".
"""

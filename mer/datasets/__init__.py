"""The datasets as `mer` reads them, without the config (the config validates against this layer,
so nothing here imports mer.config or mer.data).

- `registry`: the datasets (one module each under `catalog/`, with its `SPEC`), looked up by name;
- `spec`: DatasetSpec and SyntheticLayout, what a dataset module declares;
- `annotations.load_samples`: a dataset's files → the sample table (readers' shared steps in
  `records`, `table`, `media_check`, `coded_sheet`; invalid rows collected in one pass by
  `problems`; AU cells checked against FACS by `au_cells`);
- `labels`: label schemes (emotion → class) and applying one to a table;
- `facs`: the AU → face region table and the original's AU codes;
- `media`: decoding frame folders and videos;
- `synthetic`: the generator that writes datasets in the real layouts.

Adding a dataset: docs/design/ARCHITECTURE.md, "Datasets".
"""

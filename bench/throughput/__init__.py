"""Training throughput of the paper model on one device: one table over a matrix of settings.

    python -m bench.throughput                                   # default matrix for this device
    python -m bench.throughput --tiny --settings baseline,res,cl+res --steps 4
    python -m bench.throughput --settings @main --out OUT --tag main --time-budget 240
    python -m bench.throughput --e2e [--e2e-ray] --out OUT --tag e2e   # one real trial, timed
    python -m bench.throughput --merge OUT/main.json OUT/e2e.json --out OUT --tag results
    python -m bench.throughput --list                            # tokens and @groups

A setting is a '+'-joined list of levers (`--list`), e.g. `bf16+cl+res+bench+t2d+m8`; the plain
`baseline` is fp32, batch 8, one process, eager, contiguous tensors, cudnn.benchmark off, and each
batch copied from pageable host float32 tensors (what a plain PyTorch loop does). Every row trains
the same model (casme2 preset, 30×128×128×3 clips; `--tiny`: 8×16×16 and small widths) with
run_fold's loss (weighted CE + L2) and Adam, on random uint8 clips, and reports:

- clips/s: median over `--repeats` windows of `--steps` steps (steps are those of a batch-8 model;
  rows with more clips per step run proportionally fewer, at least 3), timed with CUDA events;
  `±%` is (max − min) / median over the windows;
- TFLOP/s: useful FLOPs (FlopCounterMode on one fp32 baseline step, forward + backward, per clip;
  padding that a fast path adds is not counted) × clips/s; `%ceil` against a bf16 8192³ matmul
  measured in the same run (on CPU: an fp32 512³ matmul, not a GPU figure);
- mem MB: torch.cuda.max_memory_allocated while the row ran (packed: summed over processes,
  CUDA contexts not included); on CPU the process's resident set size;
- speed-up: clips/s over the baseline row of the same run;
- check: the row's training function against the plain recipe (fp32, eager, host batches, TF32
  off) from the same weights and batches, dropout off, over `--check-steps` steps: max relative
  difference of the weighted-CE trajectory, tolerance 1e-4 for fp32 rows (TF32 off in the check)
  and 5e-2 for bf16 rows; stacked models: every member against its own single-model run;
  packed: process 0 against the single-model run;
- optim: whether the optimisation is the paper's (batch 8); a larger batch is a different run.

Rows are printed as soon as they are measured and the files under `--out` are rewritten after each
row, so a run cut by a timeout keeps what it measured. Imports only torch, numpy and mer's model and
training pieces (ray only for packed rows when installed; pandas only for --e2e).

Modules, bottom to top: `settings` (levers, groups), `spec` (shapes, model config, random clip
pools), `device` (backend flags, device description), `timing` (timers, memory, matmul ceiling),
`runner` (one setting's model, optimiser and batches), `measure` (single-process rows and
equivalence checks), `raysession`, `packed` (multi-process rows), `matrix` (the rows of one run),
`table` (rendering), `merge` (several runs' results), `e2e` (one real fold), `cli` (options, main).
Run from the repository root, so that worker processes (spawn, Ray) import these modules by name.
"""

"""run_fold: selection modes, oracle flags, determinism, hooks, checkpoints, validity guards."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import mer.train
import mer.training.loop as loop_mod
from mer.errors import ConfigError, DataError
from mer.metrics import megc_scores
from mer.train import FoldHooks, FoldResult, run_fold
from mer.training.fold_data import LabelGuard, LockedTestLabels
from tests.test_train_support import folds_of, tiny_cfg, tiny_data, use_tiny_net


@pytest.fixture
def tiny(monkeypatch):
    use_tiny_net(monkeypatch)
    return tiny_data()


def _guards(monkeypatch) -> list[LabelGuard]:
    made: list[LabelGuard] = []

    class Recording(LabelGuard):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            made.append(self)

    monkeypatch.setattr(mer.train, "LabelGuard", Recording)
    return made


def _scripted_scores(monkeypatch, values: list[float], key: str) -> None:
    """Evaluations during training return `values` in order as `key` (uf1 or acc)."""
    it = iter(values)

    def fake(y_true, probs, k):
        v = next(it)
        return {"uf1": v if key == "uf1" else 0.0, "uar": 0.0, "acc": v if key == "acc" else 0.0}

    monkeypatch.setattr(loop_mod, "_scores", fake)


# ---------------------------------------------------------------------------------- basics
def test_fixed_epochs_result_shape_and_columns(tiny):
    cfg = tiny_cfg(protocol={"val_subjects": 1})
    fold = folds_of(tiny, cfg)[0]
    res = run_fold(cfg, tiny, fold, seed=0)
    assert isinstance(res, FoldResult)
    assert res.fold == "synthetic/s0" and res.seed == 0
    assert res.selected_epoch == 3 and len(res.history) == 3
    assert [h["epoch"] for h in res.history] == [1, 2, 3]
    for key in ("loss", "ce", "lr", "train_acc", "seconds", "val_uf1", "val_acc"):
        assert key in res.history[0]
    assert not any(k.startswith("test_") for k in res.history[-1])
    pred = res.predictions
    assert list(pred.columns) == [
        "sample_id",
        "dataset",
        "subject",
        "clip",
        "fold",
        "split",
        "true",
        "pred",
        "prob_0",
        "prob_1",
        "prob_2",
        "oracle",
        "oracle_selection",
        "oracle_input",
    ]
    assert (pred["split"] == "test").sum() == fold.test.size
    assert (pred["split"] == "val").sum() == fold.val.size
    test_rows = pred[pred["split"] == "test"]
    assert test_rows["sample_id"].tolist() == tiny.samples["sample_id"].iloc[fold.test].tolist()
    assert test_rows["true"].tolist() == tiny.samples["label"].iloc[fold.test].tolist()
    probs = pred[["prob_0", "prob_1", "prob_2"]].to_numpy()
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-6)
    assert (pred["pred"].to_numpy() == probs.argmax(1)).all()
    assert res.test_scores == megc_scores(test_rows["true"], test_rows["pred"], 3)
    val_rows = pred[pred["split"] == "val"]
    assert res.val_scores == megc_scores(val_rows["true"], val_rows["pred"], 3)
    assert set(res.timings) == {"setup", "to_device", "train", "predict", "total"}
    assert res.params == sum(
        p.numel() for p in mer.models.build_model(cfg.model, (4, 8, 8)).parameters()
    )
    assert res.oracle is False and not pred["oracle"].any()


def test_lr_schedule_steps_per_epoch(tiny):
    cfg = tiny_cfg(train={"epochs": 5, "lr": 0.1, "lr_step": 2, "lr_gamma": 0.5})
    res = run_fold(cfg, tiny, folds_of(tiny, cfg)[0], seed=0)
    assert [h["lr"] for h in res.history] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])
    cfg = tiny_cfg(train={"epochs": 3, "lr": 0.1, "lr_step": 0})
    res = run_fold(cfg, tiny, folds_of(tiny, cfg)[0], seed=0)
    assert [h["lr"] for h in res.history] == pytest.approx([0.1] * 3)


def test_learns_the_planted_signal(tiny):
    cfg = tiny_cfg(train={"epochs": 30, "lr": 3e-2})
    res = run_fold(cfg, tiny, folds_of(tiny, cfg)[1], seed=0)
    assert res.test_scores["acc"] == 1.0
    assert res.history[-1]["loss"] < res.history[0]["loss"]


def test_class_count_mismatch_is_a_config_error(tiny):
    cfg = tiny_cfg(model={"num_classes": 2}, train={"class_weights": [0.5, 0.5]})
    with pytest.raises(ConfigError, match="num_classes is 2 .* 3 classes"):
        run_fold(cfg, tiny, folds_of(tiny, cfg)[0], seed=0)


def test_bad_label_is_a_data_error(tiny):
    tiny.samples.loc[3, "label"] = 5
    cfg = tiny_cfg()
    with pytest.raises(DataError, match="synthetic/s0/c03: label 5"):
        run_fold(cfg, tiny, folds_of(tiny, cfg)[1], seed=0)


# ------------------------------------------------------------------------------- selection
def test_inner_val_picks_best_val_uf1_epoch_ties_earlier(tiny, monkeypatch):
    cfg = tiny_cfg(protocol={"selection": "inner_val", "val_subjects": 1}, train={"epochs": 4})
    fold = folds_of(tiny, cfg)[0]
    _scripted_scores(monkeypatch, [0.2, 0.5, 0.5, 0.3], "uf1")
    res = run_fold(cfg, tiny, fold, seed=0)
    assert res.selected_epoch == 2
    assert [h["val_uf1"] for h in res.history] == [0.2, 0.5, 0.5, 0.3]
    # The selected weights are epoch 2's: equal to a 2-epoch fixed run (evaluation uses no RNG).
    monkeypatch.undo()
    use_tiny_net(monkeypatch)
    fixed = run_fold(tiny_cfg(protocol={"val_subjects": 1}, train={"epochs": 2}), tiny, fold, 0)
    pd.testing.assert_frame_equal(res.predictions, fixed.predictions)


def test_inner_val_eval_every_and_last_epoch(tiny, monkeypatch):
    cfg = tiny_cfg(
        protocol={"selection": "inner_val", "val_subjects": 1},
        train={"epochs": 5, "eval_every": 2},
    )
    _scripted_scores(monkeypatch, [0.1, 0.4, 0.9], "uf1")
    res = run_fold(cfg, tiny, folds_of(tiny, cfg)[0], seed=0)
    assert [("val_uf1" in h) for h in res.history] == [False, True, False, True, True]
    assert res.selected_epoch == 5


def test_inner_val_needs_validation_rows(tiny):
    cfg = tiny_cfg(protocol={"selection": "inner_val", "val_subjects": 1})
    fold = folds_of(tiny, cfg)[0]
    empty = type(fold)(
        fold.name, fold.index, fold.test_subjects, fold.train, np.zeros(0, np.int64), fold.test
    )
    with pytest.raises(ConfigError, match="no validation clips"):
        run_fold(cfg, tiny, empty, seed=0)


def test_oracle_test_selects_best_test_accuracy_and_is_flagged(tiny, monkeypatch):
    cfg = tiny_cfg(protocol={"selection": "oracle_test"}, train={"epochs": 4})
    _scripted_scores(monkeypatch, [0.25, 0.75, 0.5, 0.75], "acc")
    res = run_fold(cfg, tiny, folds_of(tiny, cfg)[0], seed=0)
    assert res.selected_epoch == 2
    assert [h["test_acc"] for h in res.history] == [0.25, 0.75, 0.5, 0.75]
    assert res.oracle and res.oracle_selection and not res.oracle_input
    assert res.predictions["oracle"].all() and res.predictions["oracle_selection"].all()
    assert not res.predictions["oracle_input"].any()


def test_oracle_input_flag_propagates(monkeypatch):
    use_tiny_net(monkeypatch)
    data = tiny_data(oracle_input=True)
    cfg = tiny_cfg(train={"epochs": 1})
    res = run_fold(cfg, data, folds_of(data, cfg)[0], seed=0)
    assert res.oracle and res.oracle_input and not res.oracle_selection
    assert res.predictions["oracle"].all() and res.predictions["oracle_input"].all()
    assert not res.predictions["oracle_selection"].any()


def test_single_branch_model_never_sees_oracle_crops(monkeypatch):
    use_tiny_net(monkeypatch)
    data = tiny_data(oracle_input=True)
    cfg = tiny_cfg(train={"epochs": 1}, model={"branches": "single"})
    res = run_fold(cfg, data, folds_of(data, cfg)[0], seed=0)
    assert not res.oracle and not res.oracle_input
    assert not res.predictions["oracle"].any()


# ------------------------------------------------------------------------ test-label guard
@pytest.mark.parametrize("selection", ["fixed_epochs", "inner_val"])
def test_test_labels_read_only_after_the_test_prediction(tiny, monkeypatch, selection):
    guards = _guards(monkeypatch)
    cfg = tiny_cfg(protocol={"selection": selection, "val_subjects": 1})
    run_fold(cfg, tiny, folds_of(tiny, cfg)[0], seed=0)
    events = guards[0].events
    assert events.count("labels:test") == 1
    first_read = events.index("labels:test")
    assert events.index("predict:test") < events.index("open_test") < first_read
    assert "predict:test" not in events[first_read:]
    assert events.count("predict:test") == 1  # the final prediction only


def test_oracle_mode_reads_test_labels_during_training(tiny, monkeypatch):
    guards = _guards(monkeypatch)
    cfg = tiny_cfg(protocol={"selection": "oracle_test"}, train={"epochs": 2})
    run_fold(cfg, tiny, folds_of(tiny, cfg)[0], seed=0)
    events = guards[0].events
    assert events.index("labels:test") < events.index("predict:test")
    assert events.count("predict:test") == 3  # each epoch + the final prediction


def test_label_guard_refuses_test_labels_until_opened():
    guard = LabelGuard(
        np.array([0, 1, 2, 0]),
        {"train": np.array([0, 1]), "val": np.array([], np.int64), "test": np.array([2, 3])},
        test_open=False,
    )
    assert guard.get("train").tolist() == [0, 1]
    with pytest.raises(LockedTestLabels):
        guard.get("test")
    guard.open_test()
    assert guard.get("test").tolist() == [2, 0]


def test_class_weights_balanced_from_training_rows_only(tiny, monkeypatch):
    seen = []
    real = mer.train.resolve_class_weights

    def spy(train_cfg, labels, k):
        seen.append(np.asarray(labels).copy())
        return real(train_cfg, labels, k)

    monkeypatch.setattr(mer.train, "resolve_class_weights", spy)
    cfg = tiny_cfg(train={"class_weights": "balanced", "epochs": 1}, protocol={"val_subjects": 1})
    fold = folds_of(tiny, cfg)[0]
    run_fold(cfg, tiny, fold, seed=0)
    assert seen[0].tolist() == tiny.samples["label"].iloc[fold.train].tolist()


# ------------------------------------------------------------------------- determinism
def test_same_seed_same_result_other_seed_differs(tiny):
    cfg = tiny_cfg(train={"augment": {"flip": True, "rotate": 10, "brightness": 0.2}})
    fold = folds_of(tiny, cfg)[0]
    a = run_fold(cfg, tiny, fold, seed=3)
    b = run_fold(cfg, tiny, fold, seed=3)
    c = run_fold(cfg, tiny, fold, seed=4)
    pd.testing.assert_frame_equal(a.predictions, b.predictions)
    assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]
    assert not np.array_equal(a.predictions["prob_0"], c.predictions["prob_0"])


# ------------------------------------------------------------------------------- hooks
def test_hooks_order_and_should_stop(tiny):
    calls = []
    hooks = FoldHooks(
        on_epoch=lambda rec: calls.append(("epoch", rec["epoch"], rec["checkpoint"])),
        save_checkpoint=lambda state: calls.append(("ckpt", state["epoch"])),
        should_stop=lambda: len([c for c in calls if c[0] == "epoch"]) >= 3,
    )
    cfg = tiny_cfg(train={"epochs": 6, "checkpoint_every": 2})
    res = run_fold(cfg, tiny, folds_of(tiny, cfg)[0], seed=0, hooks=hooks)
    assert calls == [("epoch", 1, False), ("ckpt", 2), ("epoch", 2, True), ("epoch", 3, False)]
    assert res.stopped and len(res.history) == 3 and res.selected_epoch == 3


def test_checkpoint_resume_is_exact(tiny, tmp_path):
    cfg = tiny_cfg(
        protocol={"selection": "inner_val", "val_subjects": 1},
        train={
            "epochs": 4,
            "checkpoint_every": 2,
            "lr_step": 1,
            "lr_gamma": 0.5,
            "augment": {"flip": True, "brightness": 0.1},
        },
    )
    fold = folds_of(tiny, cfg)[0]
    straight: list[dict] = []
    full = run_fold(cfg, tiny, fold, 1, hooks=FoldHooks(save_checkpoint=straight.append))
    assert [s["epoch"] for s in straight] == [2, 4]
    # through a file, as the sweep runner does (weights_only loading must work)
    torch.save(straight[0], tmp_path / "ckpt.pt")
    state = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    resumed_states: list[dict] = []
    resumed = run_fold(
        cfg,
        tiny,
        fold,
        1,
        hooks=FoldHooks(resume_from=state, save_checkpoint=resumed_states.append),
    )
    assert [s["epoch"] for s in resumed_states] == [4]
    for k, v in straight[1]["model"].items():
        assert torch.equal(v, resumed_states[0]["model"][k]), k
    pd.testing.assert_frame_equal(full.predictions, resumed.predictions)
    assert resumed.selected_epoch == full.selected_epoch
    drop = ("seconds",)
    assert [{k: v for k, v in h.items() if k not in drop} for h in full.history] == [
        {k: v for k, v in h.items() if k not in drop} for h in resumed.history
    ]


def test_resume_refuses_another_folds_checkpoint(tiny):
    cfg = tiny_cfg(train={"epochs": 2, "checkpoint_every": 1})
    folds = folds_of(tiny, cfg)
    states: list[dict] = []
    run_fold(cfg, tiny, folds[0], 0, hooks=FoldHooks(save_checkpoint=states.append))
    with pytest.raises(ValueError, match="checkpoint is for fold"):
        run_fold(cfg, tiny, folds[1], 0, hooks=FoldHooks(resume_from=states[0]))


# ------------------------------------------------------------------------- data handling
def test_model_gets_input_shape_and_both_branches(monkeypatch):
    calls = use_tiny_net(monkeypatch)
    data = tiny_data(t=5, size=6)
    cfg = tiny_cfg(train={"epochs": 1})
    run_fold(cfg, data, folds_of(data, cfg)[0], seed=0)
    assert calls[0][1] == (5, 6, 6)


def test_train_stats_scaling_ignores_test_and_val_pixels(tiny):
    cfg = tiny_cfg(train={"scaling": "train_stats", "epochs": 2}, protocol={"val_subjects": 1})
    fold = folds_of(tiny, cfg)[0]
    a = run_fold(cfg, tiny, fold, seed=0)
    changed = tiny_data()
    changed.global_clips[fold.test] = 255
    changed.region_clips[fold.test] = 0
    b = run_fold(cfg, changed, fold, seed=0)
    va = a.predictions[a.predictions["split"] == "val"].reset_index(drop=True)
    vb = b.predictions[b.predictions["split"] == "val"].reset_index(drop=True)
    pd.testing.assert_frame_equal(va, vb)
    assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]
    changed.global_clips[fold.train[:3]] = 255  # a training row does change the outcome
    c = run_fold(cfg, changed, fold, seed=0)
    assert [h["loss"] for h in a.history] != [h["loss"] for h in c.history]


def test_augmentation_runs_on_training_batches_only(tiny, monkeypatch):
    sizes = []
    real = loop_mod.augment_mod.augment_pair

    def spy(xa, xb, cfg, gen):
        sizes.append(xa.shape[0])
        return real(xa, xb, cfg, gen)

    monkeypatch.setattr(loop_mod.augment_mod, "augment_pair", spy)
    cfg = tiny_cfg(
        train={"epochs": 2, "batch_size": 4, "augment": {"flip": True, "brightness": 0.3}},
        protocol={"val_subjects": 1},
    )
    fold = folds_of(tiny, cfg)[0]
    run_fold(cfg, tiny, fold, seed=0)
    n = fold.train.size  # 12 clips → 3 batches of 4 per epoch
    assert sum(sizes) == 2 * n and sizes == [4, 4, 4] * 2
    sizes.clear()
    run_fold(tiny_cfg(train={"epochs": 2}), tiny, fold, seed=0)
    assert sizes == []  # augmentation off by default


def test_bf16_autocast_and_channels_last_paths_run_on_cpu(tiny):
    cfg = tiny_cfg(train={"precision": "bf16", "channels_last": "on", "epochs": 2})
    res = run_fold(cfg, tiny, folds_of(tiny, cfg)[0], seed=0)
    probs = res.predictions[["prob_0", "prob_1", "prob_2"]].to_numpy()
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    assert all(np.isfinite(h["loss"]) for h in res.history)


def test_t2d_conv_impl_trains_the_same_function_with_the_same_state_dict(monkeypatch):
    """train.conv_impl t2d swaps the real model's stride-1 Conv3d for Conv2d over time-stacked
    frames: same initial weights, same state-dict keys, fp32 predictions equal to conv3d's."""
    import mer.training.fastpath as fastpath

    swapped: list[int] = []
    real_swap = fastpath.use_time_unfold_convs
    monkeypatch.setattr(
        fastpath, "use_time_unfold_convs", lambda m: swapped.append(real_swap(m)) or swapped[-1]
    )
    data = tiny_data(subjects=3, clips=3, t=4, size=16)
    small = {
        "preset": "casme2",
        "conv_a_channels": 4,
        "conv_b_channels": 4,
        "merge_channels": 8,
        "attention_reduction": 2,
        "pool": 2,
        "dense": [8, 8],
        "recurrent_units": 8,
        "msmh_scales": [2, 4],
        "head": [8, 8],
        "dropout": 0.0,
    }
    results, states = {}, {}
    for impl in ("conv3d", "t2d"):
        cfg = tiny_cfg(model=small, train={"epochs": 2, "conv_impl": impl, "checkpoint_every": 1})
        fold = folds_of(data, cfg)[0]
        hooks = FoldHooks(save_checkpoint=lambda st, impl=impl: states.setdefault(impl, st))
        results[impl] = run_fold(cfg, data, fold, seed=0, hooks=hooks)
    a, b = results["conv3d"], results["t2d"]
    cols = ["prob_0", "prob_1", "prob_2"]
    np.testing.assert_allclose(
        a.predictions[cols].to_numpy(), b.predictions[cols].to_numpy(), rtol=1e-4, atol=1e-5
    )
    np.testing.assert_allclose(
        [h["loss"] for h in a.history], [h["loss"] for h in b.history], rtol=1e-4
    )
    keys = {impl: sorted(st["model"]) for impl, st in states.items()}
    assert keys["conv3d"] == keys["t2d"] and any(k.endswith("conv.weight") for k in keys["t2d"])
    assert swapped == [4]  # branch A, branch B, merge and spatial-attention convs


def test_run_fold_imports_neither_ray_nor_wandb():
    """run_fold is the debugging entry point: it must run where Ray and W&B are absent."""
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys\n"
        "from tests.test_train_support import folds_of, tiny_cfg, tiny_data\n"
        "from mer.train import run_fold\n"
        "data = tiny_data()\n"
        "cfg = tiny_cfg(train={'epochs': 1}, model={'conv_a_channels': 2, 'conv_b_channels': 2,"
        " 'merge_channels': 4, 'attention_reduction': 2, 'pool': 2, 'dense': [4, 4],"
        " 'recurrent_units': 4, 'msmh_scales': [2, 4], 'head': [4, 4]})\n"
        "res = run_fold(cfg, data, folds_of(data, cfg)[0], seed=0)\n"
        "heavy = sorted(m for m in ('ray', 'wandb', 'optuna') if m in sys.modules)\n"
        "print(len(res.predictions), heavy)\n"
    )
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split("\n")[-2] == "6 []"

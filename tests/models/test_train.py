"""Training entry point on a small planted feature task: exact resume, early stopping,
prediction files the diagnostics read, development metrics consistent with the files."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import f1_score

from ser_diag import io
from ser_diag.models import train as train_module
from ser_diag.models.ensemble import ensemble
from ser_diag.models.toy_task import make_task
from ser_diag.models.train import TrainConfig, train, train_from_config
from ser_diag.models.train import checkpoints as train_checkpoints
from ser_diag.models.train import config as train_config
from ser_diag.models.train import data as train_data
from ser_diag.models.train import loop as train_loop
from ser_diag.models.train.loop import _lr_lambda
from ser_diag.schema import ATTRIBUTES, CLASS_CODES, PROB_COLUMNS


def base_config(tmp_path, **overrides):
    config = dict(system_name="fusion", out_dir=str(tmp_path), modalities={"audio": {}, "text": {}},
                  model={"kind": "late_fusion", "hidden": 32, "dropout": 0.3}, epochs=4, batch_size=16,
                  lr=3e-3, patience=100, progress=False, sampler="balanced")
    config.update(overrides)
    return config


@pytest.mark.parametrize("variant", [
    dict(),
    dict(modalities={"audio": {"level": "frames"}, "text": {"level": "frames"}},
         model={"kind": "cross_attention", "d_model": 16, "hidden": 32, "dropout": 0.2},
         categorical_loss="focal", attribute_loss="mean_penalty_mse", sampler="undersample",
         gender_head=True, grad_accum_steps=2, batch_size=8),
])
def test_resume_is_bit_identical(tmp_path, variant):
    labels, feats = make_task(frames="modalities" in variant)
    straight = train(base_config(tmp_path / "a", **variant), features=feats, labels=labels)
    half = train(base_config(tmp_path / "b", stop_after_epochs=2, **variant), features=feats, labels=labels)
    assert half.epochs_run == 2 and half.predictions_dir is None
    resumed = train(base_config(tmp_path / "b", resume=True, **variant), features=feats, labels=labels)
    assert resumed.epochs_run == 4
    a = torch.load(tmp_path / "a/runs/fusion/checkpoints/last.pt", weights_only=False)
    b = torch.load(tmp_path / "b/runs/fusion/checkpoints/last.pt", weights_only=False)
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    assert a["history"] == [dict(h, seconds=a["history"][i]["seconds"]) for i, h in enumerate(b["history"])]
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "a/predictions/fusion/categorical.csv"),
                                  pd.read_csv(tmp_path / "b/predictions/fusion/categorical.csv"))
    # and the run did learn something: parameters moved, training loss went down
    assert straight.history[-1]["train_loss"] < straight.history[0]["train_loss"]


def test_prediction_files_are_read_by_the_diagnostics(tmp_path):
    labels, feats = make_task()
    labels_file = tmp_path / "labels" / "labels_consensus.csv"
    io.write_labels_consensus(labels, labels_file)
    result = train(base_config(tmp_path, epochs=6), features=feats, labels=labels)
    folder = tmp_path / "predictions" / "fusion"
    assert result.predictions_dir == folder
    assert result.prediction_dirs == {"Development": folder, "Test3": tmp_path / "predictions_test3" / "fusion"}
    for split in ("Development", "Test3"):  # one split per folder: the diagnostics merge it unchanged
        merged = io.load(labels_file, result.prediction_dirs[split].parent, split=split)
        n_split = (labels["Split_Set"] == split).sum()
        assert len(merged["attributes"]) == n_split
        assert len(merged["categorical"]) == (labels["EmoClass"].isin(CLASS_CODES) & (labels["Split_Set"] == split)).sum()
    pred = io.read_predictions(folder)
    assert sorted(pred["FileName"]) == sorted(labels.loc[labels["Split_Set"] == "Development", "FileName"])
    assert set(pred["system"]) == {"fusion"}
    probs = pred.loc[:, list(PROB_COLUMNS)].to_numpy(float)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    np.testing.assert_array_equal(pred["EmoClass"].to_numpy(str), np.array(CLASS_CODES)[probs.argmax(axis=1)])
    attrs = pred.loc[:, list(ATTRIBUTES)].to_numpy(float)
    assert attrs.min() >= 1.0 and attrs.max() <= 7.0
    # development macro-F1 of the best epoch == macro-F1 recomputed from the written file
    dev = labels[(labels["Split_Set"] == "Development") & labels["EmoClass"].isin(CLASS_CODES)]
    merged = dev.merge(pred, on="FileName", suffixes=("_true", "_pred"))
    f1 = f1_score(merged["EmoClass_true"], merged["EmoClass_pred"], labels=list(CLASS_CODES),
                  average="macro", zero_division=0)
    assert result.dev_metrics["macro_f1"] == pytest.approx(f1, abs=1e-9)
    assert result.best_score == max(h["dev_macro_f1"] for h in result.history)
    log = [json.loads(line) for line in (tmp_path / "runs/fusion/metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in log] == list(range(6))
    assert {"train_loss", "train_categorical", "train_attributes", "dev_macro_f1", "dev_ccc_mean", "lr"} <= set(log[0])


def test_attribute_only_training_uses_ox_rows_and_ccc_monitor(tmp_path):
    labels, feats = make_task()
    result = train(base_config(tmp_path, tasks=["attributes"], sampler="shuffle", epochs=3),
                   features=feats, labels=labels)
    assert result.monitor == "ccc_mean"
    assert not (tmp_path / "predictions/fusion/categorical.csv").exists()
    pred = io.read_predictions(tmp_path / "predictions/fusion")
    assert pred.loc[:, list(ATTRIBUTES)].notna().all().all()


def test_early_stopping_stops_after_patience_epochs_without_gain(tmp_path):
    labels, feats = make_task()
    # lr 0: the development score never improves after epoch 0 -> stop after epoch 0 + 2
    result = train(base_config(tmp_path, lr=0.0, patience=2, epochs=10), features=feats, labels=labels)
    assert result.epochs_run == 3 and result.best_epoch == 0
    assert (tmp_path / "predictions/fusion/categorical.csv").exists()


def test_learning_rate_schedules():
    cfg = TrainConfig(epochs=10, warmup_fraction=0.1, min_lr_ratio=0.1)
    f = _lr_lambda(cfg, steps_per_epoch=10)  # 100 steps, 10 of warm-up
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0)
    assert f(55) == pytest.approx(0.1 + 0.9 * 0.5)  # cosine half way: (1 + cos(pi/2)) / 2
    assert f(100) == pytest.approx(0.1)
    g = _lr_lambda(TrainConfig(epochs=10, warmup_fraction=0.0, lr_schedule="exponential", lr_decay_gamma=0.5,
                               min_lr_ratio=0.0), steps_per_epoch=4)
    assert g(8) == pytest.approx(0.25)  # two epochs: 0.5 ** 2


def test_soft_label_losses_train_from_vote_distributions(tmp_path):
    labels, feats = make_task()
    rng = np.random.default_rng(0)
    soft = pd.DataFrame(rng.dirichlet(np.ones(8), size=len(labels)), index=labels["FileName"],
                        columns=list(CLASS_CODES))
    for loss in ("soft_ce", "kld"):
        result = train(base_config(tmp_path / loss, categorical_loss=loss, epochs=2), features=feats,
                       labels=labels, soft_labels=soft)
        assert np.isfinite(result.history[-1]["train_categorical"])


def test_train_from_config_reads_json_and_rejects_unknown_keys(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="unknown training config keys"):
        TrainConfig.from_dict({"epochs": 2, "learning_rate": 1.0})
    cfg = TrainConfig.from_dict({"tasks": "attributes", "predict_splits": ["Development"]})
    assert cfg.tasks == ("attributes",) and cfg.predict_splits == ("Development",)
    labels, feats = make_task()
    labels_file = tmp_path / "labels_consensus.csv"
    io.write_labels_consensus(labels, labels_file)
    asked = []

    def fake_store(corpus, spec, cache_dir, progress=True, file_names=None):
        asked.append((corpus, spec["encoder"]))
        return feats[{"egemaps": "audio", "minilm": "text"}[spec["encoder"]]]

    monkeypatch.setattr(train_data, "open_feature_store", fake_store)
    config = base_config(tmp_path / "out", corpus=str(labels_file), epochs=2,
                         modalities={"audio": {"encoder": "egemaps"}, "text": {"encoder": "minilm"}})
    (tmp_path / "config.json").write_text(json.dumps(config))
    result = train_from_config(tmp_path / "config.json")
    assert asked == [(str(labels_file), "egemaps"), (str(labels_file), "minilm")]
    assert (result.predictions_dir / "categorical.csv").exists() and result.epochs_run == 2


def test_ensemble_trains_and_collects_systems(tmp_path):
    labels, feats = make_task()
    first = train(base_config(tmp_path / "solo", epochs=2), features=feats, labels=labels)
    config = {"out_dir": str(tmp_path / "ens"), "seeds": [0, 1],
              "defaults": {"epochs": 2, "batch_size": 16, "progress": False, "model": {"kind": "late_fusion"}},
              "systems": [{"system_name": "audio", "modalities": {"audio": {}}},
                          {"system_name": "both", "modalities": {"audio": {}, "text": {}}},
                          {"system_name": "outside", "predictions": str(first.predictions_dir)}]}
    summaries = ensemble(config, k=3, features=feats, labels=labels)
    assert [s["system_name"] for s in summaries] == ["audio_seed0", "audio_seed1", "both_seed0"]
    summaries = ensemble(config, features=feats, labels=labels)
    assert len(summaries) == 5 and not summaries[-1]["trained"]
    systems = io.read_systems(tmp_path / "ens" / "predictions")
    assert set(systems["system"]) == {"audio_seed0", "audio_seed1", "both_seed0", "both_seed1", "outside"}
    collected = systems[systems["system"] == "outside"].sort_values("FileName")
    original = io.read_predictions(first.predictions_dir).sort_values("FileName")
    np.testing.assert_allclose(collected["P_A"].to_numpy(float), original["P_A"].to_numpy(float))
    seeds = systems[systems["system"].str.startswith("audio")].pivot(index="FileName", columns="system",
                                                                     values="P_A")
    assert not np.allclose(seeds["audio_seed0"], seeds["audio_seed1"])  # the seed changes the system
    assert json.loads((tmp_path / "ens" / "ensemble.json").read_text())[0]["dev_metrics"]["macro_f1"] >= 0


# ----------------------------------------------------------------------------- augmentation

def make_detailed(labels, seed=0):
    """Five to seven annotators per file: about 60 % vote the consensus class (a random class for
    X rows), the rest a random class or Other."""
    rng = np.random.default_rng(seed)
    rows = []
    for name, code in zip(labels["FileName"], labels["EmoClass"]):
        for w in range(rng.integers(5, 8)):
            vote = code if code in CLASS_CODES and rng.random() < 0.6 else rng.choice(list(CLASS_CODES) + ["O"])
            rows.append((name, f"W{w:03d}", vote))
    return pd.DataFrame(rows, columns=["FileName", "WorkerID", "EmoClass"])


def _state(path):
    return torch.load(path / "runs/fusion/checkpoints/last.pt", weights_only=False)["model"]


def test_mixup_hook_mixes_the_representation_entering_the_output_layers():
    from ser_diag.models.heads import build_model
    model = build_model("late_fusion", {"audio": 5, "text": 9}, hidden=16, dropout=0.0).eval()
    x = {"audio": torch.randn(6, 5), "text": torch.randn(6, 9)}
    plain = model(x)
    state = {"mix": None}
    handle = model.outputs.register_forward_pre_hook(train_loop._mixup_hook(state))
    perm, lam = torch.tensor([3, 0, 5, 1, 2, 4]), 0.3
    torch.testing.assert_close(model(x)["logits"], plain["logits"])  # inactive -> no-op
    state["mix"] = (lam, perm)
    mixed = model(x)
    handle.remove()
    # the output layers are affine, so mixing their input mixes their output the same way
    for key in ("logits", "attributes"):
        torch.testing.assert_close(mixed[key], lam * plain[key] + (1 - lam) * plain[key][perm])


def test_manifold_mixup_training_is_deterministic_and_resumes_bit_identically(tmp_path):
    labels, feats = make_task()
    mix = {"augment": {"manifold_mixup": {"p": 0.5, "alpha": 0.2}}}
    one = train(base_config(tmp_path / "a", **mix), features=feats, labels=labels)
    train(base_config(tmp_path / "b", **mix), features=feats, labels=labels)
    train(base_config(tmp_path / "plain"), features=feats, labels=labels)
    train(base_config(tmp_path / "c", stop_after_epochs=2, **mix), features=feats, labels=labels)
    train(base_config(tmp_path / "c", resume=True, **mix), features=feats, labels=labels)
    a, b, c, plain = (_state(tmp_path / d) for d in ("a", "b", "c", "plain"))
    for key in a:
        assert torch.equal(a[key], b[key]) and torch.equal(a[key], c[key]), key
    assert not all(torch.equal(a[k], plain[k]) for k in a)  # mixup did change training
    assert one.history[-1]["train_loss"] < one.history[0]["train_loss"]
    with pytest.raises(ValueError, match="unknown augment keys"):
        train(base_config(tmp_path / "d", augment={"mixup": {}}), features=feats, labels=labels)


def test_drop_annotators_redraws_soft_targets_per_epoch_and_keeps_every_file(tmp_path):
    labels, feats = make_task()
    detailed = make_detailed(labels)
    names = labels["FileName"].to_numpy()
    full = io.soft_labels(detailed).reindex(names)[list(CLASS_CODES)].to_numpy()
    has_votes = np.isfinite(full).all(axis=1)
    epochs = [train_module.epoch_soft_labels(detailed, names, 0.3, seed=0, epoch=e) for e in range(6)]
    for soft in epochs:
        assert (np.isfinite(soft).all(axis=1) == has_votes).all()  # never empties a file
        np.testing.assert_allclose(soft[has_votes].sum(axis=1), 1.0, atol=1e-6)
        assert not np.allclose(soft[has_votes], full[has_votes])  # votes were dropped
    assert not np.allclose(epochs[0][has_votes], epochs[1][has_votes])  # re-drawn every epoch
    np.testing.assert_array_equal(epochs[2], train_module.epoch_soft_labels(detailed, names, 0.3, 0, 2))  # seeded
    # in training: targets follow the epoch's draw, resume stays bit-identical, and the loss must be soft
    drop = {"categorical_loss": "soft_ce", "augment": {"drop_annotators": {"fraction": 0.3}}}
    seen = []
    original = train_loop._targets

    def spy(data, rows, device, mix=None):
        seen.append(data.y_soft.copy())
        return original(data, rows, device, mix)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(train_loop, "_targets", spy)
        train(base_config(tmp_path / "a", epochs=2, **drop), features=feats, labels=labels, detailed_labels=detailed)
    per_epoch = [seen[0], seen[-1]]
    for epoch, soft in enumerate(per_epoch):
        np.testing.assert_array_equal(soft, train_module.epoch_soft_labels(detailed, names, 0.3, 0, epoch))
    train(base_config(tmp_path / "b", epochs=4, **drop), features=feats, labels=labels, detailed_labels=detailed)
    train(base_config(tmp_path / "c", epochs=4, stop_after_epochs=2, **drop), features=feats, labels=labels,
          detailed_labels=detailed)
    train(base_config(tmp_path / "c", epochs=4, resume=True, **drop), features=feats, labels=labels,
          detailed_labels=detailed)
    b, c = _state(tmp_path / "b"), _state(tmp_path / "c")
    assert all(torch.equal(b[k], c[k]) for k in b)
    with pytest.raises(ValueError, match="soft_ce"):
        train(base_config(tmp_path / "d", augment={"drop_annotators": 0.2}), features=feats, labels=labels,
              detailed_labels=detailed)


def test_shipped_training_configs_parse():
    folder = Path(train_module.__file__).parents[1] / "configs"
    configs = {p.stem: json.loads(p.read_text()) for p in folder.glob("*.json") if p.stem != "ensemble"}
    assert "late_fusion_augmented" in configs
    for name, config in configs.items():
        TrainConfig.from_dict(config)
    mixup, drop, waveform = train_config._augment_settings(configs["late_fusion_augmented"]["augment"])
    assert mixup == {"p": 0.3, "alpha": 0.2} and drop == 0.2 and waveform == {}
    assert train_config._augment_settings({}) == (None, None, {})  # off by default


# ----------------------------------------------------------------------------- issue 13 regressions

def test_checkpoint_loads_onto_another_device_and_generators_stay_on_cpu(tmp_path):
    """D1: the model state follows ``map_location``; generator states stay CPU byte tensors, so
    a run saved on one device resumes on another (``meta`` stands in for a GPU)."""
    labels, feats = make_task()
    train(base_config(tmp_path, stop_after_epochs=1), features=feats, labels=labels)
    path = tmp_path / "runs/fusion/checkpoints/last.pt"
    with pytest.raises((TypeError, NotImplementedError)):  # what loading everything onto the device did
        train_checkpoints._set_rng_state({k: (v.to("meta") if torch.is_tensor(v) else v) for k, v in
                                     torch.load(path, weights_only=False)["rng"].items()})
    ckpt = train_module.load_checkpoint(path, map_location="meta")
    assert all(v.device.type == "meta" for v in ckpt["model"].values())
    state = ckpt["rng_per_rank"][0]["torch"]
    assert state.device.type == "cpu" and state.dtype == torch.uint8
    before = torch.get_rng_state()
    train_checkpoints._set_rng_state(ckpt["rng_per_rank"][0])
    assert torch.equal(torch.get_rng_state(), torch.load(path, weights_only=False)["rng"]["torch"])
    torch.set_rng_state(before)
    resumed = train(base_config(tmp_path, resume=True, epochs=2), features=feats, labels=labels)
    assert resumed.epochs_run == 2


def _layered_task(n_states=3, informative=2, seed=0):
    """``make_task`` whose audio vector is repeated in ``n_states`` side-by-side "layers", only
    layer ``informative`` carrying it (the others: noise)."""
    from ser_diag.models.train import ArrayFeatures

    labels, feats = make_task(seed=seed)
    rng = np.random.default_rng(seed + 1)
    audio = feats["audio"].get(feats["audio"].file_names)
    layers = [audio if i == informative else rng.standard_normal(audio.shape) for i in range(n_states)]
    return labels, {"audio": ArrayFeatures(feats["audio"].file_names, np.concatenate(layers, axis=1), n_states)}


def test_learned_layer_weights_are_parameters_that_find_the_informative_layer(tmp_path):
    """D3: ``layer: "weighted"`` puts softmax layer weights into the model and trains them."""
    labels, feats = _layered_task()
    result = train(base_config(tmp_path, modalities={"audio": {"layer": "weighted"}}, epochs=15, lr=3e-2,
                               model={"kind": "late_fusion", "hidden": 32, "dropout": 0.0}),
                   features=feats, labels=labels)
    model = result.model
    logits = dict(model.named_parameters())["layer_logits.audio"]
    weights = torch.softmax(logits.detach(), 0).numpy()
    assert weights.shape == (3,) and weights[2] > 0.4 and weights[2] == weights.max()
    with pytest.raises(ValueError, match="n_states"):
        train(base_config(tmp_path / "b", modalities={"audio": {"layer": "weighted"}}),
              features=make_task()[1], labels=labels)


def test_train_runs_on_one_thread_by_default_and_restores_the_setting(tmp_path):
    """D6: ``num_threads`` (default 1, as the pipeline) while training; the caller's setting after."""
    from ser_diag.models.train import ArrayFeatures

    seen = []

    class Spy(ArrayFeatures):
        def get(self, file_names):
            seen.append(torch.get_num_threads())
            return super().get(file_names)

    labels, feats = make_task()
    spied = {m: Spy(f.file_names, f.get(f.file_names)) for m, f in feats.items()}
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        result = train(base_config(tmp_path, epochs=1), features=spied, labels=labels)
        assert seen == [1, 1] and result.num_threads == 1 and torch.get_num_threads() == 2
        train(base_config(tmp_path / "b", epochs=1, num_threads=None), features=spied, labels=labels)
        assert seen[-1] == 2
    finally:
        torch.set_num_threads(previous)


def test_reference_systems_are_the_config_files():
    """D8: the pipeline's systems are read from configs/<name>.json, one source of truth."""
    from ser_diag.models import pipeline

    folder = Path(train_module.__file__).parents[1] / "configs"
    for name in pipeline.PIPELINE_SYSTEMS:
        on_disk = json.loads((folder / f"{name}.json").read_text())
        assert on_disk["system_name"] == name
        assert pipeline.REFERENCE_SYSTEMS[name] == {k: v for k, v in on_disk.items() if k not in pipeline.RUN_KEYS}
    late = pipeline.REFERENCE_SYSTEMS["late_fusion"]
    assert late["categorical_loss"] == "weighted_ce" and late["sampler"] == "shuffle"


def test_attention_weights_rebuild_inputs_as_training_did(tmp_path):
    """``attention_weights`` honours ``normalize_features`` like ``train``."""
    labels, feats = make_task(frames=True)
    config = base_config(tmp_path, epochs=1, normalize_features=False,
                         modalities={"audio": {"level": "frames"}, "text": {"level": "frames"}},
                         model={"kind": "cross_attention", "d_model": 16, "hidden": 32, "dropout": 0.0})
    result = train(config, features=feats, labels=labels)
    names = labels["FileName"].iloc[:3].tolist()
    attention, masks, rows = train_module.attention_weights(result, names, features=feats, labels=labels)
    raw = {m: torch.nn.utils.rnn.pad_sequence([torch.as_tensor(a) for a in f.get_frames(rows)], batch_first=True)
           for m, f in feats.items()}
    with torch.no_grad():
        expected = result.model.eval()(raw, masks)["attention"]
    torch.testing.assert_close(attention["audio_to_text"], expected["audio_to_text"])

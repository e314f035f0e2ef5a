"""Fine-tuning mode end to end on CPU: tiny random WavLM (audio) and RoBERTa (text) encoders
trained from waveforms and transcripts, top block unfrozen, learned layer weights, layer-wise
learning rates, gradient checkpointing, waveform augmentation on the fly; exact resume."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ser_diag.models import finetune as ft
from ser_diag.models.toy_task import make_task, write_toy_corpus
from ser_diag.models.train import TrainConfig, train
from ser_diag.schema import CLASS_CODES

pytestmark = pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask")


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    root = tmp_path_factory.mktemp("finetune")
    labels, _ = make_task(n=48, seed=3)
    write_toy_corpus(root / "corpus", labels, seconds=0.5)
    return labels, root / "corpus", _tiny_roberta(root / "roberta")


def _tiny_roberta(folder: Path) -> Path:
    """A tiny random RoBERTa saved like a hub model, with MiniLM's (offline) tokenizer."""
    from transformers import AutoTokenizer, RobertaConfig, RobertaModel

    from ser_diag.models.encoders import minilm_path

    tokenizer = AutoTokenizer.from_pretrained(str(minilm_path()))
    config = RobertaConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=64, max_position_embeddings=130, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    RobertaModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _config(out, corpus, roberta, **overrides):
    config = dict(system_name="ft", out_dir=str(out), corpus=str(corpus),
                  modalities={"audio": {"encoder": "tiny-wavlm", "layer": "weighted"},
                              "text": {"encoder": str(roberta), "layer": "weighted"}},
                  model={"kind": "late_fusion", "hidden": 32, "dropout": 0.1},
                  finetune={"top_layers": 1, "encoder_lr": 2e-3, "layer_lr_decay": 0.5,
                            "gradient_checkpointing": True},
                  augment={"noise": {"p": 0.5, "snr_db": [10, 20]}, "reverb": {"p": 0.5, "rt60": [0.1, 0.3]}},
                  epochs=4, batch_size=8, lr=3e-3, patience=100, progress=False, eval_batch_size=16)
    config.update(overrides)
    return config


def test_finetuning_trains_the_top_block_and_resumes_exactly(task, tmp_path):
    labels, corpus, roberta = task
    straight = train(_config(tmp_path / "a", corpus, roberta), labels=labels)
    model = straight.model
    assert isinstance(model, ft.FineTuneModel)
    history = straight.history
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    # frozen: conv front end / embeddings and the lower block; trained: top block, layer weights, head
    initial = {"audio": ft.build_finetune_model(TrainConfig.from_dict(_config(tmp_path, corpus, roberta)), None)}
    start = dict(initial["audio"].named_parameters())
    for name, p in model.named_parameters():
        moved = not torch.equal(p.detach(), start[name].detach())
        trainable = (".layers.1." in name or ".layer.1." in name or "layer_weighting" in name
                     or name.startswith("head."))
        assert p.requires_grad == trainable, name
        assert moved == trainable or (trainable and "bias" in name), name
    assert 0 < straight.n_trainable < straight.n_parameters
    assert all(getattr(e.model, "is_activation_checkpointing", None) or e.model.is_gradient_checkpointing
               for e in model.encoders.values())
    # layer-wise learning rates: head at lr, top block at encoder_lr (one group per encoder)
    groups = ft.param_groups(model, TrainConfig.from_dict(_config(tmp_path, corpus, roberta)))
    assert [g["lr"] for g in groups] == [3e-3, 2e-3, 2e-3]
    # exact resume after a stop, augmentation and dropout included
    train(_config(tmp_path / "b", corpus, roberta, stop_after_epochs=2), labels=labels)
    resumed = train(_config(tmp_path / "b", corpus, roberta, resume=True), labels=labels)
    a = torch.load(tmp_path / "a/runs/ft/checkpoints/last.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "b/runs/ft/checkpoints/last.pt", weights_only=False)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.epochs_run == 4 and (resumed.predictions_dir / "categorical.csv").exists()


def test_baseline_head_fine_tunes_audio_with_clip_mixing_on_the_fly(task, tmp_path):
    """The baseline's attentive statistics pooling head on a fine-tuned tiny WavLM; SAIL clip
    mixing averages the soft labels of the two clips."""
    from ser_diag import io
    from ser_diag.models.train import loop as train_loop

    labels, corpus, roberta = task
    rng = np.random.default_rng(0)
    detailed = pd.DataFrame([(f, f"W{w}", c if c in CLASS_CODES and rng.random() < .7 else "N")
                             for f, c in zip(labels["FileName"], labels["EmoClass"]) for w in range(4)],
                            columns=["FileName", "WorkerID", "EmoClass"])
    soft = io.soft_labels(detailed)
    mixed = []
    original = train_loop._targets

    def spy(data, rows, device, mix=None):
        if mix is not None:
            mixed.append(int((mix[0] >= 0).sum()))
        return original(data, rows, device, mix)

    config = _config(tmp_path, corpus, roberta, modalities={"audio": {"encoder": "tiny-wavlm", "layer": "weighted"}},
                     model={"kind": "baseline", "hidden": 32, "dropout": 0.5}, categorical_loss="soft_ce",
                     augment={"mix_clips": {"p": 0.5, "max_overlap_s": 0.2}}, epochs=2,
                     finetune={"top_layers": 1, "num_workers": 1})  # waveforms read in a worker process
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(train_loop, "_targets", spy)
        result = train(config, labels=labels, soft_labels=soft)
    assert sum(mixed) > 0
    assert result.model.head.pool is not None  # attentive statistics pooling over frames
    with pytest.raises(ValueError, match="mix_clips"):
        train(dict(config, categorical_loss="weighted_ce"), labels=labels)


def test_baseline_wavlm_config_is_the_fine_tuning_recipe():
    path = Path(ft.__file__).parent / "configs" / "baseline_wavlm.json"
    config = TrainConfig.from_dict(json.loads(path.read_text()))
    settings = ft.finetune_settings(config.finetune)
    assert config.modalities["audio"] == {"encoder": "microsoft/wavlm-large", "layer": "weighted"}
    assert config.model["kind"] == "baseline" and config.model["hidden"] == 1024
    assert settings["top_layers"] == 24 and settings["gradient_checkpointing"]
    assert config.batch_size * config.grad_accum_steps == 32 and config.lr == 1e-5
    with pytest.raises(ValueError, match="finetune takes"):
        ft.finetune_settings({"unfreeze": 3})

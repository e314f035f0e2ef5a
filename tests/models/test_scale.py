"""Scale path: frame features streamed from the memory-mapped cache, feature extraction sharded
across processes, and the GPU smoke script (which must skip cleanly without CUDA)."""

import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ser_diag.models.features import extract_features
from ser_diag.models.toy_task import make_task, write_toy_corpus
from ser_diag.models.train import StreamedFrames, TrainConfig, train
from ser_diag.models.train import loop as train_loop
from ser_diag.models.train.data import _encoder_for, _open_feature_stores
from ser_diag.models.train.distributed import _Dist

pytestmark = pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    labels, _ = make_task(n=40, seed=2)
    return labels, write_toy_corpus(tmp_path_factory.mktemp("scale") / "corpus", labels, seconds=0.4)


def test_streamed_frames_train_like_frames_in_memory(corpus, tmp_path):
    labels, root = corpus
    from ser_diag.models.encoders import tiny_speech_encoder
    store = extract_features(root, tiny_speech_encoder("wavlm"), tmp_path / "cache", level="frames", progress=False)
    config = dict(system_name="s", modalities={"audio": {"level": "frames", "frame_stride": 2}},
                  model={"kind": "baseline", "hidden": 16, "dropout": 0.0}, epochs=2, batch_size=8,
                  progress=False, patience=100)
    seen = []
    original = train_loop._collate

    def spy(data, rows, device, view_of_row=None):
        seen.append(type(data.features["audio"]))
        return original(data, rows, device, view_of_row)

    in_memory = train(dict(config, out_dir=str(tmp_path / "a")), features={"audio": store}, labels=labels)
    streamed_config = dict(config, modalities={"audio": {"level": "frames", "frame_stride": 2, "stream": True}})
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(train_loop, "_collate", spy)
        streamed = train(dict(streamed_config, out_dir=str(tmp_path / "b")), features={"audio": store},
                         labels=labels)
    assert set(seen) == {StreamedFrames}
    np.testing.assert_allclose([h["train_loss"] for h in streamed.history],
                               [h["train_loss"] for h in in_memory.history], rtol=1e-4)
    a = pd.read_csv(tmp_path / "a/predictions/s/attributes.csv")
    b = pd.read_csv(tmp_path / "b/predictions/s/attributes.csv")
    np.testing.assert_allclose(a.iloc[:, 1:].to_numpy(), b.iloc[:, 1:].to_numpy(), atol=1e-3)


def test_feature_extraction_is_sharded_across_processes(corpus, tmp_path):
    """Each of two processes encodes every second file into the shared cache; together they
    cover the corpus once, and the store opened afterwards holds every file."""
    labels, root = corpus
    config = TrainConfig(corpus=str(root), feature_cache=str(tmp_path / "cache"), progress=False,
                         modalities={"audio": {"encoder": "tiny-wavlm"}})
    names = sorted(labels["FileName"])
    first, _ = _open_feature_stores(config, _Dist(rank=0, world_size=2), labels)
    assert first["audio"].file_names == names[0::2]
    both, _ = _open_feature_stores(config, _Dist(rank=1, world_size=2), labels)
    assert both["audio"].file_names == names
    shards = sorted(p.name for p in Path(both["audio"].path).glob("shard-*.json"))
    assert len(shards) == 2  # one per process, none re-encoded
    whole = extract_features(root, _encoder_for({"encoder": "tiny-wavlm"}), tmp_path / "single",
                             progress=False)
    np.testing.assert_allclose(both["audio"].get(names), whole.get(names), atol=1e-5)


def test_gpu_smoke_script_runs_or_skips_cleanly_without_cuda(tmp_path):
    import torch
    done = subprocess.run(["bash", str(REPO / "bench" / "gpu_smoke.sh"), str(tmp_path)], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    if torch.cuda.is_available():
        assert "gpu_smoke: ok" in done.stdout
    else:
        assert "skipped" in done.stdout and "no CUDA" in done.stdout

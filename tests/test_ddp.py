"""DistributedDataParallel: 2 CPU processes (gloo, launched by torchrun) x half batches train
the same model as 1 process x the whole batch, batch-level losses (1-CCC) included."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ser_diag.models.train import train

sys.path.insert(0, str(Path(__file__).parent))
from test_train import make_task  # noqa: E402

CONFIG = dict(system_name="ddp", modalities={"audio": {"level": "frames"}, "text": {"level": "frames"}},
              model={"kind": "cross_attention", "d_model": 16, "hidden": 32, "dropout": 0.0},
              categorical_loss="weighted_ce", attribute_loss="ccc", gender_head=True, sampler="balanced",
              epochs=3, batch_size=16, grad_accum_steps=2, lr=3e-3, patience=100, progress=False)


def _run(out_dir: str) -> None:
    labels, feats = make_task(n=160, frames=True)
    train(dict(CONFIG, out_dir=out_dir), features=feats, labels=labels)


def test_two_processes_match_one(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).parents[1]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           __file__, str(tmp_path / "ddp")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _run(str(tmp_path / "single"))

    ddp = torch.load(tmp_path / "ddp/runs/ddp/checkpoints/last.pt", weights_only=False)
    single = torch.load(tmp_path / "single/runs/ddp/checkpoints/last.pt", weights_only=False)
    d = CONFIG["model"]["d_model"]
    for key, value in single["model"].items():
        other = ddp["model"][key]
        if key.endswith("in_proj_bias"):
            # The key-projection bias has an identically zero gradient (softmax ignores a shift
            # shared by all keys); Adam turns the round-off left there into steps of any sign,
            # so it is compared loosely, the query and value biases tightly.
            torch.testing.assert_close(other[d:2 * d], value[d:2 * d], rtol=0, atol=1e-3, msg=key)
            other, value = torch.cat([other[:d], other[2 * d:]]), torch.cat([value[:d], value[2 * d:]])
        torch.testing.assert_close(other, value, rtol=1e-4, atol=1e-5, msg=key)
    np.testing.assert_allclose([h["train_loss"] for h in ddp["history"]],
                               [h["train_loss"] for h in single["history"]], rtol=1e-5)
    a = pd.read_csv(tmp_path / "ddp/predictions/ddp/attributes.csv")
    b = pd.read_csv(tmp_path / "single/predictions/ddp/attributes.csv")
    np.testing.assert_allclose(a.iloc[:, 1:].to_numpy(), b.iloc[:, 1:].to_numpy(), atol=1e-4)
    assert ddp["history"][-1]["train_loss"] < ddp["history"][0]["train_loss"]


if __name__ == "__main__":
    _run(sys.argv[1])

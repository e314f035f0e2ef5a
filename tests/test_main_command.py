"""README command 1 (``ser-diag demo``) as a new user runs it, once, in a fresh clone: the clone
stays clean (issue 23), and the reference systems it trains on the demo corpus are checked: does each modality carry what the corpus design
plants in it, and does the fusion model combine them? (issue 4: "check it, do not assume it")

The default 600-file corpus (:func:`ser_diag.models.corpus.make_corpus`: 200 speakers, 40 in
each evaluation split), the pipeline's ``audio_egemaps``, ``text_minilm`` and ``late_fusion``
trained with seeds 0, 1, 2 (:func:`ser_diag.models.pipeline.run_reference_pipeline` with
``comparison_seeds=3``, as the demo runs it), scored on Development + Test3 together (240 files, 80 speakers) by
:func:`ser_diag.models.comparison.fusion_vs_single_modality`: the seed average of the paired
differences, 95 % percentile interval from 1000 resamples of speakers.

Thresholds come from a measurement over seeds (the same corpus, seed sets {0,1,2}, {3,4,5},
{6,7,8}; smallest 95 % lower bound of the three, then each threshold about 2/3 of it):

=========================================  ==========================  =========  =========
difference                                 estimates (3 seed sets)     min low    asserted
=========================================  ==========================  =========  =========
audio − text, arousal CCC                  +0.638 +0.615 +0.622        +0.457     low > 0.30
audio − text, dominance CCC                +0.569 +0.564 +0.558        +0.429     low > 0.28
text − audio, valence CCC                  +0.294 +0.287 +0.299        +0.126     low > 0.08
fusion − text, arousal CCC                 +0.607 +0.560 +0.591        +0.426     low > 0.28
fusion − text, dominance CCC               +0.496 +0.506 +0.513        +0.374     low > 0.25
fusion − audio, valence CCC                +0.310 +0.284 +0.297        +0.141     low > 0.09
fusion − text, macro-F1                    +0.061 +0.067 +0.047        +0.005     low > 0
fusion − audio, macro-F1                   +0.018 +0.029 +0.044        −0.042     TIE
fusion − text, valence CCC                 +0.016 −0.003 −0.002        −0.051     TIE
fusion − audio, arousal CCC                −0.031 −0.055 −0.031        −0.101     no gain
fusion − audio, dominance CCC              −0.073 −0.057 −0.045        −0.121     no gain
=========================================  ==========================  =========  =========

So the planted design holds where a modality carries nothing (text has no prosody: fusion
gains arousal and dominance over it; prosody carries no valence: fusion gains valence over
audio), and fusion beats text-only on the class. It does NOT significantly beat audio-only on
the class (every interval includes 0: a tie, asserted as one), and adds nothing where the
other modality carries nothing new (valence over text: a tie; arousal and dominance over
audio: no gain, up to 0.07 lost to the extra text inputs).
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ser_diag import io
from ser_diag.resampling import Resampling
from ser_diag.schema import SYNTHETIC_BANNER

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SYSTEMS = ("audio_egemaps", "text_minilm", "late_fusion")
EVAL_SPLITS = ("Development", "Test3")
SPEAKERS = Resampling(n_boot=1000, unit="speaker", seed=0)


@pytest.fixture(scope="module")
def main_command(tmp_path_factory):
    """README command 1, ``ser-diag demo`` with its defaults, run once in a fresh clone of this
    checkout's HEAD (the installed package is this checkout's source: an editable install)."""
    git = shutil.which("git")
    assert git is not None, "the clean-clone check needs git (CI clones the repository with it)"
    clone = tmp_path_factory.mktemp("main_command") / "clone"
    subprocess.run([git, "clone", "--quiet", "--no-hardlinks", str(REPO), str(clone)], check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                              "MKL_NUM_THREADS")}
    run = subprocess.run([shutil.which("ser-diag"), "demo"], cwd=clone, env=dict(env, MPLBACKEND="Agg"),
                         capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0, run.stderr[-3000:]
    return clone, run


@pytest.fixture(scope="module")
def trained(main_command):
    """The reference systems the main command trained: the default 600-file corpus, every
    pipeline system, the compared ones with seeds 0, 1, 2."""
    clone, _ = main_command
    return clone / "data" / "demo" / "corpus", clone / "data" / "demo" / "reference_models"


def test_main_command_leaves_a_clean_clone(main_command):
    """After README command 1 in a fresh clone (figures into the clone's ``figures/``, data into
    the ignored ``data/demo/``, the committed reference predictions diagnosed), ``git status
    --porcelain`` is empty: every committed output regenerated to the same bytes (issue 23)."""
    clone, run = main_command
    assert "committed predictions" in run.stdout and SYNTHETIC_BANNER in run.stdout
    status = subprocess.run([shutil.which("git"), "status", "--porcelain", "--untracked-files=all"], cwd=clone,
                            capture_output=True, text=True, check=True).stdout
    assert status == "", f"the demo changed the clone:\n{status[:3000]}"


@pytest.fixture(scope="module")
def table(trained):
    from ser_diag.models.comparison import compare_pipeline_seeds

    corpus, out = trained
    frame = compare_pipeline_seeds(corpus, out, split=EVAL_SPLITS, resampling=SPEAKERS)
    print(frame[["single", "metric", "fusion_estimate", "single_estimate", "estimate", "ci_low", "ci_high",
                 "seeds_fusion_ahead", "verdict"]].round(3).to_string())
    return frame.set_index(["single", "metric"])


def _between(trained, a, b, metric):
    """a − b over the same three seeds (the comparison with ``a`` in the fusion role)."""
    from ser_diag.models.comparison import fusion_vs_single_modality, seed_runs, seed_run_name

    corpus, out = trained
    frames = [io.read_predictions(folder, system=seed_run_name(system, seed))
              for split in EVAL_SPLITS for (system, seed), folder in seed_runs(out, split).items()]
    labels = io.read_labels(corpus)
    labels = labels[labels["Split_Set"].isin(EVAL_SPLITS)].reset_index(drop=True)
    row = fusion_vs_single_modality(labels, pd.concat(frames, ignore_index=True), (0, 1, 2), fusion=a,
                                    singles=(b,), metrics=(metric,), resampling=SPEAKERS).iloc[0]
    print(f"{a} - {b}, {metric}: {row['estimate']:+.3f} [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]")
    return row


def test_pipeline_records_three_seeds_of_each_compared_system(trained):
    corpus, out = trained
    summary = json.loads((out / "pipeline.json").read_text())
    assert summary["comparison"]["seeds"] == [0, 1, 2]
    runs = summary["comparison"]["runs"]
    assert sorted(runs) == sorted(SYSTEMS) and all(sorted(r) == ["0", "1", "2"] for r in runs.values())
    assert runs["late_fusion"]["0"]["Test3"] == "predictions_test3/late_fusion"  # seed 0: the main run
    assert runs["late_fusion"]["2"]["Test3"] == "seeds/seed2/predictions_test3/late_fusion"
    seed0 = io.read_predictions(out / runs["late_fusion"]["0"]["Test3"])
    seed2 = io.read_predictions(out / runs["late_fusion"]["2"]["Test3"])
    assert len(seed0) == len(seed2) == 120 and not np.allclose(seed0["EmoAct"], seed2["EmoAct"])


def test_corpus_design_audio_carries_arousal_and_dominance_text_carries_valence(trained, table):
    attributes = table.index.get_level_values("metric") != "macro_f1"
    assert (table.loc[attributes, "n"] == 240).all() and (table.loc[~attributes, "n"] < 240).all()  # X/O dropped
    assert (table["n_speakers"] == 80).all() and (table["n_seeds"] == 3).all()
    assert _between(trained, "audio_egemaps", "text_minilm", "ccc_EmoAct")["ci_low"] > 0.30
    assert _between(trained, "audio_egemaps", "text_minilm", "ccc_EmoDom")["ci_low"] > 0.28
    assert _between(trained, "text_minilm", "audio_egemaps", "ccc_EmoVal")["ci_low"] > 0.08


def test_fusion_gains_what_each_single_modality_lacks(table):
    assert table.loc[("text_minilm", "ccc_EmoAct"), "ci_low"] > 0.28
    assert table.loc[("text_minilm", "ccc_EmoDom"), "ci_low"] > 0.25
    assert table.loc[("audio_egemaps", "ccc_EmoVal"), "ci_low"] > 0.09
    for key in (("text_minilm", "ccc_EmoAct"), ("text_minilm", "ccc_EmoDom"), ("audio_egemaps", "ccc_EmoVal")):
        assert table.loc[key, "verdict"] == "fusion better" and table.loc[key, "seeds_fusion_ahead"] == 3


def test_fusion_on_the_class_beats_text_and_ties_audio(table):
    assert table.loc[("text_minilm", "macro_f1"), "ci_low"] > 0
    # measured over three seed sets: +0.02 to +0.04, every 95 % interval includes 0 -- a tie
    tie = table.loc[("audio_egemaps", "macro_f1")]
    assert tie["estimate"] > 0 and tie["ci_low"] < 0 < tie["ci_high"] and tie["verdict"] == "tie"


def test_no_fusion_gain_where_the_other_modality_adds_nothing(table):
    # text carries the valence; prosody adds none: a tie
    assert table.loc[("text_minilm", "ccc_EmoVal"), "verdict"] == "tie"
    # audio carries arousal and dominance; text adds none: no gain, a small loss at most
    for metric in ("ccc_EmoAct", "ccc_EmoDom"):
        row = table.loc[("audio_egemaps", metric)]
        assert row["estimate"] < 0 and row["ci_high"] < 0.03 and row["ci_low"] > -0.15, metric


def test_summary_md_states_each_comparison_and_its_verdict(trained):
    """The demo's route: the Test3 diagnostics plus the comparison table render into summary.md."""
    from ser_diag.diagnostics import compute_diagnostics
    from ser_diag.figures import summary_markdown
    from ser_diag.models.comparison import TABLE_NAME, compare_pipeline_seeds, verdict
    from ser_diag.names import human_name

    corpus, out = trained
    settings = Resampling(n_boot=200)
    diag = compute_diagnostics(corpus, out / "predictions_test3", split="Test3", resampling=settings)
    frame = compare_pipeline_seeds(corpus, out, split="Test3", resampling=settings)
    diag.tables[TABLE_NAME] = frame
    text = summary_markdown(diag)
    section = text.split("## Does fusion beat the single modalities? (3 seeds, paired, speakers resampled)\n")[1]
    section = section.split("\n## ")[0]
    assert "over 40 speakers (200 resamples)" in section
    assert set(frame["verdict"]) <= {"fusion better", "fusion worse", "tie"}
    for row in frame.to_dict("records"):
        assert row["verdict"] == verdict(row["ci_low"], row["ci_high"])
        assert (f"| {human_name(row['metric'])} | {row['single']} | {row['n']} | {row['fusion_estimate']:.3f} | "
                f"{row['single_estimate']:.3f} | {row['estimate']:+.3f} [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}] | "
                f"{row['seeds_fusion_ahead']}/3 | {row['verdict']} |") in section

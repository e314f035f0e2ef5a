"""The demo speech corpus: exact MSP-Podcast layout, and the planted design recovered from the
files themselves with independent numpy measurements (RMS, autocorrelation pitch, word rate,
a lexicon count)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from scipy.stats import spearmanr

from ser_diag.errors import InputError
from ser_diag.io import is_synthetic, read_detailed_labels, read_labels
from ser_diag.models import corpus
from ser_diag.models.corpus import NEGATIVE_WORDS, POSITIVE_WORDS, design_corpus, make_corpus
from ser_diag.models.speech_synth import Prosody, resample_to, synthesize
from ser_diag.schema import CLASS_CODES, CONSENSUS_COLUMNS, SYNTHETIC_BANNER

REPO = Path(__file__).resolve().parents[2]
N = 60
SEED = 1
TRAIN_DEV_NAME = re.compile(r"^MSP-PODCAST_\d{4}_\d{4}\.wav$")
TEST3_NAME = re.compile(r"^MSP-PODCAST_test3_\d{4}\.wav$")


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("corpus") / "MSP-PODCAST_demo", n=N, seed=SEED)


@pytest.fixture(scope="module")
def features(root) -> pd.DataFrame:
    """Per-file measurements made only from the written wav and txt files."""
    labels = pd.read_csv(root / "Labels" / "labels_consensus.csv")
    rows = []
    for name in labels["FileName"]:
        audio, rate = sf.read(root / "Audios" / name, dtype="int16")
        words = re.findall(r"[a-z']+", (root / "Transcripts" / (name[:-4] + ".txt")).read_text().lower())
        rows.append({"log_rms": _log_rms(audio, rate), "f0": _median_f0(audio, rate),
                     "words_per_s": len(words) / (audio.size / rate),
                     "lexicon": sum(w in POSITIVE_WORDS for w in words) - sum(w in NEGATIVE_WORDS for w in words)})
    return pd.concat([labels, pd.DataFrame(rows)], axis=1)


def _log_rms(audio: np.ndarray, rate: int) -> float:
    """log RMS of the louder half of 25 ms frames (speech level, not pauses)."""
    x = audio.astype(float)
    size = int(0.025 * rate)
    energy = np.sqrt((x[: x.size // size * size].reshape(-1, size) ** 2).mean(axis=1))
    return float(np.log(np.sqrt(np.mean(energy[energy > np.median(energy)] ** 2))))


def _median_f0(audio: np.ndarray, rate: int) -> float:
    """Median autocorrelation pitch (70-400 Hz) over loud 40 ms frames."""
    x = audio.astype(float)
    size, hop = int(0.04 * rate), int(0.01 * rate)
    frames = np.lib.stride_tricks.sliding_window_view(x, size)[::hop]
    energy = np.sqrt((frames ** 2).mean(axis=1))
    voiced = frames[energy > 0.3 * energy.max()]
    voiced = voiced - voiced.mean(axis=1, keepdims=True)
    autocorr = np.fft.irfft(np.abs(np.fft.rfft(voiced, 2 * size)) ** 2)[:, :size]
    low, high = rate // 400, rate // 70
    lag = low + np.argmax(autocorr[:, low:high], axis=1)
    return float(np.median(rate / lag))


def test_layout_and_headers_are_msp_podcast(root):
    assert sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) == ["Audios", "Labels", "SYNTHETIC_DEMO.txt",
                                                                                    "Transcripts"]
    with open(root / "Labels" / "labels_consensus.csv") as fh:
        assert fh.readline().rstrip("\n") == ",".join(CONSENSUS_COLUMNS)
    with open(root / "Labels" / "labels_detailed.csv") as fh:
        assert fh.readline().rstrip("\n") == "FileName,EmoDetail"
    raw = pd.read_csv(root / "Labels" / "labels_consensus.csv", dtype=str)
    assert len(raw) == N and raw["FileName"].is_unique
    assert raw["FileName"].tolist() == sorted(raw["FileName"])
    test3 = raw["Split_Set"] == "Test3"
    assert raw.loc[test3, "FileName"].str.match(TEST3_NAME).all()
    assert raw.loc[~test3, "FileName"].str.match(TRAIN_DEV_NAME).all()
    assert set(raw["Split_Set"]) == {"Train", "Development", "Test3"}
    assert set(raw["Gender"]) == {"Female", "Male"}
    assert raw["SpkrID"].str.fullmatch(r"\d+").all()
    assert set(raw["EmoClass"]) <= set(CLASS_CODES) | {"O", "X"}
    audio = sorted(p.name for p in (root / "Audios").iterdir())
    transcripts = sorted(p.name for p in (root / "Transcripts").iterdir())
    assert audio == sorted(raw["FileName"])
    assert transcripts == sorted(name[:-4] + ".txt" for name in raw["FileName"])
    assert all((root / "Transcripts" / t).read_text().strip() for t in transcripts)


def test_readers_accept_the_corpus_and_splits_are_speaker_independent(root):
    labels = read_labels(root)
    assert labels.attrs["synthetic"] and is_synthetic(root / "Audios")
    assert labels["SpkrID"].dtype == "Int64" and labels["SpkrID"].notna().all()
    assert labels.groupby("SpkrID")["Split_Set"].nunique().max() == 1
    assert labels.groupby("SpkrID")["Gender"].nunique().max() == 1
    assert labels[["EmoAct", "EmoVal", "EmoDom"]].stack().between(1, 7).all()
    assert len(read_labels(root, split="Development")) > 0
    assert (root / "SYNTHETIC_DEMO.txt").read_text().startswith(SYNTHETIC_BANNER)


def test_consensus_is_plurality_and_mean_of_the_annotators(root):
    labels = read_labels(root).set_index("FileName")
    detailed = read_detailed_labels(root)
    counts = detailed.groupby("FileName")["WorkerID"].agg(["count", "nunique"])
    assert counts["count"].between(5, 7).all() and (counts["count"] == counts["nunique"]).all()
    for name, votes in detailed.groupby("FileName"):
        tally = votes["EmoClass"].value_counts()
        expected = tally.index[0] if (tally == tally.max()).sum() == 1 else "X"
        assert labels.at[name, "EmoClass"] == expected, name
        for attribute in ("EmoAct", "EmoVal", "EmoDom"):
            assert labels.at[name, attribute] == pytest.approx(votes[attribute].mean(), abs=5e-4)
    assert detailed[["EmoAct", "EmoVal", "EmoDom"]].stack().isin(range(1, 8)).all()


def test_wavs_are_16k_mono_nonsilent_and_1_to_7_seconds(root):
    """Measured lengths: 1.1-6.1 s in the default 600-file corpus, up to 6.8 s in other draws
    (calm files of slow speakers: habitual rate 175 +- 12 wpm, minus 20 wpm per arousal point)."""
    for path in sorted((root / "Audios").iterdir()):
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        audio, _ = sf.read(path, dtype="int16")
        assert 0.8 <= audio.size / 16000 <= 7.5, path.name
        assert np.abs(audio).max() > 3000 and np.abs(audio).max() < 32767, path.name


def test_same_seed_gives_identical_bytes_whatever_the_worker_count(root, tmp_path):
    again = make_corpus(tmp_path / "again", n=N, seed=SEED, max_workers=1)
    files = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for relative in files:
        assert (root / relative).read_bytes() == (again / relative).read_bytes(), relative
    other = design_corpus(n=N, seed=SEED + 1)[0]
    assert not other["EmoClass"].equals(read_labels(root)["EmoClass"])


def test_prosody_follows_arousal(features):
    """Planted: volume, rate, pitch and pauses follow arousal, so level and word rate do too."""
    assert spearmanr(features["log_rms"], features["EmoAct"]).statistic > 0.4
    assert spearmanr(features["words_per_s"], features["EmoAct"]).statistic > 0.35
    # pitch rises with arousal within a gender (gender dominates pitch across speakers)
    within = features.groupby("Gender")["f0"].transform(lambda f: np.log(f) - np.log(f).mean())
    assert spearmanr(within, features["EmoAct"]).statistic > 0.2
    # and audio level says little about valence
    assert abs(spearmanr(features["log_rms"], features["EmoVal"]).statistic) < 0.35


def test_female_voices_are_higher_pitched(features):
    median = features.groupby("Gender")["f0"].median()
    assert median["Female"] > 1.4 * median["Male"]
    assert 140 < median["Female"] < 320 and 70 < median["Male"] < 150


def test_transcript_lexicon_follows_valence(features):
    assert spearmanr(features["lexicon"], features["EmoVal"]).statistic > 0.35


def test_design_planted_at_scale():
    """Without audio (fast): imbalance, ambiguity, and which modality carries what."""
    labels, _, truth = design_corpus(n=3000, seed=5)
    latent = truth["TrueClass"].value_counts()
    eight = latent.reindex(list(CLASS_CODES))
    assert set(eight.nlargest(3).index) == {"N", "H", "A"}
    assert set(eight.nsmallest(2).index) == {"F", "D"}
    assert 0.05 < (labels["EmoClass"] == "X").mean() < 0.3
    agree = (labels["EmoClass"] == truth["TrueClass"]).mean()
    assert 0.6 < agree < 0.95
    lexicon = truth["transcript"].map(
        lambda t: sum(w in POSITIVE_WORDS for w in t.split()) - sum(w in NEGATIVE_WORDS for w in t.split()))
    assert spearmanr(lexicon, labels["EmoVal"]).statistic > 0.45
    assert abs(spearmanr(lexicon, labels["EmoAct"]).statistic) < 0.15
    assert abs(spearmanr(truth["volume"], labels["EmoVal"]).statistic) < 0.1
    # text confuses the negative classes: their own cue words appear in a minority of transcripts
    for code in ("A", "D", "F", "C"):
        rows = truth.loc[(truth["TrueClass"] == code) & ~truth["neutral_text"], "transcript"]
        own = rows.map(lambda t: any(w in corpus.CLASS_CUES[code] for w in t.split())).mean()
        assert 0.2 < own < 0.65, code
    # ... while arousal separates anger and fear from contempt and disgust
    arousal = labels.groupby("EmoClass")["EmoAct"].mean()
    assert min(arousal["A"], arousal["F"]) > max(arousal["C"], arousal["D"]) + 0.4


def test_synthesize_speaks_and_validates_voice():
    loud = synthesize("hello there", "en-us+f3", Prosody(volume=100), sample_rate=16000)
    quiet = synthesize("hello there", "en-us+f3", Prosody(volume=30), sample_rate=16000)
    assert loud.dtype == np.int16 and 0.3 < loud.size / 16000 < 3
    assert np.abs(loud).max() > 2 * np.abs(quiet).max()
    slow = synthesize("hello there, how are you today", "en+m3", Prosody(rate=100))
    fast = synthesize("hello there, how are you today", "en+m3", Prosody(rate=300))
    assert slow.size > 1.8 * fast.size
    with pytest.raises(ValueError, match="unknown espeak-ng voice"):
        synthesize("hello", "no-such-voice")
    assert resample_to(np.ones(22050, dtype=np.int16) * 1000, 22050, 16000).size == 16000


def test_small_n_is_refused():
    with pytest.raises(InputError, match="at least 10"):
        design_corpus(n=5)


@pytest.mark.slow
def test_cli_make_corpus(tmp_path):
    out = tmp_path / "cli_corpus"
    done = subprocess.run([sys.executable, "-m", "ser_diag", "make-corpus", "--out", str(out), "--n", "12",
                           "--seed", "2"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(list((out / "Audios").glob("*.wav"))) == 12
    in_process = make_corpus(tmp_path / "api_corpus", n=12, seed=2)
    for relative in ("Labels/labels_consensus.csv", "Labels/labels_detailed.csv"):
        assert (out / relative).read_bytes() == (in_process / relative).read_bytes()
    assert sorted(p.read_bytes() for p in (out / "Audios").iterdir()) == \
        sorted(p.read_bytes() for p in (in_process / "Audios").iterdir())
    refused = subprocess.run([sys.executable, "-m", "ser_diag", "make-corpus", "--out", str(tmp_path / "x"),
                              "--n", "3"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert not (tmp_path / "x").exists()


def test_default_corpus_has_40_speakers_per_evaluation_split_with_varied_voices():
    """Issue 13: speaker-level statements need speakers; the default 600-file corpus has 200
    (three files each), 40 in Development and in Test3, half of each gender, mostly distinct
    espeak-ng voices."""
    labels, _, truth = design_corpus(n=600, seed=0)
    per_split = labels.groupby("Split_Set")["SpkrID"].nunique()
    assert per_split["Development"] == per_split["Test3"] == 40 and per_split["Train"] == 120
    assert (labels.groupby("SpkrID").size() == 3).all()
    assert labels.groupby("SpkrID")["Split_Set"].nunique().max() == 1
    assert truth.groupby("SpkrID")["voice"].nunique().max() == 1
    for split in ("Development", "Test3"):
        part = truth[truth["Split_Set"] == split]
        assert part.groupby("Gender")["SpkrID"].nunique().to_dict() == {"Female": 20, "Male": 20}
        assert part["voice"].nunique() >= 20, split
    # every speaker has a prosodic baseline: with the planted arousal/dominance terms removed
    # (prosody_for), speaker means spread by sd ~ [8, 12, 8, 4.9]; per-file noise alone would
    # leave [1.7, 4.6, 2.9, 2.9] (noise sd / sqrt(3 files))
    a, d = truth["TrueAct"] - 4, truth["TrueDom"] - 4
    residual = pd.DataFrame({"SpkrID": truth["SpkrID"], "pitch": truth["pitch"] - 6 * a,
                             "rate": truth["rate"] - 20 * a - 6 * d, "pitch_range": truth["pitch_range"] - 10 * a,
                             "volume": truth["volume"] - 10 * a - 9 * d})
    spread = residual.groupby("SpkrID").mean().std()
    assert (spread > pd.Series({"pitch": 5, "rate": 9, "pitch_range": 5.5, "volume": 3.8})).all(), spread


def test_speaker_count_is_a_parameter_and_splits_stay_speaker_independent():
    labels, _, truth = design_corpus(n=600, seed=0, n_speakers=100)
    per_split = labels.groupby("Split_Set")["SpkrID"].nunique()
    assert per_split["Development"] == per_split["Test3"] == 20 and per_split["Train"] == 60
    assert labels.groupby("SpkrID").size().between(6, 6).all()
    assert labels.groupby("SpkrID")["Split_Set"].nunique().max() == 1
    assert labels.groupby("Split_Set")["Gender"].nunique().min() == 2
    assert design_corpus(n=240, seed=0)[0]["SpkrID"].nunique() == 80
    with pytest.raises(InputError, match="speakers"):
        design_corpus(n=600, n_speakers=3)

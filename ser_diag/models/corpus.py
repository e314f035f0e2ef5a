"""A small synthetic speech-emotion corpus in the exact MSP-Podcast layout (the demo default).

``make_corpus(out, n=600, seed=0)`` writes::

    out/Audios/MSP-PODCAST_1003_0007.wav ... MSP-PODCAST_test3_0001.wav   16 kHz mono int16
    out/Transcripts/<same stem>.txt
    out/Labels/labels_consensus.csv       (release 1.x header; Test3 labelled, see below)
    out/Labels/labels_detailed.csv        (release 1.x ``FileName,EmoDetail`` layout)
    out/Labels/design_truth.csv           (latent truth per file: class, A/V/D, voice, prosody)
    out/SYNTHETIC_DEMO.txt                (:data:`ser_diag.schema.SYNTHETIC_BANNER`)

Design (planted, so that each modality carries part of the answer and fusion should win):

* **Classes** follow MSP-Podcast's development-set imbalance, tempered:
  ``p_c ∝ count_c ** 0.6`` (N, H, A most frequent; D, F rarest) plus 3 % ``O``; ``X`` arises
  from annotator disagreement.
* **Latent A/V/D** per file: class-conditional normals on 1-7 (:data:`CLASS_AVD`, sd 0.75).
* **Prosody carries arousal and dominance** (:func:`prosody_for`): espeak-ng pitch, pitch
  range, speaking rate and volume rise with arousal, volume and rate with dominance, pauses
  between clauses shrink with arousal; plus a speaker baseline (voice variant, gender, pitch
  offset, habitual pitch range, rate and loudness) and per-file noise.
* **Text carries valence and class cues** (:func:`transcript_for`): a topic clause and 0-2
  evaluative words whose polarity follows valence (``P(positive) = sigmoid(1.5 (V - 4))``).
  Ambiguity is planted: 30 % of emotional files (80 % of neutral ones) are neutrally worded,
  and the negative classes A/D/F/C/S mostly draw from one shared negative lexicon, using their
  own cue words only 35 % of the time (15 % another negative class's cues), so text alone
  confuses them while arousal (anger, fear high; contempt, sadness low) separates them.
* **Annotators**: 5-7 of a pool of 60 workers per file. Each votes the latent class with a
  file-specific probability ``~ Beta(4, 3)``, otherwise a similar class (:data:`CONFUSIONS`)
  or ``Other-...``; scores are ``round(latent + worker bias + N(0, 0.9))`` clipped to 1-7.
  Consensus class = plurality vote (``O`` for any ``Other-*``; ``X`` when the top count ties);
  consensus A/V/D = mean of the annotator scores.
* **Speakers**: ``n // 3`` by default, three files each (600 files: 200 speakers, 40 in each
  evaluation split), every one with its own espeak-ng voice (6 English accents x 5 female or
  8 male variants) and prosodic baseline.
* **Splits** are speaker independent, about 60/20/20 Train/Development/Test3. Unlike the
  challenge release, Test3 labels are included: the corpus is synthetic and nothing is hidden.

Audio is made in fresh worker processes, each synthesising a fixed block of files, so the
same ``(n, seed)`` gives byte-identical files whatever the number of CPUs
(:func:`ser_diag.models.speech_synth.write_utterances_isolated`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from ser_diag.errors import InputError
from ser_diag.io import write_labels_consensus, write_labels_detailed
from ser_diag.outputs import check_writable, staged_output
from ser_diag.models.speech_synth import (
    ENGLISH_ACCENTS,
    FEMALE_VARIANTS,
    MALE_VARIANTS,
    voice_name,
    write_utterances_isolated,
)
from ser_diag.schema import CODE_TO_LONG_NAME, SYNTHETIC_BANNER

SAMPLE_RATE = 16000
#: files per synthesis worker process; fixed so the audio never depends on the CPU count.
BLOCK_SIZE = 100
#: recording noise floor (int16 units; about -64 dBFS).
NOISE_SD = 20.0

#: MSP-Podcast 1.12 development counts; class prior ∝ count ** CLASS_PRIOR_POWER.
MSP_DEV_COUNTS = {"N": 7423, "H": 6344, "A": 5836, "S": 2341, "C": 1459, "U": 987, "D": 542,
                  "F": 326}
CLASS_PRIOR_POWER = 0.6
OTHER_SHARE = 0.03

#: Latent (arousal, valence, dominance) means per class on the 1-7 scale.
CLASS_AVD: dict[str, tuple[float, float, float]] = {
    "N": (4.0, 4.1, 4.1),
    "H": (4.9, 5.7, 4.6),
    "A": (5.7, 2.3, 5.5),
    "S": (2.9, 2.5, 3.1),
    "U": (5.3, 4.5, 4.2),
    "F": (5.3, 2.4, 2.7),
    "D": (4.1, 2.6, 4.7),
    "C": (3.5, 2.8, 5.1),
    "O": (4.2, 4.0, 4.2),
}
AVD_SD = 0.75

#: Where an annotator's vote goes when it is not the latent class.
CONFUSIONS: dict[str, dict[str, float]] = {
    "A": {"C": .30, "D": .25, "N": .15, "F": .10, "U": .10, "S": .05, "O": .05},
    "S": {"N": .40, "F": .15, "C": .10, "D": .10, "A": .10, "O": .15},
    "H": {"N": .45, "U": .35, "O": .20},
    "U": {"H": .40, "N": .30, "F": .15, "A": .15},
    "F": {"S": .30, "A": .25, "U": .20, "N": .15, "D": .10},
    "D": {"C": .35, "A": .30, "N": .20, "S": .15},
    "C": {"N": .35, "D": .30, "A": .25, "S": .10},
    "N": {"H": .30, "S": .20, "C": .15, "A": .10, "U": .10, "O": .15},
    "O": {"N": .40, "H": .20, "S": .20, "A": .20},
}
OTHER_NAMES = ("Other-Frustrated", "Other-Concerned", "Other-Amused", "Other-Confused")
SECONDARY = ("Frustrated", "Annoyed", "Concerned", "Amused", "Disappointed", "Dissapointed",
             "Excited", "Confused", "Depressed", "Interested")

# ---------------------------------------------------------------- lexicons and templates
POSITIVE_SHARED = ("great", "wonderful", "amazing", "fantastic", "lovely", "perfect",
                   "beautiful", "awesome", "brilliant", "delightful")
NEGATIVE_SHARED = ("terrible", "awful", "horrible", "bad", "wrong", "unfair", "nasty",
                   "annoying", "ugly", "hopeless")
CLASS_CUES: dict[str, tuple[str, ...]] = {
    "H": ("happy", "glad", "excited", "thrilled", "cheerful"),
    "U": ("surprising", "unexpected", "astonishing", "incredible", "sudden"),
    "A": ("furious", "outrageous", "unacceptable", "infuriating"),
    "D": ("disgusting", "gross", "revolting", "sickening"),
    "F": ("scary", "frightening", "terrifying", "alarming"),
    "C": ("pathetic", "ridiculous", "laughable", "clueless"),
    "S": ("sad", "depressing", "heartbreaking", "lonely", "miserable"),
}
NEGATIVE_CLASSES = ("A", "D", "F", "C", "S")
#: Valence lexicon of the design (positive and negative evaluative words).
POSITIVE_WORDS: frozenset[str] = frozenset(POSITIVE_SHARED + CLASS_CUES["H"])
NEGATIVE_WORDS: frozenset[str] = frozenset(
    NEGATIVE_SHARED + tuple(w for c in NEGATIVE_CLASSES for w in CLASS_CUES[c]))

TOPICS = (
    "we talked about the schedule for next week",
    "the meeting moved to thursday",
    "I read the report this morning",
    "my brother called me yesterday",
    "they opened a new office downtown",
    "we drove to the coast on sunday",
    "the game was on last night",
    "she sent the email after lunch",
    "the numbers came out today",
    "he told me about the new job",
    "so the episode is about the election",
    "our neighbours painted the house",
    "the train was late again",
    "I saw the movie with my friends",
    "the kids started school this week",
    "they changed the rules for the contest",
)
NEUTRAL_COMMENTS = ("it was the usual", "nothing much to say", "that is how it goes",
                    "we will see next time", "anyway that was it")
EVALUATIONS = ("it was really {w}", "that is so {w}", "honestly it felt {w}",
               "the whole thing was {w}", "I found it {w}", "everyone said it was {w}")
OPENERS = ("well", "you know", "so", "okay", "and")


def class_prior() -> dict[str, float]:
    """Class probabilities: tempered MSP-Podcast development imbalance plus ``O``."""
    weights = {c: n ** CLASS_PRIOR_POWER for c, n in MSP_DEV_COUNTS.items()}
    total = sum(weights.values())
    prior = {c: (1 - OTHER_SHARE) * w / total for c, w in weights.items()}
    prior["O"] = OTHER_SHARE
    return prior


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + np.exp(-x))


def transcript_for(emo_class: str, valence: float, rng: np.random.Generator) -> tuple[list[str], bool]:
    """Clauses of one transcript (joined with ", "), and whether it is neutrally worded.

    Evaluative words: positive with probability ``sigmoid(1.5 (V - 4))``; a positive word is a
    happiness cue for H, otherwise from :data:`POSITIVE_SHARED`; a negative word is the class's
    own cue (35 %), another negative class's cue (15 %) or :data:`NEGATIVE_SHARED` (50 %).
    Surprise adds its own cue word half of the time.
    """
    clauses = [str(rng.choice(TOPICS))]
    if rng.random() < 0.4:
        clauses[0] = f"{rng.choice(OPENERS)} {clauses[0]}"
    neutral_share = 0.8 if emo_class in ("N", "O") else 0.3
    if rng.random() < neutral_share:
        if rng.random() < 0.5:
            clauses.append(str(rng.choice(NEUTRAL_COMMENTS)))
        return clauses, True
    words = []
    for _ in range(1 + int(rng.random() < 0.4)):
        if rng.random() < _sigmoid(1.5 * (valence - 4.0)):
            pool = CLASS_CUES["H"] if emo_class == "H" and rng.random() < 0.5 else POSITIVE_SHARED
        else:
            u = rng.random()
            own = emo_class if emo_class in NEGATIVE_CLASSES else None
            if own is not None and u < 0.35:
                pool = CLASS_CUES[own]
            elif u < 0.50:
                others = [c for c in NEGATIVE_CLASSES if c != own]
                pool = CLASS_CUES[str(rng.choice(others))]
            else:
                pool = NEGATIVE_SHARED
        words.append(str(rng.choice(pool)))
    if emo_class == "U" and rng.random() < 0.5:
        words.insert(0, str(rng.choice(CLASS_CUES["U"])))
    words = list(dict.fromkeys(words))
    clauses.append(str(rng.choice(EVALUATIONS)).format(w=" and ".join(words)))
    return clauses, False


def prosody_for(act: float, dom: float, speaker: dict, rng: np.random.Generator) -> dict:
    """espeak-ng prosody and inter-clause pause of one file from latent arousal/dominance.

    pitch = speaker pitch + 6 (A-4); range = speaker range (50 +- 8) + 10 (A-4); rate = speaker rate
    (175 +- 12) + 20 (A-4) + 6 (D-4) wpm; volume = speaker volume (65 +- 4) + 10 (A-4) + 9 (D-4);
    pause = 0.32 - 0.07 (A-4) s; each plus
    Gaussian noise (clipped to espeak-ng's ranges, volume kept below clipping).
    """
    a, d = act - 4.0, dom - 4.0
    return {
        "pitch": int(np.clip(round(speaker["pitch"] + 6 * a + rng.normal(0, 3)), 0, 100)),
        "pitch_range": int(np.clip(round(speaker["pitch_range"] + 10 * a + rng.normal(0, 5)), 0, 100)),
        "rate": int(np.clip(round(speaker["rate"] + 20 * a + 6 * d + rng.normal(0, 8)), 90, 330)),
        "volume": int(np.clip(round(speaker["volume"] + 10 * a + 9 * d + rng.normal(0, 5)), 20, 110)),
        "pause_s": float(np.clip(0.32 - 0.07 * a + rng.normal(0, 0.04), 0.04, 0.8)),
    }


def default_speakers(n: int) -> int:
    """Default number of speakers of an ``n``-file corpus: ``max(5, n // 3)`` (three files per
    speaker; 40 speakers in each evaluation split at ``n=600``).

    >>> default_speakers(600), default_speakers(240), default_speakers(12)
    (200, 80, 5)
    """
    return max(5, n // 3)


def _speakers(n_speakers: int, rng: np.random.Generator) -> pd.DataFrame:
    """Speaker table: alternating female/male espeak voices (accent x variant) with a pitch
    offset, a habitual pitch range, speaking rate and loudness."""
    rows = []
    for i in range(n_speakers):
        female = i % 2 == 0
        variants = FEMALE_VARIANTS if female else MALE_VARIANTS
        k = i // 2
        rows.append({
            "SpkrID": 101 + 7 * i,
            "Gender": "Female" if female else "Male",
            "voice": voice_name(ENGLISH_ACCENTS[(k // len(variants) + i) % len(ENGLISH_ACCENTS)],
                                variants[k % len(variants)]),
            "pitch": float(np.clip(50 + rng.normal(0, 8), 25, 75)),
            "rate": float(175 + rng.normal(0, 12)),
            "pitch_range": float(np.clip(50 + rng.normal(0, 8), 25, 75)),
            "volume": float(65 + rng.normal(0, 4)),
        })
    speakers = pd.DataFrame(rows)
    pattern = np.array(["Train", "Development", "Train", "Test3", "Train"])
    speakers["Split_Set"] = pattern[np.arange(n_speakers) % len(pattern)]
    return speakers


def _annotate(latent: str, avd: np.ndarray, worker_ids: list[str], worker_bias: np.ndarray,
              rng: np.random.Generator) -> list[dict]:
    """Votes of 5-7 simulated annotators on one file: list of dict rows (release-2.0 columns)."""
    k = int(rng.integers(5, 8))
    chosen = rng.choice(len(worker_ids), size=k, replace=False)
    p_latent = rng.beta(4, 3)
    rows = []
    for w in np.sort(chosen):
        if rng.random() < p_latent:
            code = latent
        else:
            targets = CONFUSIONS[latent]
            code = str(rng.choice(list(targets), p=np.array(list(targets.values())) / sum(targets.values())))
        major = str(rng.choice(OTHER_NAMES)) if code == "O" else CODE_TO_LONG_NAME[code]
        n_second = int(rng.integers(0, 3))
        second = ",".join(rng.choice(SECONDARY, size=n_second, replace=False)) if n_second else ""
        scores = np.clip(np.round(avd + worker_bias[w] + rng.normal(0, 0.9, size=3)), 1, 7)
        rows.append({"WorkerID": worker_ids[w], "EmoClass_Major": major,
                     "EmoClass_Second": second, "code": code,
                     "EmoAct": scores[0], "EmoVal": scores[1], "EmoDom": scores[2]})
    return rows


def plurality(codes: list[str]) -> str:
    """Consensus class: the most frequent vote, ``X`` when the top count is tied.

    >>> plurality(["A", "A", "C", "N", "A"]), plurality(["A", "C", "A", "C", "N"])
    ('A', 'X')
    """
    values, counts = np.unique(np.asarray(codes), return_counts=True)
    top = counts == counts.max()
    return str(values[top][0]) if top.sum() == 1 else "X"


def design_corpus(n: int = 600, seed: int = 0, n_speakers: int | None = None
                  ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The corpus without audio: ``(labels, detailed, truth)`` frames.

    ``labels`` has the consensus columns, ``detailed`` the release-2.0 per-annotator columns,
    ``truth`` the latent design per file (class, A/V/D, voice, prosody, transcript).
    ``n_speakers``: default :func:`default_speakers` (``n // 3``: 200 for ``n=600``); the files
    are spread evenly (every speaker gets ``n // n_speakers`` or one more, in a random order).
    A fifth of the speakers go to Development and a fifth to Test3 (``n=600``: 40 speakers
    per evaluation split, each with its own voice variant, pitch offset, pitch range,
    habitual rate and loudness).
    """
    if n < 10:
        raise InputError("--n", None, f"the corpus needs at least 10 files, got {n}")
    if n_speakers is None:
        n_speakers = default_speakers(n)
    if not 5 <= int(n_speakers) <= n:
        raise InputError("n_speakers", None, f"needs 5 to n={n} speakers (every split one), got {n_speakers}")
    even = np.random.default_rng([seed, 0x5EA]).permutation(np.arange(n) % int(n_speakers))
    rng = np.random.default_rng(seed)
    speakers = _speakers(int(n_speakers), rng).to_dict("records")
    n_workers = 60
    worker_ids = [f"WORKER{101 + 13 * i:05d}" for i in range(n_workers)]
    worker_bias = rng.normal(0, 0.35, size=(n_workers, 3))
    prior = class_prior()
    codes = list(prior)
    p = np.array(list(prior.values()))

    truth_rows, detailed_rows = [], []
    for i in range(n):
        spk = speakers[int(even[i])]
        latent = str(rng.choice(codes, p=p / p.sum()))
        avd = np.clip(np.array(CLASS_AVD[latent]) + rng.normal(0, AVD_SD, size=3), 1, 7)
        clauses, neutral_text = transcript_for(latent, avd[1], rng)
        prosody = prosody_for(avd[0], avd[2], spk, rng)
        votes = _annotate(latent, avd, worker_ids, worker_bias, rng)
        truth_rows.append({
            "index": i, "SpkrID": int(spk["SpkrID"]), "Gender": spk["Gender"],
            "Split_Set": spk["Split_Set"], "voice": spk["voice"], "TrueClass": latent,
            "TrueAct": avd[0], "TrueVal": avd[1], "TrueDom": avd[2],
            "EmoClass": plurality([v["code"] for v in votes]),
            "EmoAct": np.mean([v["EmoAct"] for v in votes]),
            "EmoVal": np.mean([v["EmoVal"] for v in votes]),
            "EmoDom": np.mean([v["EmoDom"] for v in votes]),
            "transcript": ", ".join(clauses), "clauses": clauses, "neutral_text": neutral_text,
            **prosody,
            "lead_s": float(rng.uniform(0.05, 0.25)), "trail_s": float(rng.uniform(0.05, 0.25)),
            "noise_seed": int(rng.integers(2**31 - 1)),
        })
        detailed_rows += [{"index": i, **v} for v in votes]

    truth = pd.DataFrame(truth_rows)
    truth["FileName"] = _file_names(truth)
    detailed = pd.DataFrame(detailed_rows)
    detailed.insert(0, "FileName", truth["FileName"].to_numpy()[detailed["index"].to_numpy()])
    labels = truth[["FileName", "EmoClass", "EmoAct", "EmoVal", "EmoDom", "SpkrID", "Gender",
                    "Split_Set"]].copy()
    labels["SpkrID"] = labels["SpkrID"].astype("Int64")
    order = np.argsort(labels["FileName"].to_numpy(), kind="stable")
    labels = labels.iloc[order].reset_index(drop=True)
    detailed = detailed.sort_values(["FileName", "WorkerID"], kind="stable").reset_index(drop=True)
    detailed = detailed[["FileName", "WorkerID", "EmoClass_Major", "EmoClass_Second", "EmoAct",
                         "EmoVal", "EmoDom"]]
    truth = truth.iloc[order].reset_index(drop=True)
    return labels, detailed, truth


def _file_names(truth: pd.DataFrame) -> list[str]:
    """``MSP-PODCAST_<episode>_<segment>.wav`` for Train/Development, ``MSP-PODCAST_test3_<k>.wav``."""
    names, segment, test_k = [], {}, 0
    for spk, split in zip(truth["SpkrID"], truth["Split_Set"]):
        if split == "Test3":
            test_k += 1
            names.append(f"MSP-PODCAST_test3_{test_k:04d}.wav")
        else:
            segment[spk] = segment.get(spk, 0) + 1
            names.append(f"MSP-PODCAST_{1000 + spk:04d}_{segment[spk]:04d}.wav")
    return names


def make_corpus(out: str | os.PathLike, n: int = 600, seed: int = 0,
                max_workers: int | None = None, n_speakers: int | None = None) -> Path:
    """Write the synthetic corpus (layout and design in the module docstring) to ``out``.

    All-or-nothing (:func:`ser_diag.outputs.staged_output`). ``max_workers`` synthesis
    processes (default: CPU count); the output does not depend on it. ``n_speakers``: see
    :func:`design_corpus`.
    """
    out = Path(out)
    check_writable(out)  # before the synthesis: one line, not a traceback after it
    labels, detailed, truth = design_corpus(n=n, seed=seed, n_speakers=n_speakers)
    with staged_output(out) as stage:
        for sub in ("Audios", "Transcripts", "Labels"):
            (stage / sub).mkdir()
        for name, text in zip(truth["FileName"], truth["transcript"]):
            (stage / "Transcripts" / (name[:-4] + ".txt")).write_text(text + "\n", encoding="utf-8")
        specs = [{"path": str(stage / "Audios" / row.FileName), "clauses": row.clauses,
                  "voice": row.voice, "rate": row.rate, "volume": row.volume, "pitch": row.pitch,
                  "pitch_range": row.pitch_range, "pause_s": row.pause_s, "lead_s": row.lead_s,
                  "trail_s": row.trail_s, "noise_seed": row.noise_seed, "noise_sd": NOISE_SD}
                 for row in truth.itertuples()]
        write_utterances_isolated(specs, sample_rate=SAMPLE_RATE, block_size=BLOCK_SIZE,
                                  max_workers=max_workers)
        truth["duration_s"] = [sf.info(spec["path"]).duration for spec in specs]
        write_labels_consensus(labels, stage / "Labels" / "labels_consensus.csv")
        write_labels_detailed(detailed, stage / "Labels" / "labels_detailed.csv", layout="1.x")
        truth_cols = ["FileName", "TrueClass", "TrueAct", "TrueVal", "TrueDom", "voice", "pitch",
                      "pitch_range", "rate", "volume", "pause_s", "neutral_text", "duration_s"]
        truth[truth_cols].to_csv(stage / "Labels" / "design_truth.csv", index=False,
                                 float_format="%.4f", lineterminator="\n")
        (stage / "SYNTHETIC_DEMO.txt").write_text(
            SYNTHETIC_BANNER + "\n\nMade by `python -m ser_diag make-corpus` "
            f"(n={n}, seed={seed}). Speech is espeak-ng formant synthesis; labels come from "
            "simulated annotators. Test3 labels are included because nothing here is hidden.\n",
            encoding="utf-8")
    return out

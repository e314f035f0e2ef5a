"""ser-diag: where, and for whom, does a speech-emotion model fail?

The command line parses, calls the library and maps every documented failure to one line:
bad input (:class:`~ser_diag.errors.InputError`) → ``error: ...`` and exit 2; Ctrl-C → exit 130;
a closed pipe (``| head``) → a quiet end. Long steps report on stderr (``--quiet`` silences them).
Each subcommand imports its module lazily, so ``evaluate`` never pays for torch.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from pathlib import Path

from ser_diag.errors import InputError
from ser_diag.schema import SPLITS

#: The split scored on MSP-Podcast when none is given (other corpora: every file).
DEFAULT_MSP_SPLIT = "Development"

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141
#: One bootstrap default for every command that draws intervals.
DEFAULT_BOOTSTRAP = 1000

log = logging.getLogger("ser_diag")


# ----------------------------------------------------------------------------- option types

def _whole_number(minimum: int, below: str):
    """An argparse type: an integer >= ``minimum``; ``below`` says why smaller ones are refused."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} {below}")
        return value
    return parse


#: ``--bootstrap``: 0 or more resamples (0: no intervals).
_bootstrap_count = _whole_number(0, "is negative; use 0 for no intervals")
_positive_int = _whole_number(1, "must be at least 1")


def _level(text: str) -> float:
    """``--level``: a confidence level strictly between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"{value} is not between 0 and 1 (e.g. 0.95)")
    return value


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown next to every option; descriptions keep their line breaks."""


class _Parser(argparse.ArgumentParser):
    """argparse with usage errors on one line (and exit 2, argparse's convention)."""

    def error(self, message: str):
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# ----------------------------------------------------------------------------- parser

def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--labels", required=True, type=Path,
                   help="MSP-Podcast root (with Labels/) or Labels/labels_consensus.csv; a corpus' labels CSV "
                        "(with --vocabulary); or an audformat database (the folder holding db.yaml)")
    p.add_argument("--predictions", required=True, type=Path,
                   help="one system's prediction file, or a directory with one sub-folder per "
                        "system (categorical.csv and/or attributes.csv)")
    _add_split_arg(p)
    p.add_argument("--intersection", action="store_true",
                   help="score only files present in both labels and predictions "
                        "(default: every labelled file of the split must be predicted)")
    _add_corpus_args(p)


def _add_split_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--split", default=None, metavar="SPLIT",
                   help="the split to score, one of the corpus' splits (MSP-Podcast: Train, Development, "
                        "Test1, Test2, Test3; an audformat database: its split ids); default: Development "
                        "for MSP-Podcast, every file for other corpora")


def _add_corpus_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--vocabulary", default=None, metavar="NAME|FILE",
                   help="the corpus' vocabulary: a preset (msp-podcast, iemocap, crema-d, emodb, msp-improv) "
                        "or a JSON/YAML vocabulary file; default: MSP-Podcast, or built from an audformat "
                        "database's schemes")
    p.add_argument("--target", default=None, metavar="SCHEME",
                   help="the categorical truth: an audformat scheme (default: emotion) or a labels CSV column")
    p.add_argument("--attributes", nargs="+", default=None, metavar="A",
                   help="the attributes scored (audformat schemes or vocabulary attributes; default: "
                        "arousal/valence/dominance schemes, or the vocabulary's)")


def _add_resampling_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bootstrap", type=_bootstrap_count, default=DEFAULT_BOOTSTRAP, metavar="B",
                   help="bootstrap resamples for confidence intervals and permutations for "
                        "tests (0: none)")
    unit = p.add_mutually_exclusive_group()
    unit.add_argument("--unit", choices=("auto", "speaker", "utterance"), default="auto",
                      help="resampling unit; auto: speakers when the labels carry speaker IDs "
                           "(utterances of one speaker are not independent), else utterances")
    unit.add_argument("--by-utterance", dest="unit", action="store_const", const="utterance",
                      help="shorthand for --unit utterance")
    unit.add_argument("--by-speaker", dest="unit", action="store_const", const="speaker",
                      help="shorthand for --unit speaker")
    p.add_argument("--level", type=_level, default=0.95, help="confidence level of the intervals")
    p.add_argument("--seed", type=int, default=0, help="seed of the resamples")
    p.add_argument("--ddof", type=int, default=0, choices=(0, 1),
                   help="CCC variance denominator n - ddof (0: as the challenge scored it)")


def _add_quiet(p: argparse.ArgumentParser) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ser-diag", formatter_class=_Formatter,
        description="Where, and for whom, does a speech-emotion-recognition model fail?\n"
                    "Diagnostics for the Interspeech 2025 MSP-Podcast challenge formats.",
        epilog="Also runnable as `python -m ser_diag`. Exit status: 0 done, 2 bad input or "
               "unusable output folder, 130 interrupted.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text, formatter_class=_Formatter)
        _add_quiet(p)
        return p

    p = command("demo", "the main job on the embedded (synthetic) default")
    p.add_argument("--out", type=Path, default=Path("data/demo"),
                   help="folder for the simulated data, corpus, models and reports")
    p.add_argument("--figures", type=Path, default=Path("figures"), help="folder for the figure sets")
    p.add_argument("--quick", action="store_true", help="small sizes, for tests")
    p.add_argument("--skip-models", action="store_true",
                   help="only the simulated challenge, no speech corpus or training")
    p.add_argument("--reference-predictions", type=Path, default=Path("data/reference_predictions"),
                   help="committed predictions of the reference systems: figures/reference_models diagnoses "
                        "them (the same on every machine) and the freshly trained ones are compared with them; "
                        "written from the fresh run when missing")
    p.add_argument("--refresh-reference-predictions", action="store_true",
                   help="overwrite the committed reference predictions with this run's fresh ones")

    p = command("simulate", "write a seeded synthetic challenge in the official layouts, or (--corpus) a "
                            "synthetic corpus in another vocabulary as an audformat database and as CSVs")
    p.add_argument("--out", type=Path, required=True, help="folder to write (all or nothing)")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--systems", type=_positive_int, default=None,
                   help="number of simulated systems (default: 8 for the challenge, 3 for --corpus)")
    p.add_argument("--split", default=None, choices=("Development", "Test3"),
                   help="split of the challenge to simulate (sets the class mix and file names; default: Development)")
    p.add_argument("--n", type=_positive_int, default=None,
                   help="number of files of the challenge (default: the split's size)")
    p.add_argument("--corpus", default=None, choices=("iemocap", "crema-d", "emodb", "msp-podcast"),
                   help="write a synthetic corpus with this preset vocabulary instead of the challenge: "
                        "OUT/audformat (db.yaml), OUT/audformat_predictions, OUT/csv (labels.csv, vocabulary.json, "
                        "predictions)")
    p.add_argument("--speakers", type=_whole_number(2, "is below 2 speakers"), default=None, metavar="N",
                   help="speakers of the --corpus (default: the corpus' own count: IEMOCAP 10, EmoDB 10, "
                        "CREMA-D 91, MSP-Podcast 50)")

    p = command("evaluate", "challenge metrics with bootstrap confidence intervals")
    _add_data_args(p)
    _add_resampling_args(p)
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")

    p = command("validate", "check a submission file before sending it")
    p.add_argument("--predictions", required=True, type=Path, help="the prediction file (or a system's folder) to check")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--labels", type=Path, help="MSP-Podcast root or labels_consensus.csv; a corpus' labels CSV "
                                               "(with --vocabulary); or an audformat database folder")
    g.add_argument("--file-list", type=Path, help="text file with one expected FileName per line")
    _add_split_arg(p)
    p.add_argument("--strict", action="store_true",
                   help="treat warnings (e.g. attribute predictions outside the scale) as errors")
    _add_corpus_args(p)

    for name, help_text in (("figures", "the paper figure set (PDF + PNG), tables/*.csv and summary.md"),
                            ("report", "a self-contained HTML report")):
        p = command(name, help_text)
        _add_data_args(p)
        _add_resampling_args(p)
        p.add_argument("--baseline", default=None, metavar="SYSTEM",
                       help="system drawn as the baseline in the top-K fusion figure "
                            "(default: a system whose name contains 'baseline', else none)")
        p.add_argument("--out", type=Path, required=True, help="folder to write (all or nothing)")
        p.add_argument("--workers", type=_positive_int, default=None, metavar="N",
                       help="processes for the analyses and figures, this one included (default: the cores, "
                            "at most 4); any N gives the same results")

    p = command("make-corpus", "synthetic speech corpus in the MSP-Podcast layout")
    p.add_argument("--out", type=Path, required=True, help="folder to write (all or nothing)")
    p.add_argument("--n", type=_positive_int, default=600, help="number of utterances")
    p.add_argument("--n-speakers", type=_positive_int, default=None,
                   help="number of speakers (default: one per three utterances, at least 5)")
    p.add_argument("--seed", type=int, default=0, help="random seed")

    p = command("train", "train a reference model from a JSON config")
    p.add_argument("--config", type=Path, required=True,
                   help="JSON config (see ser_diag/models/configs/); with a \"folds\" key, one model per "
                        "held-out session, pooled (leave-one-session-out)")

    p = command("ensemble", "train K reference systems and write their predictions")
    p.add_argument("--config", type=Path, required=True, help="JSON ensemble config")
    p.add_argument("--k", type=_positive_int, default=None, help="keep only the first K systems")
    return parser


# ----------------------------------------------------------------------------- running

def _resampling(args: argparse.Namespace):
    from ser_diag.resampling import Resampling
    return Resampling(n_boot=args.bootstrap, level=args.level, unit=args.unit, seed=args.seed,
                      ddof=args.ddof)


def _wrote(out: Path) -> None:
    """The closing line: how many files the command published (not counting ser_diag's marker)."""
    count = sum(1 for p in Path(out).rglob("*") if p.is_file() and not p.name.startswith("."))
    print(f"wrote {count} files to {out}", file=sys.stderr)


def _vocabulary(text: str | None):
    """``--vocabulary``: a preset's name or a JSON/YAML file (None: not given)."""
    if text is None:
        return None
    from ser_diag.vocabulary import PRESETS, Vocabulary, preset

    try:
        return preset(text)
    except ValueError:
        pass
    if Path(text).is_file():
        return Vocabulary.from_file(text)   # a bad file: VocabularyFileError, one line
    raise InputError(text, None, f"--vocabulary: neither a preset ({', '.join(PRESETS)}) nor a vocabulary file")


def _corpus(args: argparse.Namespace, labels: Path | None) -> tuple[str | None, dict]:
    """The split to score and the corpus keywords (``vocabulary``, ``target``, ``attributes``:
    only those given) of a data command. MSP-Podcast (no vocabulary, or its preset, and no
    audformat database): the split defaults to Development and must be one of its splits;
    other corpora: every file unless ``--split`` names one of theirs (checked when read)."""
    from ser_diag.io import is_audformat
    from ser_diag.vocabulary import MSP_PODCAST

    vocabulary = _vocabulary(args.vocabulary)
    corpus = {key: value for key, value in (("vocabulary", vocabulary), ("target", args.target),
                                            ("attributes", args.attributes)) if value is not None}
    msp = (vocabulary is None or vocabulary == MSP_PODCAST) and not (labels is not None and is_audformat(labels))
    if not msp:
        return args.split, corpus
    where = labels if labels is not None else "--split"
    for option in ("target", "attributes"):
        if option in corpus:
            raise InputError(where, None, f"--{option} is for an audformat database or a corpus vocabulary "
                             "(--vocabulary); MSP-Podcast's labels have fixed columns")
    corpus.pop("vocabulary", None)
    split = args.split if args.split is not None else DEFAULT_MSP_SPLIT
    if split not in SPLITS:
        raise InputError(where, "Split_Set", f"--split {split!r} is not an MSP-Podcast split; "
                         f"choose one of {', '.join(SPLITS)}")
    return split, corpus


def _simulate(args: argparse.Namespace) -> None:
    if args.corpus is None:
        if args.speakers is not None:
            raise InputError("--speakers", None, "only with --corpus (the challenge's speakers follow --n)")
        from ser_diag.simulate import simulate_challenge
        simulate_challenge(args.out, seed=args.seed, n_systems=args.systems if args.systems is not None else 8,
                           split=args.split if args.split is not None else "Development", n=args.n)
    else:
        for option in ("split", "n"):
            if getattr(args, option) is not None:
                raise InputError(f"--{option}", None, "only for the challenge, not with --corpus "
                                 "(a corpus' size is --speakers)")
        from ser_diag.simulate import simulate_corpus
        simulate_corpus(args.out, corpus=args.corpus, seed=args.seed, n_speakers=args.speakers,
                        n_systems=args.systems if args.systems is not None else 3)
    _wrote(args.out)


def _json_object(path: Path) -> dict:
    """A JSON config file's object (an unreadable or non-object file: one InputError line)."""
    import json

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(path, None, f"cannot read the config ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(path, None, f"not a JSON config ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(path, None, "a config is a JSON object")
    return data


def _run(args: argparse.Namespace) -> int:
    cmd = args.command
    if cmd == "demo":
        from ser_diag.demo import run_demo
        run_demo(out=args.out, figures_dir=args.figures, quick=args.quick,
                 skip_models=args.skip_models, reference_predictions=args.reference_predictions,
                 refresh_reference_predictions=args.refresh_reference_predictions)
    elif cmd == "simulate":
        _simulate(args)
    elif cmd == "evaluate":
        split, corpus = _corpus(args, args.labels)
        from ser_diag.evaluate import evaluate_paths, format_text
        result = evaluate_paths(args.labels, args.predictions, split=split,
                                resampling=_resampling(args), intersection=args.intersection, **corpus)
        from ser_diag.precision import dumps_json
        print(dumps_json(result, indent=2) if args.json else format_text(result, corpus.get("vocabulary")))
    elif cmd == "validate":
        split, corpus = _corpus(args, args.labels)
        from ser_diag.io import validate_submission
        print(validate_submission(args.predictions, labels=args.labels, file_list=args.file_list,
                                  split=split, strict=args.strict, **corpus))
    elif cmd in ("figures", "report"):
        split, corpus = _corpus(args, args.labels)
        if cmd == "figures":
            from ser_diag.figures import write_paper_figures as write
        else:
            from ser_diag.report import write_report as write
        from ser_diag.parallel import worker_limit
        with worker_limit(args.workers):
            write(args.labels, args.predictions, args.out, split=split, resampling=_resampling(args),
                  intersection=args.intersection, baseline=args.baseline, **corpus)
        _wrote(args.out)
    elif cmd == "make-corpus":
        from ser_diag.models.corpus import make_corpus
        make_corpus(args.out, n=args.n, seed=args.seed, n_speakers=args.n_speakers)
        _wrote(args.out)
    elif cmd == "train":
        if "folds" in _json_object(args.config):          # leave-one-session-out, pooled
            from ser_diag.models.folds import train_folds_from_config
            train_folds_from_config(args.config)
        else:
            from ser_diag.models.train import train_from_config
            train_from_config(args.config)
    elif cmd == "ensemble":
        from ser_diag.models.ensemble import ensemble_from_config
        ensemble_from_config(args.config, k=args.k)
    return 0


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one line on stderr, never a source excerpt."""
    text = " ".join(str(message).split())
    print(f"warning: {text}", file=sys.stderr)


def _configure_output(quiet: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("ser-diag: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    log.propagate = False
    warnings.showwarning = _show_warning


def _quiet_stdout() -> None:
    """After a closed pipe: point stdout at /dev/null so the interpreter's final flush is silent."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_BAD_INPUT
    _configure_output(getattr(args, "quiet", False))
    try:
        status = _run(args)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's final flush
        return status
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_BROKEN_PIPE

"""Command line: parse, call the library, map :class:`InputError` to one line and exit 2.

Each subcommand imports its module lazily, so ``evaluate`` never pays for torch.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ser_diag.errors import InputError
from ser_diag.schema import SPLITS

EXIT_BAD_INPUT = 2


def _add_data_args(p: argparse.ArgumentParser, split_default: str | None = "Development") -> None:
    p.add_argument("--labels", required=True, type=Path,
                   help="MSP-Podcast root or Labels/labels_consensus.csv")
    p.add_argument("--predictions", required=True, type=Path,
                   help="one system's prediction file(s) or a directory of systems")
    p.add_argument("--split", default=split_default, choices=SPLITS)
    p.add_argument("--intersection", action="store_true",
                   help="score only files present in both labels and predictions")


def _add_bootstrap_args(p: argparse.ArgumentParser, n_boot: int) -> None:
    p.add_argument("--bootstrap", type=int, default=n_boot, metavar="B",
                   help=f"bootstrap resamples for confidence intervals (default {n_boot}; 0: none)")
    p.add_argument("--by-speaker", action="store_true",
                   help="resample speakers (cluster bootstrap) instead of utterances")
    p.add_argument("--level", type=float, default=0.95, help="confidence level")
    p.add_argument("--seed", type=int, default=0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ser_diag", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="the main job on the embedded (synthetic) default")
    p.add_argument("--out", type=Path, default=Path("data/demo"))
    p.add_argument("--figures", type=Path, default=Path("figures"))
    p.add_argument("--quick", action="store_true", help="small sizes, for tests")
    p.add_argument("--skip-models", action="store_true",
                   help="only the simulated challenge, no corpus/training")

    p = sub.add_parser("simulate", help="write a seeded synthetic challenge in the official layouts")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--systems", type=int, default=8)
    p.add_argument("--split", default="Development", choices=("Development", "Test3"))
    p.add_argument("--n", type=int, default=None, help="number of files (default: by split)")

    p = sub.add_parser("evaluate", help="metrics with bootstrap confidence intervals")
    _add_data_args(p)
    _add_bootstrap_args(p, n_boot=0)
    p.add_argument("--ddof", type=int, default=0, choices=(0, 1),
                   help="CCC variance denominator N-ddof (challenge: 0)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")

    p = sub.add_parser("validate", help="check a submission file before sending it")
    p.add_argument("--predictions", required=True, type=Path)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--labels", type=Path)
    g.add_argument("--file-list", type=Path, help="text file with one expected FileName per line")
    p.add_argument("--split", default="Development", choices=SPLITS)

    p = sub.add_parser("figures", help="the paper figure set, tables and summary.md")
    _add_data_args(p)
    _add_bootstrap_args(p, n_boot=1000)
    p.add_argument("--out", type=Path, required=True)

    p = sub.add_parser("report", help="self-contained HTML report")
    _add_data_args(p)
    _add_bootstrap_args(p, n_boot=1000)
    p.add_argument("--out", type=Path, required=True)

    p = sub.add_parser("make-corpus", help="synthetic speech corpus in the MSP-Podcast layout")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--n", type=int, default=600)
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("train", help="train a reference model from a JSON config")
    p.add_argument("--config", type=Path, required=True)

    p = sub.add_parser("ensemble", help="train K reference systems and write their predictions")
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--k", type=int, default=None)
    return parser


def _run(args: argparse.Namespace) -> int:
    cmd = args.command
    if cmd == "demo":
        from ser_diag.demo import run_demo
        run_demo(out=args.out, figures_dir=args.figures, quick=args.quick,
                 skip_models=args.skip_models)
    elif cmd == "simulate":
        from ser_diag.simulate import simulate_challenge
        simulate_challenge(args.out, seed=args.seed, n_systems=args.systems,
                           split=args.split, n=args.n)
        print(f"wrote synthetic challenge to {args.out}", file=sys.stderr)
    elif cmd == "evaluate":
        from ser_diag.evaluate import evaluate_paths, format_text
        result = evaluate_paths(args.labels, args.predictions, split=args.split,
                                n_boot=args.bootstrap, by_speaker=args.by_speaker,
                                level=args.level, seed=args.seed, ddof=args.ddof,
                                intersection=args.intersection)
        print(json.dumps(result, indent=2) if args.json else format_text(result))
    elif cmd == "validate":
        from ser_diag.io import validate_submission
        print(validate_submission(args.predictions, labels=args.labels,
                                  file_list=args.file_list, split=args.split))
    elif cmd == "figures":
        from ser_diag.figures import write_paper_figures
        write_paper_figures(args.labels, args.predictions, args.out, split=args.split,
                            n_boot=args.bootstrap, by_speaker=args.by_speaker,
                            level=args.level, seed=args.seed, intersection=args.intersection)
    elif cmd == "report":
        from ser_diag.report import write_report
        write_report(args.labels, args.predictions, args.out, split=args.split,
                     n_boot=args.bootstrap, by_speaker=args.by_speaker, level=args.level,
                     seed=args.seed, intersection=args.intersection)
    elif cmd == "make-corpus":
        from ser_diag.models.corpus import make_corpus
        make_corpus(args.out, n=args.n, seed=args.seed)
    elif cmd == "train":
        from ser_diag.models.train import train_from_config
        train_from_config(args.config)
    elif cmd == "ensemble":
        from ser_diag.models.ensemble import ensemble_from_config
        ensemble_from_config(args.config, k=args.k)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT

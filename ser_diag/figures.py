"""Write the paper figure set, the table behind every figure and a ``summary.md``.

``python -m ser_diag figures --labels PATH --predictions DIR --out DIR``: every figure as PDF and
PNG, named after the paper figure it mirrors (``fig3a_confusion_categorical``,
``fig3b_binned_arousal`` ... ``fig4_topk_fusion``), the tidy tables as ``tables/<name>.csv``
and the headline numbers with confidence intervals in ``summary.md``. Inputs are validated
before anything is written, and the outputs appear all at once (staged), or not at all.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt

import logging

from ser_diag.diagnostics import Diagnostics, compute_diagnostics, figure_builders, rows_where
from ser_diag.resampling import Resampling
from ser_diag.names import format_p, human_name
from ser_diag.outputs import atomic_write_text, staged_output, table_csv
from ser_diag.parallel import fork_map
from ser_diag.precision import format_number as _f
from ser_diag.plots._style import save_figure
from ser_diag.plots.saving import save_figures
from ser_diag.schema import SYNTHETIC_BANNER
from ser_diag.vocabulary import MSP_PODCAST, Vocabulary

log = logging.getLogger(__name__)


def _interval(row) -> str:
    if row is None:
        return "n/a"
    low, high = row.get("ci_low"), row.get("ci_high")
    if low is None or high is None or low != low:
        return _f(row['estimate'], ".3f")
    return f"{_f(row['estimate'], '.3f')} [{_f(low, '.3f')}, {_f(high, '.3f')}]"


def _lookup(frame, **equal):
    rows = rows_where(frame, **equal)
    return None if rows.empty else rows.iloc[0].to_dict()


def summary_markdown(diag: Diagnostics) -> str:
    """Headline numbers with CIs, as Markdown: scores per system, the worst confusions,
    shrinkage, gender gaps and the fusion gain, by the corpus' class and attribute names
    (a corpus other than MSP-Podcast is named on the first lines; sections it cannot have are
    left out, each with its line under Notes)."""
    s, t, voc = diag.settings, diag.tables, diag.vocabulary
    displays = voc.attribute_displays
    lines = ["# ser_diag summary", ""]
    if diag.synthetic:
        lines += [f"> **{SYNTHETIC_BANNER}**", ""]
    if voc != MSP_PODCAST:
        lines += [f"- corpus: {voc.name} ({_classes_line(voc)}; {_attributes_line(voc)})"]
    lines += [f"- split: {s['split'] or 'all files'}; CCC: {s['ccc_convention']}",
              f"- intervals: {_f(s['level'], '.0%')} percentile bootstrap, {s['n_boot']} resamples of "
              f"{s['unit']}s (ci_low, ci_high)", ""]
    metrics = t["metrics"]
    headline = [("macro_f1", "macro-F1")] + [(f"ccc_{a}", f"CCC {displays[a]}") for a in voc.attribute_names] \
        + [("ccc_mean", "mean CCC")]
    headline = [(m, h) for m, h in headline if (metrics["metric"] == m).any()]
    lines += ["## Scores", "", "| system | " + " | ".join(h for _, h in headline) + " |",
              "|---|" + "---|" * len(headline)]
    for system in diag.systems:
        cells = [_interval(_lookup(metrics, system=system, metric=m)) for m, _ in headline]
        lines.append(f"| {system} | " + " | ".join(cells) + " |")
    lines.append("")
    if len(t.get("fusion_vs_single_modality", ())):  # issue 13: ser_diag.models.comparison over seeds
        fvs = t["fusion_vs_single_modality"]
        first = fvs.iloc[0]
        lines += [f"## Does fusion beat the single modalities? ({first['n_seeds']} seeds, paired, speakers resampled)",
                  "", f"Difference = {first['fusion']} − single modality, averaged over {first['n_seeds']} training "
                  f"seeds, both scored on the same files; {_f(first['level'], '.0%')} percentile bootstrap over "
                  f"{first['n_speakers']} speakers ({first['n_boot']} resamples); \"tie\" when the interval "
                  "includes 0.", "", "| metric | fusion vs | files | fusion | single | difference [CI] | seeds with "
                  "fusion ahead | verdict |", "|---|---|---|---|---|---|---|---|"]
        for row in fvs.to_dict("records"):
            lines.append(f"| {human_name(row['metric'], voc)} | {row['single']} | {row['n']} | {_f(row['fusion_estimate'], '.3f')} | "
                         f"{_f(row['single_estimate'], '.3f')} | {_f(row['estimate'], '+.3f')} "
                         f"[{_f(row['ci_low'], '+.3f')}, {_f(row['ci_high'], '+.3f')}] | {row['seeds_fusion_ahead']}/{row['n_seeds']} | {row['verdict']} |")
        lines.append("")
    if "unit_comparison" in t and len(t["unit_comparison"]):  # issue 9: why speakers are the unit
        comparison = t["unit_comparison"]
        comparison = comparison[comparison["metric"].isin(["macro_f1", "ccc_mean"])]
        lines += ["## Utterance vs speaker resampling (CI widths)", "",
                  "Utterances of one speaker share errors, so resampling utterances understates the "
                  "uncertainty; ratio = speaker width / utterance width.", "",
                  "| system | metric | utterance CI | speaker CI | width ratio |", "|---|---|---|---|---|"]
        for row in comparison.to_dict("records"):
            lines.append(f"| {row['system']} | {human_name(row['metric'], voc)} | "
                         f"[{_f(row['ci_low_utterance'], '.3f')}, {_f(row['ci_high_utterance'], '.3f')}] | "
                         f"[{_f(row['ci_low_speaker'], '.3f')}, {_f(row['ci_high_speaker'], '.3f')}] | "
                         f"{_f(row['width_ratio'], '.2f')} |")
        lines.append("")
    if s.get("notes"):
        lines += ["## Notes", ""] + [f"- {note}" for note in s["notes"]] + [""]
    if "minority_destinations" in t:
        focus = s["focus"]["categorical"]
        top = t["minority_destinations"]
        top = top[top["minority"] & (top["rank"] == 1)]
    if "minority_destinations" in t and (len(top) or voc == MSP_PODCAST):   # a corpus without minority classes: none
        lines += [f"## Where minority classes go ({focus})", ""]
        for row in top.to_dict("records"):
            lines.append(f"- {voc.class_names.get(row['true'], row['true'])} → "
                         f"{voc.class_names.get(row['pred'], row['pred'])}: "
                         f"{_interval(dict(row, estimate=row['share']))} of its files")
        lines.append("")
    if "shrinkage" in t:
        focus = s["focus"]["attributes"]
        lines += [f"## Regression to the mean ({focus})", "",
                  "| attribute | slope E[pred given true] | SD ratio (pred / true) | CCC |", "|---|---|---|---|"]
        for attr in voc.attribute_names:
            cells = [_interval(_lookup(t["shrinkage"], system=focus, attribute=attr, metric=m))
                     for m in ("slope", "variance_ratio", "ccc")]
            lines.append(f"| {displays[attr]} | " + " | ".join(cells) + " |")
        lines.append("")
    if "gender_gaps" in t:
        lines += ["## Gender gap (female − male; p: speaker-level permutation test)", ""]
        for task, focus in s["focus"].items():
            gaps = t["gender_gaps"]
            for metric in ("macro_f1", "ccc_mean"):
                row = _lookup(gaps, task=task, system=focus, metric=metric)
                if row:
                    lines.append(f"- {focus}, {human_name(metric, voc)}: "
                                 f"{_interval(dict(row, estimate=row['gap']))}, "
                                 f"{format_p(row['p_value'], prefix=True)}")
        lines.append("")
    if len(t.get("leaderboard_ranks", ())):
        lines += ["## Leaderboard with honest ranks", "",
                  "Rank intervals and P(best) come from the same paired resamples as the CIs; a tier "
                  "holds the systems not significantly worse (Holm) than its best.", ""]
        board = t["leaderboard_ranks"]
        ceiling = t.get("human_ceiling")
        for metric in ("macro_f1", "ccc_mean"):
            rows = board[board["metric"] == metric].sort_values("rank")
            if rows.empty:
                continue
            lines += [f"| {human_name(metric, voc)} | estimate [CI] | rank [interval] | P(best) | tier |",
                      "|---|---|---|---|---|"]
            for row in rows.to_dict("records"):
                lines.append(f"| {row['system']} | {_interval(row)} | {row['rank']} "
                             f"[{row['rank_ci_low']}, {row['rank_ci_high']}] | {_f(row['p_best'], '.2f')} | {row['tier']} |")
            human = None if ceiling is None else _lookup(ceiling, metric=metric)
            if human:
                lines.append(f"| *human (leave one annotator out)* | {_interval(human)} | | | |")
            lines.append("")
    if "fusion_curve" in t:
        curve = t["fusion_curve"]
        lines += ["## Top-K fusion (Fig. 4; ranked on a selection part, scored on the rest)", ""]
        for (task, metric, method), part in curve[curve["method"] != "baseline"].groupby(
                ["task", "metric", "method"], sort=False):
            best = part.loc[part["estimate"].idxmax()]
            first = part[part["k"] == 1].iloc[0]
            lines.append(f"- {human_name(metric, voc)} ({method}): top-1 {_interval(first.to_dict())} → best K={best['k']} "
                         f"{_interval(best.to_dict())}")
        lines.append("")
    return "\n".join(lines)


def _classes_line(voc: Vocabulary) -> str:
    """``4 classes: Neutral, Happiness, Sadness, Anger`` (what a corpus scores)."""
    return f"{len(voc.classes)} classes: " + ", ".join(voc.class_names[c] for c in voc.classes)


def _attributes_line(voc: Vocabulary) -> str:
    """``attributes: arousal 1-5, valence 1-5`` or ``no attributes``."""
    if not voc.attributes:
        return "no attributes"
    return "attributes: " + ", ".join(f"{a.display} {a.low:g}-{a.high:g}" for a in voc.attributes)


#: Rough cost of writing one table cell as CSV, in the units of a figure's saving cost
#: (:func:`ser_diag.plots.saving._cost`: ~5 ms each; a cell ~0.5 us), to share the work between processes.
CSV_CELL_COST = 1 / 10000


def write_diagnostics(diag: Diagnostics, out_dir: str | os.PathLike, figures: dict | None = None) -> list[Path]:
    """Write figures (PDF+PNG), ``tables/*.csv`` and ``summary.md`` of ``diag`` into ``out_dir``
    (as they come: use :func:`write_figures_from` for an all-or-nothing folder). ``figures``:
    :func:`~ser_diag.diagnostics.build_figures` of ``diag`` when the caller has them (they are
    then left open and saved side by side, :func:`ser_diag.plots.saving.save_figures`), else
    each group of :func:`~ser_diag.diagnostics.figure_builders` is drawn, saved and closed by
    whichever process is free (:func:`ser_diag.parallel.fork_map`); tables are written by the
    same processes. The same bytes as one by one; returns the paths in the order: figures
    (PDF, PNG each), tables, summary."""
    out = Path(out_dir)
    tables = out / "tables"
    jobs = [(f"table {name}", name, len(table) * max(1, table.shape[1]) * CSV_CELL_COST,
             lambda name=name, table=table: [atomic_write_text(tables / f"{name}.csv",
                                                               table_csv(table, diag.synthetic))])
            for name, table in diag.tables.items()]
    if figures is not None:
        log.info("saving %d figures as PDF and PNG and %d tables ...", len(figures), len(jobs))
        written = save_figures(figures, out, jobs=jobs)  # on several cores; the same bytes as one by one
    else:
        builders = figure_builders(diag)
        log.info("drawing and saving %d groups of figures as PDF and PNG and %d tables ...", len(builders),
                 len(jobs))
        jobs = [(f"figures {name}", name, cost, lambda build=build: _draw_and_save(build, out))
                for name, cost, build in builders] + jobs
        written = [path for paths in fork_map(lambda job: job[3](), jobs, costs=[job[2] for job in jobs],
                                              name="ser_diag-figures")
                   for path in paths]
    written.append(atomic_write_text(out / "summary.md", summary_markdown(diag)))
    return written


def _draw_and_save(build, out: Path) -> list[Path]:
    """Draw a group of figures (``build()``), save each as PDF and PNG, close them."""
    figures = build()
    try:
        return [path for stem, fig in figures.items() for path in save_figure(fig, out, stem)]
    finally:
        for fig in figures.values():
            plt.close(fig)


def _published(written: list[Path], stage: Path, out) -> list[Path]:
    return [Path(out) / p.relative_to(stage) for p in written]


def write_figures_from(diag: Diagnostics, out, figures: dict | None = None) -> list[Path]:
    """Write the figure set of already computed diagnostics into ``out``, all or nothing
    (:func:`ser_diag.outputs.staged_output`); returns the written paths::

        diag = compute_diagnostics(labels, predictions)
        write_figures_from(diag, "out/figures")
    """
    with staged_output(out) as stage:
        written = write_diagnostics(diag, stage, figures)
    return _published(written, stage, out)


def write_paper_figures(labels, predictions, out, split: str | None = "Development",
                        resampling: Resampling | None = None, intersection: bool = False,
                        scheme: str = "unit", baseline: str | None = None, vocabulary: Vocabulary | None = None,
                        target: str | None = None, attributes=None, **legacy) -> list[Path]:
    """Validate inputs, compute every diagnostic once and write the figure set into ``out``.
    ``resampling``: :class:`~ser_diag.resampling.Resampling` (older keywords ``n_boot, level,
    by_speaker, seed, ddof`` override it); ``baseline``: see :func:`compute_diagnostics`;
    ``vocabulary``, ``target``, ``attributes``: the corpus (:meth:`Evaluation.load`)."""
    with staged_output(out) as stage:  # checks and locks `out` before computing
        diag = compute_diagnostics(labels, predictions, split=split, resampling=Resampling.of(resampling, **legacy),
                                   intersection=intersection, scheme=scheme, baseline=baseline,
                                   vocabulary=vocabulary, target=target, attributes=attributes)
        written = write_diagnostics(diag, stage)
    return _published(written, stage, out)

"""The body of each section of the report (:class:`_Page`: one method per section, from the
tables and figures a :class:`~ser_diag.diagnostics.Diagnostics` holds; formatting only).
Imports :mod:`~ser_diag.report.markup`.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

from ser_diag.diagnostics import Diagnostics, binned_figures, rows_where
from ser_diag.names import human_name
from ser_diag.plots.saving import map_figures
from ser_diag.report.markup import _Cell, _ci, _figure_image, _figure_markup, _p_value, _table
from ser_diag.vocabulary import MSP_PODCAST, Vocabulary


def _categorical_headline(voc: Vocabulary) -> list[str]:
    return ["macro_f1", "accuracy", "uar"] + [f"f1_{c}" for c in voc.classes]


def _attribute_headline(voc: Vocabulary) -> list[str]:
    return [f"ccc_{a}" for a in voc.attribute_names] + ["ccc_mean"]


_METHODS = {"plurality": "plurality vote", "prob_average": "probability average",
            "mean": "mean of predictions"}
_SHRINKAGE_COLUMNS = ["slope", "variance_ratio", "ccc", "rho", "loss_correlation", "loss_scale",
                      "loss_location"]


def worst_of(speakers: pd.DataFrame, n: int = 10) -> pd.DataFrame:
    """The lowest-scoring speakers of one system's speaker table (formatting only: a sort of
    what :mod:`ser_diag.diagnostics` computed), at most ``n`` and never more than a third of
    the speakers with a value, ``rank`` 1 = worst."""
    known = speakers[speakers["estimate"].notna()]
    limit = min(n, len(known) // 3)
    worst = known.sort_values(["estimate", "SpkrID"], kind="stable").head(limit).copy()
    worst["rank"] = range(1, len(worst) + 1)
    return worst


class _Page:
    def __init__(self, diag: Diagnostics, figures: dict, csv_names: list[str]):
        self.diag, self.csv_names = diag, csv_names
        # every figure drawn up front, on all cores (the same images as one by one)
        self.images = dict(zip(figures, map_figures(lambda stem, fig: _figure_image(fig), figures)))
        self.t, self.s = diag.tables, diag.settings
        self.voc = diag.vocabulary
        self.displays = self.voc.attribute_displays

    def name(self, metric) -> str:
        """:func:`~ser_diag.names.human_name` by the corpus' names."""
        return human_name(metric, self.voc)

    def class_name(self, code) -> str:
        return self.voc.class_names.get(str(code), str(code))

    def attribute_name(self, attribute) -> str:
        return self.displays.get(attribute, attribute)

    def figure(self, stem: str, caption: str) -> str:
        image = self.images.pop(stem, None)
        return "" if image is None else _figure_markup(image, caption)

    def csv_link(self, *names: str) -> str:
        links = [f'<a href="tables/{n}.csv">tables/{n}.csv</a>' for n in names if n in self.csv_names]
        return f'<p class="note">Data: {", ".join(links)}</p>' if links else ""

    def focus(self, task: str) -> str | None:
        return self.s.get("focus", {}).get(task)

    # -- sections ---------------------------------------------------------------------------
    def settings(self) -> str:
        s, diag = self.s, self.diag
        n_files = {task: int(frame["FileName"].nunique()) for task, frame in
                   (("categorical", diag.categorical), ("attributes", diag.attributes)) if frame is not None}
        items = [] if self.voc == MSP_PODCAST else [
            ("corpus", f"{self.voc.name}: {len(self.voc.classes)} classes ("
                       + ", ".join(self.class_name(c) for c in self.voc.classes) + "); "
                       + (", ".join(f"{a.display} {a.low:g}-{a.high:g}" for a in self.voc.attributes)
                          or "no attributes"))]
        items += [
            ("split", s.get("split") or "all files"),
            ("CCC convention", s.get("ccc_convention")),
            ("confidence intervals", f"{s['level']:.0%} percentile bootstrap (ci_low, ci_high), "
                                     f"{s['n_boot']} resamples"),
            ("resampling unit", f"{s['unit']}s" + (" (cluster bootstrap over SpkrID)" if s["unit"] == "speaker"
                                                 else "")),
            ("seed", s.get("seed")),
            ("attribute bins", s.get("scheme", "unit")),
            ("systems", f"{len(diag.systems)}: {', '.join(diag.systems)}"),
            ("files scored", ", ".join(f"{n} ({task})" for task, n in n_files.items())),
            ("focus system (single-system figures)",
             ", ".join(f"{task}: {name}" for task, name in s.get("focus", {}).items())),
            ("baseline system", s.get("baseline") or "none (no system is named baseline)"),
        ]
        if not s.get("n_boot"):
            items[[k for k, _ in items].index("confidence intervals")] = ("confidence intervals",
                                                                          "none (0 bootstrap resamples)")
        rows = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(str(v))}</dd>" for k, v in items)
        notes = [str(n) for n in s.get("notes", []) or []]
        listed = ("<h3>Notes</h3><ul class=\"notes\">" + "".join(f"<li>{html.escape(n)}</li>" for n in notes)
                  + "</ul>") if notes else ""
        return f'<dl class="settings">{rows}</dl>{listed}'

    def metrics(self) -> str:
        metrics = self.t["metrics"]
        parts = []
        categorical, attribute = _categorical_headline(self.voc), _attribute_headline(self.voc)
        for task, wanted, title in (("categorical", categorical[:3], "Task 1 - categorical"),
                                    ("categorical", categorical[3:], "Task 1 - F1 per class"),
                                    ("attributes", attribute, "Task 2 - attributes (CCC)")):
            part = rows_where(metrics, task=task) if "task" in metrics else metrics
            part = part[part["metric"].isin(wanted)]
            if part.empty:
                continue
            present = [m for m in wanted if (part["metric"] == m).any()]
            records = []
            for system, rows in part.groupby("system", sort=False):
                by_metric = rows.set_index("metric")
                record = {"system": str(system), "n": int(rows["n"].max())}
                for m in present:
                    r = by_metric.loc[m]
                    record[self.name(m)] = _ci(r["estimate"], r["ci_low"], r["ci_high"])
                records.append(record)
            table = pd.DataFrame(records)
            first = present[0]
            table = table.iloc[sorted(range(len(table)), key=lambda i: -table[self.name(first)].iloc[i].sort)]
            ident = f"metrics_{task}" + ("_per_class" if wanted[0].startswith("f1_") else "")
            parts.append(f"<h3>{title}</h3>" + _table(table, ident, text_columns=["system"]))
        return ('<p class="note">Each cell: estimate [ci_low, ci_high]. Click a header to sort.</p>'
                + "".join(parts) + self.csv_link("metrics"))

    def fig3a(self) -> str:
        if self.diag.categorical is None:
            return '<p class="note">No system submitted categorical predictions.</p>'
        focus = self.focus("categorical")
        out = ['<div class="figs">',
               self.figure("fig3a_confusion_categorical",
                           f"Confusion of {focus} (best macro-F1): count and share of the true class."),
               self.figure("fig3a_confusion_difference",
                           "Row-normalised confusion of the best minus the worst system (percentage points)."),
               "</div>"]
        if "minority_destinations" in self.t:
            table = self.t["minority_destinations"]
            table = rows_where(table, system=focus)
            shown = pd.DataFrame({
                "true class": [self.class_name(c) for c in table["true"]],
                "rank": table["rank"].to_numpy(),
                "predicted as": [self.class_name(c) for c in table["pred"]],
                "share of true class [CI]": [_ci(e, lo, hi) for e, lo, hi in
                                             zip(table["share"], table["ci_low"], table["ci_high"])],
                "count": table["count"].to_numpy(), "n true": table["n_true"].to_numpy(),
                "minority negative": ["yes" if m else "" for m in table["minority"]],
            })
            out.append(f"<h3>Where each class goes ({html.escape(str(focus))}): top wrong destinations</h3>")
            out.append(_table(shown, "minority_destinations", text_columns=["true class", "predicted as",
                                                                             "minority negative"]))
        out.append(self.csv_link("confusion", "minority_destinations", "confusion_difference"))
        return "".join(out)

    def binned(self, section: str) -> str:
        found = [(a, stem) for a, (sec, stem) in binned_figures(self.voc).items() if sec == section]
        if not found:
            return ""
        attribute, stem = found[0]
        name = self.attribute_name(attribute)
        if self.diag.attributes is None:
            return '<p class="note">No system submitted attribute predictions.</p>'
        focus = self.focus("attributes")
        out = ['<div class="figs">', self.figure(stem, f"True vs predicted {name} bins of {focus}, row-normalised.")]
        if "per_bin" in self.t:
            table = rows_where(self.t["per_bin"], system=focus, attribute=attribute)
            shown = table[["true_bin", "n", "mean_true", "mean_pred", "bias", "mae", "ccc"]].copy()
            shown["true_bin"] = shown["true_bin"].astype(str)
            out.append(f"<div><h3>Per true bin ({html.escape(str(focus))}, {name})</h3>"
                       '<p class="note">bias = mean prediction - mean truth; CCC within the bin.</p>'
                       + _table(shown, f"per_bin_{attribute}", text_columns=["true_bin"]) + "</div>")
        out.append("</div>")
        out.append(self.csv_link("binned", "per_bin"))
        return "".join(out)

    def regression_to_mean(self) -> str:
        if self.diag.attributes is None:
            return '<p class="note">No system submitted attribute predictions.</p>'
        out = ['<div class="figs">', self.figure("regression_to_mean_extremes",
                           f"Mean prediction per true bin with CIs, {self.focus('attributes')}; "
                           "flatter than the identity = regression to the mean.")]
        if "extreme_bin_recall" in self.t:
            ext = rows_where(self.t["extreme_bin_recall"], system=self.focus("attributes")).copy()
            ext["attribute"] = ext["attribute"].map(self.attribute_name)
            ext["true_bin"] = ext["true_bin"].astype(str)
            out.append("<div><h3>Recall of the extreme bins</h3>"
                       + _table(ext[["attribute", "end", "true_bin", "n", "recall"]], "extreme_bin_recall",
                                text_columns=["attribute", "end", "true_bin"]) + "</div>")
        out.append("</div>")
        if "shrinkage" in self.t:
            shrink = self.t["shrinkage"]
            records = []
            for (system, attribute), rows in shrink.groupby(["system", "attribute"], sort=False):
                by_metric = rows.set_index("metric")
                record = {"system": str(system), "attribute": self.attribute_name(attribute)}
                for m in _SHRINKAGE_COLUMNS:
                    if m in by_metric.index:
                        r = by_metric.loc[m]
                        record[m] = _ci(r["estimate"], r["ci_low"], r["ci_high"])
                records.append(record)
            out.append("<h3>Shrinkage and Lin's decomposition of the CCC gap</h3>"
                       '<p class="note">slope of E[pred | true] and sd_pred/sd_true: 1 = no shrinkage. '
                       "loss_correlation + loss_scale + loss_location = 1 - CCC.</p>")
            out.append(_table(pd.DataFrame(records), "shrinkage", text_columns=["system", "attribute"]))
        if "recalibration" in self.t:
            rec = self.t["recalibration"].copy()
            rec["attribute"] = rec["attribute"].map(self.attribute_name)
            columns = ["system", "attribute", "ccc_before", "ccc_after", "ccc_gain", "pearson",
                       "variance_ratio_before", "variance_ratio_after", "n_fit", "n_eval"]
            out.append("<h3>What if: variance-matching recalibration fitted on held-out files</h3>"
                       '<p class="note">CCC on the evaluation half before and after an affine map that gives '
                       "the predictions the mean and sd of the truth (fitted on the other half). "
                       "Pearson's r is the ceiling any affine map can reach.</p>")
            out.append(_table(rec[[c for c in columns if c in rec]], "recalibration",
                              text_columns=["system", "attribute"]))
        out.append(self.csv_link("shrinkage", "bin_means", "recalibration", "extreme_bin_recall"))
        return "".join(out)

    def bias_audit(self) -> str:
        out = ['<div class="figs">']
        for task in ("categorical", "attributes"):
            out.append(self.figure(f"gender_audit_{task}",
                                   f"{task}: metrics by gender for {self.focus(task)}, gap with CI and p-value."))
        out.append("</div>")
        headline = ["macro_f1", "accuracy", "uar"] + _attribute_headline(self.voc)
        if "gender_gaps" in self.t:
            gaps = self.t["gender_gaps"]
            gaps = gaps[gaps["metric"].isin(headline)]
            if len(gaps):
                first = gaps.iloc[0]
                a, b = str(first["group_a"]), str(first["group_b"])
                shown = pd.DataFrame({
                    "system": gaps["system"].astype(str).to_numpy(),
                    "metric": [self.name(m) for m in gaps["metric"]],
                    a: gaps["estimate_a"].to_numpy(), b: gaps["estimate_b"].to_numpy(),
                    f"gap {a} - {b} [CI]": [_ci(g, lo, hi) for g, lo, hi in
                                            zip(gaps["gap"], gaps["ci_low"], gaps["ci_high"])],
                    "p-value": [_p_value(p) for p in gaps["p_value"]],
                })
                note = (f"gap = {a} - {b} with its {first['level']:.0%} CI ({first['unit']} resampling); "
                        f"p-value: {first['method']}. Sort by p-value to see the largest gaps.")
                out.append(f'<h3>Gender gaps, all systems</h3><p class="note">{html.escape(note)}</p>')
                out.append(_table(shown, "gender_gaps", text_columns=["system", "metric"]))
        if "gender_metrics" in self.t:
            gm = self.t["gender_metrics"]
            gm = gm[gm["metric"].isin(headline)]
            tasks = pd.unique(gm["task"]) if "task" in gm else [None]
            for task in tasks:
                part = gm if task is None else gm[gm["task"] == task]
                records = {}
                for r in part.itertuples(index=False):
                    record = records.setdefault((str(r.system), str(r.group)), {
                        "system": str(r.system), "group": str(r.group), "n": r.n, "speakers": r.n_speakers})
                    record[self.name(r.metric)] = _ci(r.estimate, r.ci_low, r.ci_high)
                out.append(f"<h3>Metrics by gender{'' if task is None else ' - ' + html.escape(str(task))}</h3>")
                out.append(_table(pd.DataFrame(list(records.values())), f"gender_metrics_{task or 'all'}",
                                  text_columns=["system", "group"]))
        out.append('<div class="figs">')
        for task in ("categorical", "attributes"):
            out.append(self.figure(f"speaker_distribution_{task}",
                                   f"{task}: per-speaker metric of {self.focus(task)}, worst speakers circled."))
        out.append("</div>")
        if "speaker_metrics" in self.t:
            speakers = self.t["speaker_metrics"]
            frames = []
            for task, focus in self.s.get("focus", {}).items():
                part = rows_where(speakers, task=task, system=focus) if "task" in speakers else speakers
                metric = "accuracy" if task == "categorical" else "ccc_mean"
                part = part[part["metric"] == metric] if (part["metric"] == metric).any() else part
                if len(part):
                    frames.append(worst_of(part.drop(columns=["task"], errors="ignore")).assign(task=task))
            if frames:
                worst = pd.concat(frames, ignore_index=True)
                worst = worst[["task", "system", "rank", "SpkrID", "Gender", "n_utterances", "metric", "estimate"]]
                worst["metric"] = worst["metric"].map(self.name)
                worst["SpkrID"] = worst["SpkrID"].astype(str)
                worst = worst.rename(columns={"SpkrID": "speaker", "Gender": "gender",
                                              "n_utterances": "utterances"})
                out.append(f"<h3>Worst speakers (at least {speakers.attrs.get('min_utterances', 10)} "
                           "utterances; at most a third of the speakers)</h3>")
                if len(worst):
                    out.append(_table(worst, "worst_speakers",
                                      text_columns=["task", "system", "metric", "gender", "speaker"]))
                else:
                    out.append('<p class="note">Too few speakers to name the worst (fewer than three).</p>')
        out.append(self.csv_link("gender_metrics", "gender_gaps", "class_recall_by_gender", "speaker_metrics"))
        return "".join(out)

    def fig4(self) -> str:
        out = [self.figure("fig4_topk_fusion", "Top-K fusion: score against the number of fused systems, "
                                               "CI band, baseline dashed.")]
        if "fusion_curve" in self.t:
            curve = self.t["fusion_curve"].sort_values(["task", "metric", "method", "k"],
                                                        key=lambda c: c.map({"categorical": 0, "attributes": 1})
                                                        if c.name == "task" else c, kind="stable")
            is_base = (curve["method"] == "baseline").to_numpy()
            shown = pd.DataFrame({
                "task": curve["task"].astype(str).to_numpy(), "metric": [self.name(m) for m in curve["metric"]],
                "method": np.where(is_base, "baseline system", curve["method"].astype(str).map(
                    lambda m: _METHODS.get(m, m)).to_numpy()),
                "K": [_Cell("baseline", -1) if b else _Cell(str(int(k)), int(k))
                      for b, k in zip(is_base, curve["k"])],
                "estimate [CI]": [_ci(e, lo, hi) for e, lo, hi in zip(curve["estimate"], curve["ci_low"], curve["ci_high"])],
                "systems": curve["systems"].astype(str).to_numpy(),
            })
            baseline = self.s.get("baseline")
            out.append("<h3>Fusion curve</h3>" + (f'<p class="note">Baseline system: {html.escape(str(baseline))} '
                       "(its own score on the same files, not a fusion).</p>"
                       if baseline else '<p class="note">No baseline system (none is named "baseline").</p>'))
            out.append(_table(shown, "fusion_curve", text_columns=["task", "metric", "method", "systems"]))
        elif len(self.diag.systems) < 2:
            out.append('<p class="note">Fusion needs at least two systems.</p>')
        out.append('<div class="figs">')
        for task in ("categorical", "attributes"):
            out.append(self.figure(f"system_disagreement_{task}", f"{task}: pairwise disagreement between systems."))
        out.append("</div>")
        if "disagreement" in self.t:
            d = self.t["disagreement"]
            d = d[d["metric"] == "disagreement"] if (d["metric"] == "disagreement").any() else d
            if len(d):
                matrix = d.pivot(index="system_a", columns="system_b", values="value")
                names = list(pd.unique(d["system_a"]))
                matrix = matrix.reindex(index=names, columns=names).reset_index()
                matrix = matrix.rename(columns={"system_a": "system"})
                matrix.columns = [str(c) for c in matrix.columns]
                out.append(f"<h3>Pairwise {html.escape(self.name(str(d['metric'].iloc[0])))} "
                           "(share of files with different classes)</h3>")
                out.append(_table(matrix, "disagreement", text_columns=["system"]))
        out.append(self.csv_link("fusion_curve", "fusion_ranking", "disagreement"))
        return "".join(out)

    def beyond(self) -> str:
        """Beyond the leaderboard (issue 12): rank intervals and tiers, the human ceiling, metrics
        by annotator agreement, soft-label scores, podcasts and durations."""
        t, out = self.t, []
        if "leaderboard_ranks" in t:
            board = t["leaderboard_ranks"]
            board = board[board["metric"].isin(["macro_f1", "ccc_mean"])]
            shown = pd.DataFrame({
                "task": board["task"].astype(str).to_numpy(), "metric": [self.name(m) for m in board["metric"]],
                "system": board["system"].astype(str).to_numpy(),
                "estimate [CI]": [_ci(e, lo, hi) for e, lo, hi in zip(board["estimate"], board["ci_low"],
                                                                       board["ci_high"])],
                "rank": board["rank"].to_numpy(),
                "rank interval": [_Cell(f"{int(lo)}-{int(hi)}", int(lo)) if pd.notna(lo) else _Cell("")
                                  for lo, hi in zip(board["rank_ci_low"], board["rank_ci_high"])],
                "P(best)": board["p_best"].to_numpy(), "tier": board["tier"].to_numpy()})
            out.append('<p class="note">Rank intervals, P(best) and tiers come from the same paired resamples '
                       "as the CIs. Tiers: going down the leaderboard, a system joins the current tier unless "
                       "it is significantly worse than the tier's best (paired bootstrap Wald test, Holm-"
                       "corrected over all pairs). Identical submissions tie.</p>")
            out.append(_table(shown, "leaderboard_ranks", text_columns=["task", "metric", "system", "rank interval"]))
        out.append(self.figure("leaderboard_ranks", "Scores with CIs, rank intervals and significance tiers "
                                                    "(shaded); dashed: human ceiling."))
        out.append(self.figure("win_probability", "Probability that the row system beats the column system."))
        if "human_ceiling" in t:
            h = t["human_ceiling"]
            shown = pd.DataFrame({"task": h["task"].astype(str).to_numpy(), "metric": [self.name(m) for m in h["metric"]],
                                  "estimate [CI]": [_ci(e, lo, hi) for e, lo, hi in zip(h["estimate"], h["ci_low"],
                                                                                         h["ci_high"])],
                                  "files": h["n_files"].to_numpy(), "judgements": h["n_judgements"].to_numpy()})
            out.append("<h3>Human ceiling (leave-one-annotator-out)</h3>"
                       f'<p class="note">{html.escape(str(h["estimator"].iloc[0]))}. Bias: '
                       f'{html.escape(str(h["bias"].iloc[0]))}.</p>')
            out.append(_table(shown, "human_ceiling", text_columns=["task", "metric"]))
        out.append(self.figure("metric_by_agreement", "Headline metric by annotator agreement."))
        if "annotator_agreement_soft" in t:
            soft = t["annotator_agreement_soft"]
            shown = pd.DataFrame({"system": soft["system"].astype(str).to_numpy(),
                                  "score": soft["metric"].astype(str).str.replace("_", " ").to_numpy(),
                                  "estimate [CI]": [_ci(e, lo, hi) for e, lo, hi in zip(soft["estimate"],
                                                                                         soft["ci_low"], soft["ci_high"])]})
            out.append("<h3>Soft-label scores</h3>")
            out.append(_table(shown, "soft_labels", text_columns=["system", "score"]))
        if "worst_podcasts" in t:
            worst = t["worst_podcasts"]
            worst = worst[worst["rank"] <= 3]
            shown = pd.DataFrame({"task": worst["task"].astype(str).to_numpy(), "system": worst["system"].astype(str).to_numpy(),
                                  "podcast": worst["group"].astype(str).to_numpy(),
                                  "metric": [self.name(m) for m in worst["metric"]],
                                  "estimate [CI]": [_ci(e, lo, hi) for e, lo, hi in zip(worst["estimate"], worst["ci_low"],
                                                                                         worst["ci_high"])],
                                  "files": worst["n"].to_numpy(), "rank": worst["rank"].to_numpy()})
            out.append("<h3>Worst podcasts</h3>")
            out.append(_table(shown, "worst_podcasts", text_columns=["task", "system", "podcast", "metric"]))
        out.append(self.figure("podcast_metrics", "The worst podcasts of each task's best system."))
        out.append(self.figure("duration_metrics", "Headline metric by duration."))
        if "gender_gap_by_podcast" in t:
            g = t["gender_gap_by_podcast"]
            shown = pd.DataFrame({"task": g["task"].astype(str).to_numpy(), "system": g["system"].astype(str).to_numpy(),
                                  "quantity": g["quantity"].astype(str).str.replace("_", " ").to_numpy(),
                                  "estimate [CI]": [_ci(e, lo, hi) for e, lo, hi in zip(g["estimate"], g["ci_low"],
                                                                                         g["ci_high"])]})
            out.append("<h3>Gender gap in per-file error: overall, within podcasts, share explained by podcast</h3>")
            out.append(_table(shown, "gender_gap_by_podcast", text_columns=["task", "system", "quantity"]))
        out.append(self.csv_link("leaderboard_ranks", "leaderboard_pairs", "human_ceiling", "annotator_agreement",
                                 "annotator_agreement_bins", "annotator_agreement_soft", "podcast_metrics",
                                 "worst_podcasts", "gender_gap_by_podcast", "duration_metrics"))
        return "".join(out)

    def tables(self) -> str:
        links = "".join(f'<li><a href="tables/{n}.csv">{n}.csv</a></li>' for n in self.csv_names)
        return ('<p class="note">Every table behind the figures, tidy, written beside this page '
                f"(relative links).</p><ul class=\"csv\">{links}</ul>")

    def remaining_figures(self) -> str:
        """Figures build_figures made that no section placed (new figures are never dropped)."""
        return "".join(_figure_markup(image, stem) for stem, image in self.images.items())

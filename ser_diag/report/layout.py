"""The report page: its sections in order (:data:`SECTIONS`), style, script and
Content-Security-Policy, and the page around the sections (:func:`render_html`). Imports
:mod:`~ser_diag.report.sections`.
"""

from __future__ import annotations

import html

from ser_diag.diagnostics import Diagnostics, binned_figures, has_gender, has_speakers
from ser_diag.report.sections import _Page
from ser_diag.schema import SYNTHETIC_BANNER
from ser_diag.vocabulary import MSP_PODCAST

#: Section ids of the page, in order, with their headings.
SECTIONS = {
    "settings": "Settings",
    "metrics": "Scores with confidence intervals",
    "fig3a": "Fig. 3a - categorical confusion and where minority classes go",
    "fig3b": "Fig. 3b - binned arousal",
    "fig3c": "Fig. 3c - binned valence",
    "fig3d": "Fig. 3d - binned dominance",
    "regression_to_mean": "Extreme values and regression to the mean",
    "bias_audit": "Bias audit: gender and speakers",
    "fig4": "Fig. 4 - top-K fusion and system disagreement",
    "beyond": "Beyond the leaderboard - rank intervals, annotators, podcasts",
    "tables": "Tables (CSV)",
}



def sections_of(diag: Diagnostics) -> dict[str, str]:
    """The sections of ``diag``'s page, in order, with their headings: :data:`SECTIONS` for
    MSP-Podcast; for another corpus the binned sections name its attributes, and the sections
    it cannot have (binned attributes without attributes, the bias audit with no gender and no
    speaker known) are left out -- each with its line under the settings' notes
    (:func:`~ser_diag.diagnostics.dropped_sections`)."""
    voc = diag.vocabulary
    if voc == MSP_PODCAST:
        return dict(SECTIONS)
    binned = {section: attribute for attribute, (section, _) in binned_figures(voc).items()}
    frames = list(diag.data.tasks().values())
    out = {}
    for key, heading in SECTIONS.items():
        if key in ("fig3b", "fig3c", "fig3d"):
            if key not in binned:
                continue
            heading = f"Fig. {key[3:]} - binned {voc.attribute_displays[binned[key]]}"
        if key == "regression_to_mean" and not voc.attributes:
            continue
        if key == "bias_audit" and not any(has_gender(f) or has_speakers(f) for f in frames):
            continue
        out[key] = heading
    return out


_CSS = """
*,*::before,*::after{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI","DejaVu Sans",sans-serif;margin:0;color:#1b1b1b;background:#fafafa}
header{background:#23395d;color:#fff;padding:14px 28px}
header h1{margin:0;font-size:24px}
header p{margin:4px 0 0;color:#dfe6f0}
nav{position:sticky;top:0;background:#fff;border-bottom:1px solid #ccc;padding:6px 28px;z-index:2;font-size:14px;
display:flex;flex-wrap:wrap;gap:2px 16px}
nav a{color:#23395d;text-decoration:none;white-space:nowrap}
nav a:hover{text-decoration:underline}
main{padding:0 28px 40px;max-width:1800px}
section{background:#fff;border:1px solid #ddd;border-radius:6px;margin:18px 0;padding:6px 20px 16px;min-width:0}
h2{font-size:20px;margin:12px 0 8px;color:#23395d}
h3{font-size:16px;margin:16px 0 6px}
.banner{background:#fff3cd;border:2px solid #b58100;color:#4d3800;padding:10px 16px;margin:14px 0;font-weight:600;border-radius:6px}
.note{color:#555;font-size:13.5px;margin:4px 0 8px}
figure{margin:10px 0;max-width:100%}
figure svg,figure img{max-width:100%;height:auto;display:block}
figcaption{font-size:13px;color:#444}
.figs{display:flex;flex-wrap:wrap;gap:12px 28px;align-items:flex-start}
.figs>*{flex:0 1 auto;min-width:0;max-width:100%}
.scroll{overflow-x:auto;max-width:100%;max-height:560px;overflow-y:auto;margin:6px 0 10px}
table{border-collapse:collapse;font-size:13.5px;font-variant-numeric:tabular-nums}
th,td{border:1px solid #d6d6d6;padding:3px 8px;text-align:right;white-space:nowrap}
th{background:#eef1f6;cursor:pointer;position:sticky;top:0;user-select:none}
th:hover{background:#dde4ef}
th.asc::after{content:" \\25B2";font-size:10px}
th.desc::after{content:" \\25BC";font-size:10px}
td.text,th.text{text-align:left}
tr:nth-child(even) td{background:#f8f9fb}
dl.settings{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:3px 16px;margin:6px 0}
dl.settings dt{font-weight:600}
dl.settings dd{margin:0;overflow-wrap:anywhere}
ul.csv{columns:15em;font-size:14px}
@media (max-width:1100px){header,nav{padding-left:12px;padding-right:12px}main{padding:0 10px 30px}
section{padding:6px 10px 12px}}
"""

_JS = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, col) {
    th.title = "click to sort";
    th.addEventListener("click", function () {
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      var asc = !th.classList.contains("asc");
      table.querySelectorAll("th").forEach(function (h) { h.classList.remove("asc", "desc"); });
      th.classList.add(asc ? "asc" : "desc");
      function key(row) {
        var cell = row.cells[col], v = cell.getAttribute("data-sort");
        if (v === null) { v = cell.textContent.trim(); }
        var x = parseFloat(v);
        return (v !== "" && !isNaN(x) && isFinite(v)) ? x : v.toLowerCase();
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (typeof x !== typeof y) { return (typeof x === "number" ? -1 : 1) * (asc ? 1 : -1); }
        return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""

#: The page may use only what it carries: inline style, inline script, data: images.
_CSP = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
        "img-src data:; font-src 'none'; connect-src 'none'; form-action 'none'; base-uri 'none'")


def render_html(diag: Diagnostics, figures: dict, csv_names: list[str]) -> str:
    """The report page as one HTML string (figures closed by the caller)."""
    page = _Page(diag, figures, csv_names)
    shown = sections_of(diag)
    build = {
        "settings": page.settings, "metrics": page.metrics, "fig3a": page.fig3a,
        "fig3b": lambda: page.binned("fig3b"), "fig3c": lambda: page.binned("fig3c"),
        "fig3d": lambda: page.binned("fig3d"),
        "regression_to_mean": page.regression_to_mean, "bias_audit": page.bias_audit,
        "fig4": page.fig4, "beyond": page.beyond,
    }
    bodies = {key: make() for key, make in build.items() if key in shown}
    extra = page.remaining_figures()
    if extra:
        bodies["fig4"] += "<h3>Other figures</h3>" + extra
    bodies["tables"] = page.tables()
    banner = f'<div class="banner" id="synthetic">{html.escape(SYNTHETIC_BANNER)}</div>' if diag.synthetic else ""
    nav = "".join(f'<a href="#{k}">{html.escape(v.split(" - ")[0])}</a>' for k, v in shown.items())
    sections = "".join(f'<section id="{k}"><h2>{html.escape(shown[k])}</h2>{bodies[k]}</section>'
                       for k in shown)
    split = diag.settings.get("split")
    corpus = "" if diag.vocabulary == MSP_PODCAST else f"{html.escape(diag.vocabulary.name)}: "
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>ser_diag report{' - ' + html.escape(str(split)) if split else ''}</title>"
        f"<style>{_CSS}</style></head><body>"
        f"<header><h1>ser_diag - speech emotion recognition diagnostics</h1>"
        f"<p>{corpus}{len(diag.systems)} systems, split {html.escape(str(split))}, "
        f"{diag.settings['level']:.0%} bootstrap CIs over {html.escape(diag.settings['unit'])}s</p></header>"
        f"<nav>{nav}</nav><main>{banner}{sections}</main>"
        f"<script>{_JS}</script></body></html>\n"
    )

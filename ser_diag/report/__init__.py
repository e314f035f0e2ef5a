"""A self-contained HTML report: ``python -m ser_diag report --labels PATH --predictions DIR --out DIR``.

``DIR/index.html`` is one file that opens offline from disk: figures inline as SVG (or as an
embedded PNG when that is smaller), CSS and a few lines of script inline (click a table header to
sort), and a Content-Security-Policy that forbids the page any request but its own inline data.
Beside it, ``DIR/tables/*.csv`` holds every table behind the figures, linked from the page.

Numbers come from :func:`ser_diag.diagnostics.compute_diagnostics` and figures from
:func:`ser_diag.diagnostics.build_figures`: the report formats, it never computes a metric.
Bad input raises :class:`ser_diag.errors.InputError` before anything is written; the output
appears all at once (:func:`ser_diag.outputs.staged_output`).

The package (imports go down this list, never up):

- :mod:`~ser_diag.report.markup`: numbers, intervals and p-values as cells, sortable tables,
  figures inline (SVG or PNG), escaping;
- :mod:`~ser_diag.report.sections`: the body of every section (``_Page``: one method per section);
- :mod:`~ser_diag.report.layout`: :data:`SECTIONS`, the page's CSS, script and
  Content-Security-Policy, :func:`render_html`;
- :mod:`~ser_diag.report.write`: :func:`write_report`, :func:`write_report_from` (the page and
  the tables, staged).
"""

from ser_diag.report.markup import _figure_image, _figure_markup
from ser_diag.report.sections import worst_of
from ser_diag.report.layout import SECTIONS, render_html, sections_of
from ser_diag.report.write import write_report, write_report_from

__all__ = ["SECTIONS", "render_html", "sections_of", "write_report", "write_report_from"]

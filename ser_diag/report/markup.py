"""The report's cells, tables and figures as HTML: numbers and intervals formatted
(:class:`_Cell`: text and sort key), headers people read, sortable tables, figures inline as SVG
or PNG; all text escaped here. Imports nothing of :mod:`ser_diag.report`.
"""

from __future__ import annotations

import base64
import html
import io as _io
import math

import matplotlib
import pandas as pd

from ser_diag.names import format_p, human_name
from ser_diag.plots._style import readable_text

def _number(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, (bool,)):
        return str(value)
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) >= 100):
        return f"{int(value)}"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


class _Cell:
    """A table cell: displayed text and the key it sorts by."""

    def __init__(self, text: str, sort=None):
        self.text, self.sort = text, sort


def _ci(estimate, low, high, digits: int = 3) -> _Cell:
    """``estimate [low, high]``, sorting by the estimate."""
    if estimate is None or pd.isna(estimate):
        return _Cell("")
    if low is None or pd.isna(low) or high is None or pd.isna(high):
        return _Cell(_number(float(estimate), digits), float(estimate))
    return _Cell(f"{estimate:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]", float(estimate))


def _p_value(p) -> _Cell:
    if p is None or pd.isna(p):
        return _Cell("")
    return _Cell(format_p(p), float(p))



_HEADERS = {
    "true_bin": "true bin", "mean_true": "mean truth", "mean_pred": "mean prediction", "mae": "MAE",
    "variance_ratio": "SD ratio (pred / true)", "rho": "Pearson r", "loss_correlation": "loss: correlation",
    "loss_scale": "loss: scale", "loss_location": "loss: location", "ccc_before": "CCC before",
    "ccc_after": "CCC after", "ccc_gain": "CCC gain", "pearson": "Pearson r",
    "variance_ratio_before": "SD ratio before", "variance_ratio_after": "SD ratio after",
    "n_fit": "files fitted", "n_eval": "files scored", "end": "end",
}


def _header(column) -> str:
    """The header a person reads (machine names stay in the CSV files)."""
    return _HEADERS.get(str(column), human_name(str(column)))


def _table(frame: pd.DataFrame, table_id: str | None = None, text_columns=()) -> str:
    """A sortable HTML table; cells may be :class:`_Cell` (text + sort key) or plain values."""
    text_columns = set(text_columns)
    head = "".join(f'<th class="text">{html.escape(_header(c))}</th>' if c in text_columns
                   else f"<th>{html.escape(_header(c))}</th>" for c in frame.columns)
    body = []
    for row in frame.itertuples(index=False):
        cells = []
        for column, value in zip(frame.columns, row):
            cls = ' class="text"' if column in text_columns else ""
            if isinstance(value, _Cell):
                sort = "" if value.sort is None else f' data-sort="{html.escape(str(value.sort))}"'
                cells.append(f"<td{cls}{sort}>{html.escape(value.text)}</td>")
            else:
                text = _number(value.item() if hasattr(value, "item") else value) \
                    if not (value is None or value is pd.NA) else ""
                cells.append(f"<td{cls}>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    ident = f' id="{table_id}"' if table_id else ""
    return (f'<div class="scroll"><table class="sortable"{ident}><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")


def _figure_image(fig) -> tuple[str, str]:
    """``("svg", inline SVG)`` (text kept as text) or ``("png", base64 PNG)``, whichever is smaller."""
    readable_text(fig)  # a name no figure font can draw is transliterated (tables keep it)
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "ser_diag"}):
        buffer = _io.StringIO()   # fixed ids and no date: the same figure gives the same bytes
        fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg"):]  # drop the XML prolog and doctype: inline SVG needs neither
    png = _io.BytesIO()
    fig.savefig(png, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    encoded = base64.b64encode(png.getvalue()).decode("ascii")
    return ("svg", svg) if len(svg) <= len(encoded) else ("png", encoded)


def _figure_markup(image, caption: str) -> str:
    """A ``<figure>`` with ``caption`` of an :func:`_figure_image` (or of a Figure, drawn here)."""
    kind, data = image if isinstance(image, tuple) else _figure_image(image)
    label = html.escape(caption)
    if kind == "svg":
        body = data.replace("<svg ", f'<svg role="img" aria-label="{label}" ', 1)
    else:
        body = f'<img alt="{label}" src="data:image/png;base64,{data}">'
    return f"<figure>{body}<figcaption>{label}</figcaption></figure>"

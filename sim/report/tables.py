"""The one table writer of every report (evaluation, suite, scaling study): the same
``header`` + ``cells`` rendered as Markdown and as HTML."""

from __future__ import annotations

import html
from collections.abc import Sequence


def md_table(header: Sequence[str], cells: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table; a ``|`` inside a cell is escaped."""

    def esc(text: str) -> str:
        return str(text).replace("|", "\\|")

    lines = ["| " + " | ".join(esc(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in cells]
    return "\n".join(lines)


def html_table(header: Sequence[str], cells: Sequence[Sequence[str]]) -> str:
    """The same table as HTML, every cell escaped; Markdown's code ticks around a cell
    (```highway:dense```) are dropped, since HTML shows the text as it is."""

    def cell(text: str) -> str:
        return html.escape(str(text).strip("`"))

    return (
        "<table><thead><tr>"
        + "".join(f"<th>{cell(h)}</th>" for h in header)
        + "</tr></thead><tbody>"
        + "".join("<tr>" + "".join(f"<td>{cell(c)}</td>" for c in row) + "</tr>" for row in cells)
        + "</tbody></table>"
    )

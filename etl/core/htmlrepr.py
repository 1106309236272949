"""Results as HTML tables in a notebook (`_repr_html_`): a heading line, a table, notes.

Plain HTML, escaped, no script and no style sheet (notebooks, GitHub and nbconvert all show it).
A cell given as a `Link` becomes an anchor.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Iterable, Sequence


@dataclass(frozen=True)
class Link:
    text: str
    href: str


def _cell(value) -> str:
    if isinstance(value, Link):
        return f'<a href="{escape(value.href)}" target="_blank">{escape(value.text)}</a>'
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return escape("" if value is None else str(value))


def html_table(title: str, columns: Sequence[str], rows: Iterable[Sequence], notes: Iterable[str] = ()) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    out = f"<p><b>{escape(title)}</b></p><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    notes = list(notes)
    if notes:
        out += "<ul>" + "".join(f"<li>{escape(n)}</li>" for n in notes) + "</ul>"
    return out


def heading(result) -> str:
    """The first line of a result's readable text: its verdict."""
    return str(result).splitlines()[0]

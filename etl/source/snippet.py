"""The browser export snippet shipped with the package (etl/source/snippet.js), as text or as a bookmarklet."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from urllib.parse import quote

from ..core.result import Result


def snippet_source() -> str:
    """The snippet to paste into the devtools console of the app's page."""
    return files(__package__).joinpath("snippet.js").read_text(encoding="utf-8")


def bookmarklet() -> str:
    """The snippet as a `javascript:` URL. `void` keeps the browser from replacing the page
    with the snippet's result; newlines stay (encoded), so its // comments stay harmless."""
    code = snippet_source().strip().rstrip(";")
    return "javascript:" + quote(f"void {code};", safe="")


@dataclass(frozen=True)
class SnippetFile(Result):
    path: Path
    bytes: int
    bookmarklet: bool

    def __str__(self) -> str:
        kind = "bookmarklet (paste it as a bookmark's URL)" if self.bookmarklet else "snippet (paste it into the devtools console)"
        return f"wrote the export {kind} to {self.path} ({self.bytes:,} bytes)"


def write_snippet(path: Path, *, as_bookmarklet: bool = False) -> SnippetFile:
    text = bookmarklet() if as_bookmarklet else snippet_source()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return SnippetFile(path, len(text.encode("utf-8")), as_bookmarklet)

"""The Great Expectations data docs, telling what `etl validate` tells, and working offline.

**Severity and notes.** `etl validate` (etl/check/validate.py) calls an unmet expectation a
*warning* when every record MySQL breaks it with already breaks it in the source export. After
each run, `publish` writes that verdict into the stored validation results with Great
Expectations' own fields: the expectation's configuration gets `severity = "warning"` (GX's
`FailureSeverity`; `critical` is its default) and `notes` (a markdown list: how many records,
a few examples, "the source export holds these; MySQL adds none"), also as
`meta["notes"] = {"format": "markdown", "content": [...]}`, the form GX's atomic renderers read.
Failed expectations with an explanation and rules only the source breaks get notes too.

The choice for the suite-level verdict: a stored result keeps GX's own `success` (false as soon
as one expectation is unmet: that stays true of the data), and the verdict the pages show is
derived from GX's own fields as `ExpectationSuiteValidationResult.get_max_severity_failure()`
derives it: no unmet expectation is "Succeeded", unmet ones that are all `warning` (or `info`)
are "Warning", anything else "Failed". GX's HTML renderer knows only success and failure, so
after it has rendered, `finish` rewrites the few places that show the verdict: the status line
of a validation page, the icon of each warning expectation's row (with its notes, which GX
renders on suite pages only), and the status cell and filter text of the index's rows (read as
the Python literal GX writes into the page and written back the same way). Nothing is guessed
from the HTML: each page's verdict comes from its stored result (uncommitted/validations/).

**Offline.** The pages load Bootstrap, jQuery, bootstrap-table, Font Awesome and others from
CDNs. Those files, the exact versions the pages name, are vendored in
etl/report/datadocs_assets/ (see its README: versions, licences; inside the package, so the wheel
carries them); `finish` copies them to
`static/vendor/` in the site and points every page at them by relative path. The vega scripts
are dropped (no page we build calls vegaEmbed) and the Great Expectations logo comes from the
site's own static/images. Plain outbound links (<a href>) are left as they are.

**Open and serve.** `open_docs` opens the index in a browser (where there is a display) and
`serve_docs` serves the site on 127.0.0.1 until Ctrl-C, as `dbt docs serve` does.
"""

from __future__ import annotations

import ast
import html
import json
import os
import re
import shutil
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from ..check.suites import docs_index, gx_root
from ..check.validate import DocsResult, ValidationResult
from ..core.errors import ValidationError
from ..core.result import Result

ASSETS = Path(__file__).resolve().with_name("datadocs_assets")
VENDOR = ("static", "vendor")  # where the site holds the copies
VALIDATIONS = ("uncommitted", "validations")  # the results store, under the context's gx/ folder
DEFAULT_PORT = 8080  # dbt docs serve's
EXAMPLES = 3

# The URLs the Great Expectations 1.24 pages load -> the vendored file (under ASSETS).
VENDORED = {
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": "bootstrap-4.3.1/css/bootstrap.min.css",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": "bootstrap-4.3.1/js/bootstrap.min.js",
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css":
        "bootstrap-dark-1.1.0/css/bootstrap-prefers-dark.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css": "bootstrap-table-1.19.1/bootstrap-table.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js": "bootstrap-table-1.19.1/bootstrap-table.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js":
        "bootstrap-table-1.19.1/extensions/filter-control/bootstrap-table-filter-control.min.js",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css":
        "bootstrap-table-1.19.0/extensions/filter-control/bootstrap-table-filter-control.min.css",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css":
        "bootstrap-table-1.19.0/extensions/filter-control/bootstrap-table-filter-control.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css":
        "bootstrap-datepicker-1.9.0/css/bootstrap-datepicker.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js":
        "bootstrap-datepicker-1.9.0/js/bootstrap-datepicker.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css": "fontawesome-free-6.6.0/css/all.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": "popper.js-1.12.9/umd/popper.min.js",
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery-3.7.1/jquery.min.js",
}
VEGA = re.compile(r'<script src="https://cdn\.jsdelivr\.net/npm/vega(?:-lite|-embed)?@\d+"></script>\s*')
GX_ASSETS = "https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/"
TAG = re.compile(r"<(?:script|link)\b[^>]*>")
SRC = re.compile(r'\b(src|href)="([^"]+)"')
SRI = re.compile(r'\s+(?:integrity|crossorigin)="[^"]*"')
LOGO = re.compile(r'<img\b[^>]*\bsrc="' + re.escape(GX_ASSETS) + r'([^"?]+)[^"]*"[^>]*>')
CSS_LOGO = re.compile(r"url\(['\"]?" + re.escape(GX_ASSETS) + r"[^)]*\)")

WARNING_ICON = '<i class="fas fa-exclamation-triangle text-warning" aria-hidden="true"></i>'
STATUS_FAILED = re.compile(r'(<span class="h6" >Status:</span>\s*)<i class="fas fa-times text-danger"[^>]*></i>\s*Failed')
ROW_FAILED = re.compile(r'<i class="fas fa-times text-danger" ></i>')


# ---------------------------------------------------------------- severity and notes in the stored results


def _code(text: str) -> str:
    return "`" + text.replace("`", "'") + "`"


def notes_for(check) -> list[str]:
    """The markdown notes explaining a check's outcome ([] when there is nothing to explain)."""
    n = check.source_records or 0
    examples = "; ".join(_code(e) for e in check.source_examples[:EXAMPLES])
    if check.outcome == "warning":
        return [f"**Warning**, not a failure: {check.observed.splitlines()[0] if check.observed else 'unmet'} in MySQL, "
                "and every one of those records already breaks this rule in the source export.",
                f"The source export holds {n:,} record(s) breaking it" + (f", e.g. {examples}." if examples else "."),
                "The source export holds these; MySQL adds none. `etl validate --strict` makes this a failure."]
    if check.outcome == "failed":
        notes = [f"**Failed**: {check.why}." if check.why else "**Failed**."]
        if check.mysql_examples:
            notes.append("In MySQL, e.g. " + "; ".join(_code(e) for e in check.mysql_examples[:EXAMPLES]) + ".")
        if n:
            notes.append(f"The source export holds {n:,} record(s) breaking it" + (f", e.g. {examples}." if examples else "."))
        return notes
    if n:  # passed in MySQL, broken in the source
        return [f"A finding about the source: the export holds {n:,} record(s) breaking this rule"
                + (f", e.g. {examples}" if examples else "") + "; MySQL holds none."]
    return []


def annotate(results, checks) -> None:
    """Give each Great Expectations result the verdict `etl validate` reached: severity and notes."""
    by_suite: dict[str, list] = {}
    for c in checks:
        by_suite.setdefault(c.suite, []).append(c)
    for res in results:
        left = list(by_suite.get(res.suite_name, ()))
        for er in res.results:
            cfg = er.expectation_config
            rule = (cfg.meta or {}).get("rule", cfg.type)
            check = next((c for c in left if c.rule == rule and (c.outcome == "passed") == bool(er.success)), None)
            if check is None:
                continue
            left.remove(check)
            if check.outcome == "warning":
                cfg.severity = "warning"
            notes = notes_for(check)
            if notes:
                cfg.notes = notes
                cfg.meta = {**(cfg.meta or {}), "notes": {"format": "markdown", "content": notes}}


def _stored_keys(ctx, results) -> list:
    """The keys the results are stored under (this run's, one per suite)."""
    store = ctx.validation_results_store
    wanted = {(res.suite_name, res.meta["run_id"].to_tuple()) for res in results}
    return [k for k in store.list_keys()
            if (k.expectation_suite_identifier.name, k.run_id.to_tuple()) in wanted]


def publish(ctx, results, result: ValidationResult, docs: bool) -> ValidationResult:
    """etl/check/validate.py's `publish` hook: store the run's verdicts with its results and, with
    `docs`, build the data docs for them and make them truthful and offline (`finish`)."""
    from great_expectations.data_context.types.resource_identifiers import ExpectationSuiteIdentifier

    annotate(results, result.checks)
    by_key = {(r.suite_name, r.meta["run_id"].to_tuple()): r for r in results}
    keys = _stored_keys(ctx, results)
    for key in keys:
        res = by_key[(key.expectation_suite_identifier.name, key.run_id.to_tuple())]
        ctx.validation_results_store.store_validation_results(res, key, key.expectation_suite_identifier)
    if not docs:
        return result
    ctx.build_data_docs(resource_identifiers=[*keys, *(ExpectationSuiteIdentifier(name=r.suite_name) for r in results)])
    root = Path(ctx.root_directory).parent
    finish(root)
    index = docs_index(root)
    return replace(result, docs_index=str(index) if index.is_file() else None)


def validate(target, stage_dir, **options) -> ValidationResult:
    """`etl.check.validate.validate` whose stored results carry its verdicts and whose data docs say them."""
    from ..check.validate import validate as run

    return run(target, stage_dir, publish=publish, **options)


def build_docs(root: Path | None = None) -> DocsResult:
    """`etl docs`: every suite and stored result rendered, then made truthful and offline."""
    from ..check.validate import build_docs as render

    t0 = time.perf_counter()
    root = docs_root(root)
    done = render(root)
    finish(root)
    return replace(done, seconds=time.perf_counter() - t0)


# ---------------------------------------------------------------- the verdicts on the pages


def verdict(stored: dict) -> str:
    """passed | warning | failed of a stored suite result (GX's own fields, as get_max_severity_failure reads them)."""
    if stored.get("success"):
        return "passed"
    unmet = [r for r in stored.get("results", ()) if not r.get("success")]
    severities = {(r.get("expectation_config") or {}).get("severity") or "critical" for r in unmet}
    return "warning" if unmet and severities <= {"warning", "info"} else "failed"


def _stored_result(root: Path, site: Path, page: Path) -> dict | None:
    rel = page.relative_to(site / "validations").with_suffix(".json")
    path = Path(root, "gx", *VALIDATIONS, rel)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _notes_html(notes: list[str]) -> str:
    def inline(text: str) -> str:
        text = html.escape(text)
        text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
        return re.sub(r"`([^`]*)`", r"<code>\1</code>", text)

    items = "".join(f"<li>{inline(n)}</li>" for n in notes)
    return f'<ul class="etl-notes small text-muted mb-0 mt-1 pl-3">{items}</ul>'


def _mark_validation_page(text: str, stored: dict) -> str:
    if verdict(stored) != "warning":
        return text
    text = STATUS_FAILED.sub(lambda m: m.group(1) + WARNING_ICON + " Warning", text, count=1)
    rows = text.split("<tr>")
    for r in stored.get("results", ()):
        cfg = r.get("expectation_config") or {}
        if r.get("success") or cfg.get("severity") != "warning" or not cfg.get("description"):
            continue
        for i, row in enumerate(rows):  # GX writes the description as it is, or escaped
            desc = next((d for d in (cfg["description"], html.escape(cfg["description"], quote=False)) if d in row), None)
            if desc and ROW_FAILED.search(row) and "etl-notes" not in row:
                row = ROW_FAILED.sub('<i class="fas fa-exclamation-triangle text-warning" title="warning"></i>', row, count=1)
                end = row.find("</span>", row.index(desc))
                at = end + len("</span>") if end >= 0 else row.index(desc) + len(desc)
                rows[i] = row[:at] + _notes_html(cfg.get("notes") or []) + row[at:]
                break
    return "<tr>".join(rows)


def _literal_end(text: str, start: int) -> int:
    """The index after the Python list literal starting at text[start] ('[')."""
    depth, quote, i = 0, None, start
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise ValueError("unterminated literal")


def _warning_cell(cell: str) -> str:
    return ('\n                <span class="ge-index-page-table-validation-links-item" >\n                    '
            '<i class="fas fa-exclamation-triangle text-warning ge-warning-icon" title="warning"></i>\n'
            '                </span>\n            ') if "ge-failed-icon" in cell else cell


def _mark_index(text: str, root: Path, site: Path) -> str:
    out, pos = [], 0
    for m in re.finditer(r"data: (?=\[\{)", text):
        start = m.end()
        if start < pos:
            continue
        end = _literal_end(text, start)
        rows = ast.literal_eval(text[start:end])
        changed = False
        for row in rows:
            link = row.get("_table_row_link_path") if isinstance(row, dict) else None
            if not link or not link.startswith("validations/") or row.get("_validation_success_text") != "Failed":
                continue
            stored = _stored_result(root, site, site / link)
            if stored is not None and verdict(stored) == "warning":
                row["validation_success"] = _warning_cell(row.get("validation_success", ""))
                row["_validation_success_text"] = "Warning"
                changed = True
        if changed:
            out += [text[pos:start], repr(rows)]
            pos = end
    return "".join(out) + text[pos:]


# ---------------------------------------------------------------- offline


def _copy_assets(site: Path) -> Path:
    dest = site.joinpath(*VENDOR)
    for src in ASSETS.rglob("*"):
        if src.is_file() and src.name != "README.md":
            to = dest / src.relative_to(ASSETS)
            if not to.is_file() or to.stat().st_size != src.stat().st_size:
                to.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, to)
    return dest


def _rel(page: Path, target: Path) -> str:
    return Path(os.path.relpath(target, page.parent)).as_posix()


def _offline(text: str, page: Path, site: Path) -> str:
    vendor = site.joinpath(*VENDOR)

    def tag(m: re.Match) -> str:
        t = m.group(0)
        src = SRC.search(t)
        if not src or src.group(2) not in VENDORED:
            return t
        # Subresource integrity needs a CORS fetch, which a file:// page cannot make: the copy is ours.
        t = SRI.sub("", t)
        return t.replace(src.group(0), f'{src.group(1)}="{_rel(page, vendor / VENDORED[src.group(2)])}"')

    if "vegaEmbed(" not in text:
        text = VEGA.sub("", text)
    text = TAG.sub(tag, text)

    def logo(m: re.Match) -> str:
        local = site / "static" / "images" / Path(m.group(1)).name
        return m.group(0).replace(m.group(0)[m.group(0).index(GX_ASSETS):].split('"')[0], _rel(page, local)) \
            if local.is_file() else ""

    text = LOGO.sub(logo, text)
    return CSS_LOGO.sub("none", text)


def external_assets(text: str) -> list[str]:
    """The http(s) URLs a page loads as a script, stylesheet, image, font or CSS url() (not <a href> links)."""
    found = [s.group(2) for t in TAG.finditer(text) for s in [SRC.search(t.group(0))]
             if s and s.group(2).startswith(("http://", "https://"))
             and (t.group(0).startswith("<script") or "stylesheet" in t.group(0) or "preload" in t.group(0))]
    found += re.findall(r'<img\b[^>]*\bsrc="(https?://[^"]+)"', text)
    found += re.findall(r"url\(['\"]?(https?://[^)'\"]+)", text)
    found += re.findall(r"@import\s+(?:url\()?['\"]?(https?://[^'\")\s;]+)", text)
    return found


def finish(root: Path) -> Path:
    """Rewrite the built site under the context `root`: verdicts from the stored results, assets local."""
    site = docs_index(root).parent
    if not site.is_dir():
        raise ValidationError("no data docs were built", file=str(site))
    _copy_assets(site)
    for css in site.joinpath("static", "styles").glob("*.css"):
        text = css.read_text(encoding="utf-8")
        if GX_ASSETS in text:
            css.write_text(CSS_LOGO.sub("none", text), encoding="utf-8")
    for page in site.rglob("*.html"):
        if site.joinpath(*VENDOR) in page.parents:
            continue
        text = page.read_text(encoding="utf-8")
        new = _offline(text, page, site)
        if page.parent == site and page.name == "index.html":
            new = _mark_index(new, root, site)
        elif site / "validations" in page.parents:
            stored = _stored_result(root, site, page)
            if stored is not None:
                new = _mark_validation_page(new, stored)
        if new != text:
            page.write_text(new, encoding="utf-8")
    return docs_index(root)


# ---------------------------------------------------------------- open and serve


@dataclass(frozen=True)
class DocsOpened(Result):
    index: str
    opened: bool
    how: str  # the browser used, or why none was

    def __str__(self) -> str:
        if self.opened:
            return f"opened the data docs in {self.how}: {self.index}"
        return f"data docs at {self.index} ({self.how}; open that file, or `etl docs --serve`)"


def has_display() -> bool:
    """Whether a graphical browser can be shown (on Linux and BSD: an X or Wayland display)."""
    if sys.platform.startswith(("linux", "freebsd", "openbsd", "netbsd")):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def open_docs(index: Path) -> DocsOpened:
    """Open the data docs' index in the user's browser; without a display (or BROWSER), only say where it is."""
    import webbrowser

    index = Path(index).resolve()
    if not index.is_file():
        raise ValidationError("no data docs index to open (run `etl docs` or `etl validate`)", file=str(index))
    if not (os.environ.get("BROWSER") or has_display()):
        return DocsOpened(str(index), False, "no display here")
    try:
        browser = webbrowser.get()
    except webbrowser.Error:
        return DocsOpened(str(index), False, "no browser found")
    opened = browser.open(index.as_uri())
    return DocsOpened(str(index), bool(opened), getattr(browser, "name", type(browser).__name__) if opened
                      else "the browser did not start")


@dataclass(frozen=True)
class DocsServed(Result):
    url: str
    site: str
    requests: int
    seconds: float

    def __str__(self) -> str:
        return f"served the data docs at {self.url} from {self.site}: {self.requests} request(s) in {self.seconds:.0f} s"


@contextmanager
def serving(site: Path, *, port: int = 0, host: str = "127.0.0.1"):
    """Serve the folder `site` over HTTP on `host` in a daemon thread until the block ends; yields
    (base URL, a list that counts the requests)."""
    import functools
    import http.server
    import threading

    from ..core.errors import ServerError

    count: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # quiet; the count says what was asked
            count.append(self.path)

    try:
        server = http.server.ThreadingHTTPServer((host, port), functools.partial(Handler, directory=str(site)))
    except OSError as e:
        raise ServerError(f"cannot serve the data docs on {host}:{port}: {e.strerror or e}") from None
    thread = threading.Thread(target=server.serve_forever, name="datadocs", daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}/", count
    finally:
        server.shutdown()
        server.server_close()


def serve_docs(root: Path, *, port: int = DEFAULT_PORT, host: str = "127.0.0.1", echo=print, stop=None) -> DocsServed:
    """Serve the built data docs of the context `root` until Ctrl-C (or SIGTERM), or until the
    threading.Event `stop` is set."""
    site = docs_index(root).parent
    if not docs_index(root).is_file():
        raise ValidationError("no data docs to serve (run `etl docs` or `etl validate`)", file=str(site))
    t0 = time.perf_counter()
    with serving(site, port=port, host=host) as (url, count):
        echo(f"serving the data docs at {url} (index.html) from {site}; Ctrl-C stops")
        try:
            while not (stop is not None and stop.is_set()):
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
    return DocsServed(url, str(site), len(count), time.perf_counter() - t0)


def docs_root(root: Path | None = None) -> Path:
    """The context root (expectations/ of the project unless given)."""
    from ..core.config import project_root

    return Path(root) if root else gx_root(project_root())

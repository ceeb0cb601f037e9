"""The report document: every block goes both to a self-contained HTML page (inline CSS,
figures embedded as base64 PNG, no scripts or external assets) and to markdown.

Example:
    >>> doc = Doc("title")
    >>> doc.table(("a", "b"), [(1, 2.5)])
    >>> doc.render_md().splitlines()[2:4]
    ['| a | b |', '|---|---|']
    >>> "<td>2.5</td>" in doc.render_html()
    True
"""

from __future__ import annotations

import base64
import html as _html
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from matplotlib.figure import Figure

from metaloss.io import json_float as _num
from metaloss.rundir import REPORT_HTML

_CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 0;
       background: #f6f7f9; color: #1d2330; line-height: 1.45; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 32px 48px; background: #fff;
       box-shadow: 0 0 12px rgba(0,0,0,.06); }
h1 { font-size: 1.7em; margin: 0 0 4px; }
h2 { font-size: 1.3em; margin-top: 2em; border-bottom: 2px solid #e3e6eb; padding-bottom: 4px; }
h3 { font-size: 1.08em; margin-top: 1.5em; }
.sub { color: #667085; margin: 0 0 1em; font-size: .92em; }
table { border-collapse: collapse; margin: .6em 0 1em; font-size: .9em; }
th, td { border: 1px solid #dde1e7; padding: 4px 9px; text-align: left; vertical-align: top; }
th { background: #eef1f5; }
tr:nth-child(even) td { background: #fafbfc; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
code, pre { font-family: 'SFMono-Regular', Menlo, Consolas, monospace; font-size: .88em; }
pre { background: #f3f4f6; padding: 8px 12px; border-radius: 4px; white-space: pre-wrap;
      word-break: break-word; }
.formula { font-size: 1.05em; background: #eef6ee; border-left: 4px solid #4c9a52; }
figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #e3e6eb; }
figure.half { display: inline-block; width: 48%; margin-right: 1.5%; vertical-align: top; }
figcaption { color: #667085; font-size: .88em; }
.note { color: #8a5a00; background: #fff7e0; padding: 6px 10px; border-radius: 4px; }
details summary { cursor: pointer; color: #344054; margin: .5em 0; }
"""


@dataclass
class Doc:
    """A report under construction: every block goes to the HTML and the markdown."""

    title: str
    subtitle: str = ""
    html: list[str] = field(default_factory=list)
    md: list[str] = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> None:
        self.html.append(f"<h{level}>{_esc(text)}</h{level}>")
        self.md += [f"{'#' * level} {text}", ""]

    def para(self, text: str, note: bool = False) -> None:
        cls = ' class="note"' if note else ""
        self.html.append(f"<p{cls}>{_esc(text)}</p>")
        self.md += [f"> {text}" if note else text, ""]

    def code(self, text: str, formula: bool = False) -> None:
        cls = ' class="formula"' if formula else ""
        self.html.append(f"<pre{cls}>{_esc(text)}</pre>")
        self.md += ["```", text, "```", ""]

    def table(
        self,
        headers: Sequence[str],
        rows: Sequence[Sequence[Any]],
        numeric: Sequence[int] = (),
        collapsed: str | None = None,
    ) -> None:
        """A table; ``numeric`` column indices are right-aligned; ``collapsed`` folds it."""
        cells = [[_cell(v) for v in row] for row in rows]
        head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
        body = "".join(
            "<tr>"
            + "".join(
                f'<td class="num">{_esc(v)}</td>' if i in numeric else f"<td>{_esc(v)}</td>"
                for i, v in enumerate(row)
            )
            + "</tr>"
            for row in cells
        )
        table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        if collapsed is not None:
            table = f"<details><summary>{_esc(collapsed)}</summary>{table}</details>"
        self.html.append(table)
        self.md.append("| " + " | ".join(_md_cell(h) for h in headers) + " |")
        self.md.append("|" + "---|" * len(headers))
        self.md += ["| " + " | ".join(_md_cell(v) for v in row) + " |" for row in cells]
        self.md.append("")

    def mapping(
        self, items: Mapping[str, Any], headers: Sequence[str] = ("field", "value")
    ) -> None:
        self.table(headers, [(k, v) for k, v in items.items()])

    def figure(self, png: bytes | None, caption: str, half: bool = False) -> None:
        """An embedded PNG; ``half`` figures sit two to a row."""
        if png is None:
            return
        data = base64.b64encode(png).decode("ascii")
        cls = ' class="half"' if half else ""
        self.html.append(
            f'<figure{cls}><img alt="{_esc(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{_esc(caption)}</figcaption></figure>"
        )
        self.md += [f"*Figure: {caption} (embedded in {REPORT_HTML}).*", ""]

    def render_html(self) -> str:
        body = "\n".join(self.html)
        sub = f'<p class="sub">{_esc(self.subtitle)}</p>' if self.subtitle else ""
        return (
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{_esc(self.title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n<main>\n"
            f"<h1>{_esc(self.title)}</h1>\n{sub}\n{body}\n</main>\n</body>\n</html>\n"
        )

    def render_md(self) -> str:
        head = [f"# {self.title}", ""] + ([f"*{self.subtitle}*", ""] if self.subtitle else [])
        return "\n".join(head + self.md).rstrip() + "\n"


def _esc(text: Any) -> str:
    return _html.escape(str(text), quote=True)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6g}"
    if isinstance(value, dict | list | tuple):
        return json.dumps(value)
    return str(value)


def _md_cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _seconds(value: Any) -> str:
    s = _num(value)
    if math.isnan(s):
        return "?"
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.2f} h"


def _safe_figure(
    doc: Doc, draw: Callable[[], Figure | bytes | None], caption: str, half: bool = False
) -> None:
    """Add a figure (a matplotlib figure or PNG bytes, drawn by ``draw``); a loss that cannot
    be evaluated gives a note instead of no report."""
    from metaloss.plots import png_bytes

    try:
        png = draw()
        if isinstance(png, Figure):
            png = png_bytes(png)
    except Exception as exc:  # noqa: BLE001 - a figure must never take the report down
        doc.para(f"{caption}: could not be drawn ({type(exc).__name__}: {exc})", note=True)
        return
    doc.figure(png, caption, half)

"""``report.html``: report.md as one self-contained page (images embedded, table of contents, no network).

The page is rendered from the Markdown itself (``markdown-it-py``, CommonMark plus tables), so it
always has the same content as report.md. Every local image becomes a base64 ``data:`` URI;
links to the PDF/CSV/LaTeX files stay relative, so they work when the report folder is opened
from a shared drive. The page has no scripts and loads nothing from the network.
"""

from __future__ import annotations

import base64
import html
import mimetypes
import re
from pathlib import Path
from typing import Any

from markdown_it import MarkdownIt

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #1b1b1b;
       line-height: 1.45; }
nav { position: fixed; top: 0; left: 0; bottom: 0; width: 16rem; overflow-y: auto; padding: 1rem;
      background: #f4f5f7; border-right: 1px solid #d8dbe0; font-size: 0.85rem; box-sizing: border-box; }
nav ul { list-style: none; padding-left: 0.8rem; margin: 0.2rem 0; }
nav > ul { padding-left: 0; }
nav a { color: #0b4f8a; text-decoration: none; }
main { margin-left: 16rem; padding: 1rem 2rem 3rem; max-width: 82rem; }
table { border-collapse: collapse; margin: 0.6rem 0 1.2rem; font-size: 0.85rem; }
th, td { border: 1px solid #d0d4da; padding: 0.2rem 0.5rem; }
th { background: #eef0f3; }
tr:nth-child(even) td { background: #fafbfc; }
img { max-width: 100%; height: auto; border: 1px solid #e3e5e8; }
code { background: #f0f1f3; padding: 0 0.2rem; border-radius: 3px; }
@media print { nav { display: none; } main { margin-left: 0; } }
"""


def _slug(text: str, used: set[str]) -> str:
    """A unique, URL-safe id for a heading."""
    base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"
    slug, i = base, 2
    while slug in used:
        slug, i = f"{base}-{i}", i + 1
    used.add(slug)
    return slug


def _data_uri(path: Path) -> str:
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _embed_and_index(tokens: list[Any], folder: Path) -> list[tuple[int, str, str]]:
    """Embed local images as data URIs and give headings ids; return (level, id, text) of every heading."""
    headings: list[tuple[int, str, str]] = []
    used: set[str] = set()
    for i, token in enumerate(tokens):
        if token.type == "heading_open":
            text = tokens[i + 1].content
            slug = _slug(text, used)
            token.attrSet("id", slug)
            headings.append((int(token.tag[1]), slug, text))
        for child in token.children or []:
            if child.type == "image":
                source = str(child.attrGet("src") or "")
                local = folder / source
                if source and "://" not in source and local.is_file():
                    child.attrSet("src", _data_uri(local))
    return headings


def _toc(headings: list[tuple[int, str, str]]) -> str:
    """Nested list of links to the level-2 and level-3 headings."""
    lines = ["<ul>"]
    depth = 2
    for level, slug, text in headings:
        if level < 2 or level > 3:
            continue
        while depth < level:
            lines.append("<ul>")
            depth += 1
        while depth > level:
            lines.append("</ul>")
            depth -= 1
        lines.append(f'<li><a href="#{slug}">{html.escape(text)}</a></li>')
    lines += ["</ul>"] * (depth - 1)
    return "\n".join(lines)


def render_html(markdown: str, folder: Path, title: str) -> str:
    """The self-contained HTML page of ``markdown`` whose relative images live in ``folder``."""
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    tokens = md.parse(markdown)
    headings = _embed_and_index(tokens, folder)
    body = md.renderer.render(tokens, md.options, {})
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',  # no favicon request
        f"<title>{html.escape(title)}</title>", f"<style>{STYLE}</style>", "</head>", "<body>",
        f'<nav aria-label="Table of contents"><strong>Contents</strong>\n{_toc(headings)}</nav>',
        f"<main>\n{body}</main>", "</body>", "</html>", ""])


def write_html(markdown: str, folder: Path, title: str, name: str = "report.html") -> Path:
    """Write :func:`render_html` of ``markdown`` to ``folder/name``."""
    path = folder / name
    path.write_text(render_html(markdown, folder, title), encoding="utf-8")
    return path

"""Small Markdown rewrites for text that is moved into the site from elsewhere in the repository."""

from __future__ import annotations

import re

LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)")


def relink(text: str, pages: dict[str, str]) -> str:
    """Point relative links at site pages: a target (its path normalised, no ``../``) that ``pages`` maps is
    rewritten to that page; any other relative link becomes its text and the path in code, since the site only
    holds docs/ (MkDocs --strict refuses links that leave it)."""

    def repl(m: re.Match[str]) -> str:
        bang, label, target = m.groups()
        if re.match(r"[a-z]+://|mailto:|#", target):
            return m.group(0)
        path, _, anchor = target.partition("#")
        key = re.sub(r"^(\.\./)+|^\./", "", path)
        if key in pages:
            return f"{bang}[{label}]({pages[key]}{'#' + anchor if anchor else ''})"
        return f"{label} (`{key}`)"

    return LINK.sub(repl, text)


def demote(text: str, levels: int) -> str:
    """Headings ``levels`` deeper (outside code fences), so an included file nests under the page's own."""
    out, fence = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fence = not fence
        if not fence and re.match(r"#{1,6} ", line):
            line = "#" * levels + line
        out.append(line)
    return "\n".join(out) + "\n"


def strip_title(text: str) -> tuple[str, str]:
    """The first ``# `` heading and the text without it."""
    m = re.match(r"\s*# (.+)\n", text)
    return (m.group(1).strip(), text[m.end():]) if m else ("", text)

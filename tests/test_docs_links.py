"""Every relative link in the repository's Markdown resolves to a file of the repository."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = sorted(
    p for pattern in ("*.md", "docs/*.md", "solvers/*.md", "experiments/results/**/*.md") for p in REPO.glob(pattern)
)


def _generated() -> set[Path]:
    """The site pages docgen makes at build time (docs/configuration.md, ...): links to them resolve on the site."""
    sys.path.insert(0, str(REPO))
    try:
        from docgen.hooks import generated_paths
    finally:
        sys.path.remove(str(REPO))
    return {(REPO / "docs" / p).resolve() for p in generated_paths()}


GENERATED = _generated()
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_the_network_model_page_is_linked_from_the_readme():
    assert "docs/network-model.md" in {m.group(1) for m in LINK.finditer((REPO / "README.md").read_text())}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve_inside_the_repo(page):
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+://|mailto:|#", target):
            continue
        path = (page.parent / target.split("#", 1)[0]).resolve()
        assert path.is_relative_to(REPO), f"{page.name}: {target} points outside the repository"
        assert path.exists() or path in GENERATED, f"{page.name}: {target} does not exist"

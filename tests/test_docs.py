"""The Markdown files of the repository: readable on GitHub, links that lead somewhere.

Checked for every ``*.md`` in the checkout (not in ``.git``, virtual environments or
``node_modules``): a heading has a blank line above it (glued to a paragraph, many
renderers show it as text), every relative link and ``#anchor`` resolves, the README
stays short, and each page under ``docs/`` names its readers on its first line of text.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

import pytest

REPO = Path(__file__).resolve().parent.parent
SKIP_DIRS = {".git", "node_modules", "build", ".pytest_cache", ".mypy_cache"}
README_MAX_BYTES = 8 * 1024
# A page names its readers on the first line under its title ("For the technician who ...",
# or one of the readers of docs/spec.md §1 by name).
AUDIENCE = re.compile(r"^For\b|\b(technicians?|integrators?|developers?|users?|installers?)\b", re.I)

FENCE = re.compile(r"^\s{0,3}(```|~~~)")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s.*)?$")
CODE_SPAN = re.compile(r"(`+).*?\1")
EXTERNAL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")  # http:, https:, mailto:, ...


def markdown_files() -> List[Path]:
    found = []
    for path in sorted(REPO.rglob("*.md")):
        parts = path.relative_to(REPO).parts[:-1]
        if any(p in SKIP_DIRS or p.startswith(".venv") or p.endswith(".egg-info") for p in parts):
            continue
        found.append(path)
    return found


def prose_lines(path: Path) -> Iterator[Tuple[int, str]]:
    """(line number, text) of every line outside fenced code blocks."""
    fence = ""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        match = FENCE.match(line)
        if match and (not fence or match.group(1) == fence):
            fence = "" if fence else match.group(1)
            continue
        if not fence:
            yield number, line


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> Set[str]:
    seen: Dict[str, int] = {}
    out = set()
    for _, line in prose_lines(path):
        match = HEADING.match(line)
        if match:
            base = slug(match.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            out.add(base if count == 0 else f"{base}-{count}")
    return out


def links(path: Path) -> Iterator[Tuple[int, str]]:
    for number, line in prose_lines(path):
        text = CODE_SPAN.sub("", line)
        for match in INLINE_LINK.finditer(text):
            yield number, match.group(1)
        ref = REFERENCE_LINK.match(text)
        if ref:
            yield number, ref.group(1)


def ids(paths: List[Path]) -> List[str]:
    return [str(p.relative_to(REPO)) for p in paths]


ALL = markdown_files()
DOCS = [p for p in ALL if p.parent == REPO / "docs"]


def test_the_pages_exist() -> None:
    names = set(ids(ALL))
    for page in ("README.md", "docs/spec.md", "docs/technician.md", "docs/integrators.md",
                 "docs/development.md", "docs/ARCHITECTURE.md"):
        assert page in names, f"{page} is missing"


@pytest.mark.parametrize("path", ALL, ids=ids(ALL))
def test_headings_have_a_blank_line_above(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    glued = [f"{path.name}:{n}: {line!r} follows {lines[n - 2]!r}"
             for n, line in prose_lines(path)
             if HEADING.match(line) and n > 1 and lines[n - 2].strip()]
    assert not glued, "put a blank line above each heading:\n" + "\n".join(glued)


@pytest.mark.parametrize("path", ALL, ids=ids(ALL))
def test_internal_links_resolve(path: Path) -> None:
    broken = []
    for number, target in links(path):
        if EXTERNAL.match(target):
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        where = f"{path.relative_to(REPO)}:{number}: {target}"
        if not dest.exists():
            broken.append(f"{where}: no such file")
        elif REPO not in dest.parents and dest != REPO:
            broken.append(f"{where}: outside the repository")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{where}: no heading with anchor #{anchor} in {dest.name}")
    assert not broken, "fix these links:\n" + "\n".join(broken)


def test_readme_is_short() -> None:
    size = (REPO / "README.md").stat().st_size
    assert size < README_MAX_BYTES, (
        f"README.md is {size} bytes: keep it under {README_MAX_BYTES} and move detail "
        "to the page under docs/ for its readers")


@pytest.mark.parametrize("path", DOCS, ids=ids(DOCS))
def test_doc_page_says_whom_it_is_for(path: Path) -> None:
    lines = [line for _, line in prose_lines(path) if line.strip()]
    assert lines and lines[0].startswith("# "), f"{path.name}: start with a '# ' title"
    first = lines[1] if len(lines) > 1 else ""
    assert AUDIENCE.search(first), (
        f"{path.name}: the first line under the title ({first!r}) must say whom the page "
        "is for, e.g. 'For the technician who ...'")

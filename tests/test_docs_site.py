"""The documentation site builds with ``mkdocs build --strict`` (a broken link or anchor in a
page fails the build) and no internal link of the built site is broken."""

from __future__ import annotations

import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "docs" / "mkdocs" / "mkdocs.yml"


class _Page(HTMLParser):
    """The links and the element ids of one HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(values["id"])
        for name in ("href", "src"):
            if values.get(name) and tag in {"a", "link", "script", "img"}:
                self.links.append(values[name])


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(CONFIG), "-d", str(out)],
        capture_output=True,
        text=True,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"},
    )
    assert built.returncode == 0, built.stdout + built.stderr
    return out


def _target(site: Path, page: Path, link: str) -> tuple[Path, str] | None:
    """The file and fragment an internal link points to; None for external links."""
    parts = urlsplit(link)
    if parts.scheme or parts.netloc or link.startswith(("mailto:", "data:")):
        return None
    path = unquote(parts.path)
    if not path:
        return page, parts.fragment
    target = (site / path.lstrip("/")) if path.startswith("/") else (page.parent / path)
    target = target.resolve()
    if target.is_dir() or path.endswith("/"):
        target = target / "index.html"
    return target, parts.fragment


def test_every_internal_link_of_the_built_site_resolves(site: Path) -> None:
    pages = sorted(site.rglob("*.html"))
    assert len(pages) >= 25  # the pages and the runbooks
    parsed = {page.resolve(): _parse(page) for page in pages}
    broken = []
    checked = 0
    for page, html in parsed.items():
        for link in html.links:
            found = _target(site, page, link)
            if found is None:
                continue
            target, fragment = found
            checked += 1
            if not target.exists():
                broken.append(f"{page.relative_to(site)}: {link} (no {target.name})")
            elif fragment and target.suffix == ".html":
                ids = parsed[target].ids if target in parsed else _parse(target).ids
                if fragment not in ids:
                    broken.append(f"{page.relative_to(site)}: {link} (no #{fragment})")
    assert checked > 500
    assert not broken, "\n".join(broken)


def test_the_site_has_every_page_the_readme_links_to(site: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for page in ("getting-started", "concepts", "configuration", "events", "results"):
        assert f"(docs/{page}.md)" in readme
        assert (site / page / "index.html").is_file()
    for page in ("detectors", "metrics", "alerting", "operations", "scaling", "performance"):
        assert (site / page / "index.html").is_file()
    for runbook in (ROOT / "docs" / "runbooks").glob("Driftwarden*.md"):
        assert (site / "runbooks" / runbook.stem / "index.html").is_file(), runbook.stem

"""Headless Chromium (Debian's `chromium` package) for the dashboard tests: the rendered DOM and a screenshot."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest

BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome")
RENDER_BUDGET_MS = 20_000


def chromium_or_skip() -> str:
    for name in BROWSER_NAMES:
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no headless Chromium on PATH: install Debian's `chromium` package (scripts/setup-env.sh does as root)")


def _run(browser: str, profile: Path, *args: str) -> str:
    done = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--virtual-time-budget={RENDER_BUDGET_MS}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise AssertionError(f"chromium exited {done.returncode}: {done.stderr[-2000:]}")
    return done.stdout


def rendered_dom(browser: str, url: str, profile: Path) -> str:
    """The page's DOM once its scripts ran (virtual time lets its fetches finish)."""
    return _run(browser, profile, "--dump-dom", url)


def screenshot(browser: str, url: str, path: Path, profile: Path, size: str = "1400,2300") -> Path:
    _run(browser, profile, f"--window-size={size}", f"--screenshot={path}", url)
    if not path.exists() or path.stat().st_size == 0:
        raise AssertionError(f"chromium wrote no screenshot to {path}")
    return path


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    text: str = ""
    children: list[Element] = field(default_factory=list)


class _Collector(HTMLParser):
    """Elements with an id or data-* attributes, with their text (enough to read tables back)."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[Element] = []
        self.by_id: dict[str, Element] = {}
        self.all: list[Element] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs})
        if self.stack:
            self.stack[-1].children.append(element)
        self.all.append(element)
        if "id" in element.attrs:
            self.by_id[element.attrs["id"]] = element
        if tag not in {"meta", "link", "input", "br", "img", "option"}:
            self.stack.append(element)

    def handle_endtag(self, tag: str) -> None:
        while self.stack:
            if self.stack.pop().tag == tag:
                break

    def handle_data(self, data: str) -> None:
        for element in self.stack:
            element.text += data


def parse_dom(dom: str) -> _Collector:
    collector = _Collector()
    collector.feed(dom)
    return collector


def table_cells(collector: _Collector, table_id: str) -> dict[str, dict[str, Element]]:
    """A rendered table's cells: row key (data-key) -> column (data-col) -> cell."""
    out: dict[str, dict[str, Element]] = {}

    def walk(element: Element) -> None:
        for child in element.children:
            if child.tag == "tr" and "data-key" in child.attrs:
                out[child.attrs["data-key"]] = {c.attrs["data-col"]: c for c in child.children if "data-col" in c.attrs}
            walk(child)

    walk(collector.by_id[table_id])
    return out

"""Headless Chromium for the e2e tests: one launcher, screenshots in test-artifacts/."""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from playwright.sync_api import Page

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def chromium_page(extra_flags: Sequence[str] = (), **options: Any) -> Iterator["Page"]:
    """Yield a page of a fresh headless Debian Chromium, closed afterwards."""
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        flags = [*CHROMIUM_FLAGS, *extra_flags]
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=flags)
        try:
            yield browser.new_page(viewport={"width": 1440, "height": 1000}, **options)
        finally:
            browser.close()


@contextmanager
def screenshot_after(page: "Page", name: str) -> Iterator[None]:
    """Save a full-page screenshot of `page` as test-artifacts/NAME, whatever the block raised."""
    try:
        yield
    finally:
        page.screenshot(path=str(ARTIFACTS / name), full_page=True)

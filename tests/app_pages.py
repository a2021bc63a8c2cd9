"""Helpers for driving `udasa-app` pages in Chromium (the browser tests of the app)."""

from __future__ import annotations

import time


def wait_until(fn, timeout: float = 60.0, what: str = ""):
    """Poll `fn` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.time() + timeout
    while True:
        value = fn()
        if value:
            return value
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.25)


def text(page, selector: str) -> str:
    """The first match's text, or "" (never waits: the element may be replaced meanwhile)."""
    found = page.locator(selector).all_inner_texts()
    return found[0] if found else ""


def options(page, elem_id: str) -> list[str]:
    """A dropdown's option texts (opened, read, closed again)."""
    page.locator(f"#{elem_id} input").click()
    opts = page.locator(f"#{elem_id} [role=option]")
    opts.first.wait_for()
    texts = opts.all_inner_texts()
    page.keyboard.press("Escape")
    page.locator(f"#{elem_id} input").blur()
    return [t.removeprefix("✓").strip() for t in texts]  # ✓ marks the selected one


def choose(page, elem_id: str, label: str) -> None:
    """Pick the dropdown option whose text is `label` (as a person clicks it)."""
    page.locator(f"#{elem_id} input").click()
    opts = page.locator(f"#{elem_id} [role=option]")
    opts.first.wait_for()
    texts = [t.removeprefix("✓").strip() for t in opts.all_inner_texts()]
    opts.nth(texts.index(label)).click()
    page.locator(f"#{elem_id} input").blur()


def choose_many(page, elem_id: str, labels: list[str]) -> None:
    """Pick several options of a multiselect dropdown."""
    for label in labels:
        choose(page, elem_id, label)


def checked(page, elem_id: str) -> str | None:
    """The value of the checked radio in a radio group, or None."""
    loc = page.locator(f"#{elem_id} input[type=radio]:checked")
    return loc.first.get_attribute("value") if loc.count() else None


def toasts(page) -> list[str]:
    return page.locator(".toast-body").all_inner_texts()

"""Screenshots of each view, taken in Debian's chromium through Playwright (a dev tool).

    python -m app.screenshots --workspace DIR [--out docs/screenshots]

Starts the app over DIR in this process with a throw-away admin account (a random password,
never written anywhere), signs in, and saves inspector.png, rate.png, compare.png,
annotation.png and export.png. The browser tests use the same helpers. Needs `pip install playwright` and
/usr/bin/chromium (`.ci/install-browser.sh`); never `playwright install`.
"""

from __future__ import annotations

import argparse
import secrets
import socket
import sys
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
VIEWS = ("inspector", "rate", "compare", "annotation", "export")
TIMEOUT_MS = 60_000


def launch_browser(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sign_in(page, url: str, user: str, password: str) -> None:
    """Open the app and pass Gradio's login form; waits for the app's header."""
    page.goto(url)
    page.get_by_label("username").fill(user)
    page.get_by_label("password").fill(password)
    page.get_by_role("button", name="Login").click()
    page.locator("#who").get_by_text(f"signed in as {user}").wait_for(timeout=TIMEOUT_MS)


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name.capitalize()).click()


def settle(page, ms: int = 800) -> None:
    """Let pending Gradio events finish (no progress bar left) before a screenshot."""
    page.wait_for_timeout(ms)
    page.locator(".progress-text, .eta-bar").first.wait_for(state="hidden", timeout=TIMEOUT_MS)


def capture(page, out_dir: Path) -> list[Path]:
    """Visit each view, wait for its content, save `<view>.png` in `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    waits = {"inspector": "#cards .udasa-card", "rate": "#rate-progress",
             "compare": "#compare-refresh", "annotation": "#pool-progress",
             "export": "#export-file"}
    paths = []
    for view in VIEWS:
        open_tab(page, view)
        page.locator(waits[view]).first.wait_for(timeout=TIMEOUT_MS)
        if view == "export":
            page.locator("#export-go").click()
            page.locator("#export-file a, .toast-body").first.wait_for(timeout=TIMEOUT_MS)
        settle(page)
        path = out_dir / f"{view}.png"
        page.screenshot(path=str(path), full_page=True)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.screenshots", description=__doc__)
    parser.add_argument("--workspace", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    from app.auth import User, hash_password
    from app.ui import build, launch

    password = secrets.token_urlsafe(16)
    users = {"reviewer": User("reviewer", hash_password(password, rounds=4), admin=True)}
    demo, state = build(args.workspace, users)
    port = free_port()
    launch(demo, state, port=port, block=False, quiet=True)
    try:
        with sync_playwright() as p:
            browser = launch_browser(p)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            sign_in(page, f"http://127.0.0.1:{port}/", "reviewer", password)
            for path in capture(page, args.out):
                print(path)
            browser.close()
    finally:
        demo.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

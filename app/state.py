"""What every view of the app shares: the workspace, the accounts, and the helpers that turn
an expected problem into an empty state instead of a traceback.

Each handler opens the store for that request only (`Workspace`) and reads the signed-in name
from `gr.Request` (never from anything the browser sends).
"""

from __future__ import annotations

import atexit
import functools
import logging
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import gradio as gr

from app import render
from app.auth import User
from app.storage import Workspace
from evals import store_tables
from udasa.errors import UdasaError
from udasa.store_schema import as_rows

log = logging.getLogger(__name__)

PIPELINE_HINT = ("udasa run --workspace DIR", "udasa-eval run --workspace DIR")
PRIVATE = {"api_visibility": "private"}


class AppState:
    """What every handler needs: the workspace, the accounts and a scratch folder."""

    def __init__(self, workspace: str | Path, users: Mapping[str, User] | None = None):
        self.ws = Workspace(workspace)
        self.users = dict(users or {})
        self.scratch = Path(tempfile.mkdtemp(prefix="udasa-app-"))  # charts, exports
        atexit.register(shutil.rmtree, self.scratch, ignore_errors=True)

    @property
    def auth_on(self) -> bool:
        return bool(self.users)

    @property
    def admins(self) -> frozenset[str]:
        return frozenset(n for n, u in self.users.items() if u.admin)

    def user(self, request: gr.Request | None) -> str | None:
        name = getattr(request, "username", None) if request is not None else None
        return name if self.auth_on and name in self.users else None

    def is_admin(self, request: gr.Request | None) -> bool:
        """Admins (and the only user of an app without sign-in) see every rating."""
        if not self.auth_on:
            return True
        name = self.user(request)
        return name is not None and self.users[name].admin

    def locked(self, request: gr.Request | None) -> str | None:
        """The notice shown instead of an admin view (Inspector, Compare), else None."""
        if self.is_admin(request):
            return None
        return render.empty_state(
            "This view is for admins.", "It shows which method wrote which reply, u and "
            "other annotators' ratings; annotators rate blind, so they see Rate and Export.")

    def visible_ratings(self, store, request: gr.Request | None) -> list[dict]:
        """The ratings this user may see, as plain rows (every one for an admin)."""
        if self.is_admin(request):
            return as_rows(store_tables.ratings(store))
        name = self.user(request)
        return as_rows(store_tables.ratings(store, name)) if name else []

    def no_store(self) -> str:
        return render.empty_state(
            f"No store yet at {self.ws.db_path}",
            "The app reads the store that the pipeline and the evaluation harness write. "
            "Run them on this workspace first:", PIPELINE_HINT)


def guarded(*fallback: Any) -> Callable:
    """Turn UdasaError into an empty state in the first output, anything else into a short
    message (the traceback goes to the server log only)."""

    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def inner(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except UdasaError as exc:
                return (render.empty_state(str(exc)), *fallback)
            except Exception:
                log.exception("udasa-app: %s failed", fn.__name__)
                return (render.empty_state(f"Something went wrong in {fn.__name__}; the "
                                           "server log has the details."), *fallback)

        return inner

    return wrap


def short(text: str, width: int = 90) -> str:
    """A stored text as a dropdown label: one display line of at most `width` characters."""
    text = " ".join(render.plain(text).split())
    return text if len(text) <= width else text[:width - 1] + "…"


def labelled(names: list[str]) -> list[tuple[str, str]]:
    """Dropdown choices whose value is the stored name and whose label is its display text."""
    return [(render.plain(n), n) for n in names]

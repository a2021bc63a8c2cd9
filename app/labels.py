"""Display names of evaluated models: a checkpoint by its run's name and stage, a path short.

`udasa-eval run --models PATH` labels a model by the path it was given. Where that path is a
stage checkpoint the store knows (the same folder, or one whose last three parts
`<run>/<training>/stage-<k>-<name>` match), the app shows the run's label and stage as
`udasa-eval` names the workspace's own checkpoints (`cpu-demo stage 3 (exploratory)`);
another path is shown by its shortest unique tail of folder names, the whole path kept for a
tooltip. Other names (`base`, hub ids `org/model`, endpoints) are shown as they are.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import PurePath

from app.render import esc, plain
from udasa.store import Store

TAIL = 3  # checkpoints/<run>/<training>/stage-<k>-<name>: the parts that identify one


@dataclass(frozen=True)
class Label:
    text: str  # what is shown
    full: str  # the stored name (for a tooltip when it differs)

    @property
    def shortened(self) -> bool:
        return self.text != self.full

    def html(self) -> str:
        """The label as HTML, the stored name in a tooltip when the label differs from it."""
        if not self.shortened:
            return esc(self.text)
        return f"<span class='udasa-label' title='{esc(self.full)}'>{esc(self.text)}</span>"


PATHLIKE = re.compile(r"(?:[A-Za-z]:[\\/]|[/~.]|[^\s<>\"']*/[^\s<>\"']*/)[^<>\"']*")


def is_path(name: str) -> bool:
    """A local folder as given to --models: absolute, `./`, `../`, `~/`, a drive letter, or
    two or more slashes in a name without spaces or markup; `org/model` is a hub id."""
    return bool(PATHLIKE.fullmatch(name)) and ("/" in name or "\\" in name)


def _parts(path: str) -> tuple[str, ...]:
    return tuple(p for p in PurePath(path.replace("\\", "/")).parts if p not in ("/", "."))


def checkpoint_names(store: Store) -> dict[tuple[str, ...], str]:
    """The last TAIL parts of each stored checkpoint's path -> its run label and stage."""
    from evals.models import checkpoint_labels

    runs = checkpoint_labels(store)
    return {_parts(c.path)[-TAIL:]: f"{runs[c.run_id, c.train_key]} stage {c.stage} ({c.name})"
            for c in store.checkpoints() if c.path}


def _tails(paths: list[str]) -> dict[str, str]:
    """Each path's shortest tail of two or more parts that no other path in `paths` ends
    with."""
    parts = {p: _parts(p) for p in paths}
    out = {}
    for p, mine in parts.items():
        for k in range(min(2, len(mine)), len(mine) + 1):
            tail = mine[-k:]
            if not any(o != p and theirs[-k:] == tail for o, theirs in parts.items()):
                break
        out[p] = "…/" + "/".join(tail) if len(tail) < len(mine) else p
    return out


def model_labels(store: Store | None, names: Iterable[str]) -> dict[str, Label]:
    """A Label per stored model name."""
    names = list(dict.fromkeys(names))
    known = checkpoint_names(store) if store is not None else {}
    paths = [n for n in names if is_path(n)]
    tails = _tails(paths)
    out = {}
    for n in names:
        text = known.get(_parts(n)[-TAIL:]) if n in tails else None
        out[n] = Label(plain(text or tails.get(n, n)), plain(n))
    return out


def relabel(values: Iterable[str], labels: Mapping[str, Label]) -> list[str]:
    """The display text of each name (unknown names unchanged)."""
    return [labels[v].text if v in labels else v for v in values]

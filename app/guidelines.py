"""Rating guidelines: per-task instructions and anchored 1-10 scales, shown beside each item.

The shipped text is `app/guidelines.yaml`; a workspace may hold `rating-guidelines.yaml` of
the same shape, whose keys replace the shipped ones (a scale's anchors, a task's text). A
malformed file is a ConfigError naming the file and the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from app.render import esc
from udasa.errors import ConfigError
from udasa.files import read_settings_mapping

SHIPPED = Path(__file__).with_name("guidelines.yaml")
WORKSPACE_FILE = "rating-guidelines.yaml"
ANCHORS = (1, 5, 10)
SCALES = ("harmless", "helpful", "overall")


@dataclass(frozen=True)
class Scale:
    key: str
    label: str
    low: str  # the scale's 1 in a word
    high: str  # its 10
    anchors: dict[int, str]  # 1, 5, 10 -> what that score means

    @property
    def title(self) -> str:
        """The radio group's label: the scale and its two ends."""
        return f"{self.label}: 1 = {self.low} … 10 = {self.high}"


@dataclass(frozen=True)
class Guidelines:
    scales: dict[str, Scale]
    preference: str
    tasks: dict[str, str]  # task -> its instructions ("default" for any other)

    def task_text(self, task: str) -> str:
        return self.tasks.get(task) or self.tasks.get("default", "")


def _merge(base: dict, extra: Mapping) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k),
                                                                             dict) else v
    return out


def _scale(key: str, data: object, where: str) -> Scale:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: scales.{key}: expected label, low, high and anchors 1, "
                          "5, 10")
    missing = [a for a in ("label", "low", "high", *ANCHORS) if not isinstance(data.get(a), str)]
    if missing:
        raise ConfigError(f"{where}: scales.{key}: missing text for "
                          f"{', '.join(map(str, missing))}")
    return Scale(key, data["label"], data["low"], data["high"], {a: data[a] for a in ANCHORS})


def load(workspace: str | Path | None = None) -> Guidelines:
    """The shipped guidelines, with `WORKSPACE/rating-guidelines.yaml` laid over them."""
    data = read_settings_mapping(SHIPPED, "guidelines file")
    where = str(SHIPPED)
    override = Path(workspace) / WORKSPACE_FILE if workspace is not None else None
    if override is not None and override.is_file():
        data, where = _merge(data, read_settings_mapping(override, "guidelines file")), \
            str(override)
    scales = data.get("scales") or {}
    tasks = data.get("tasks") or {}
    if not isinstance(scales, Mapping) or not isinstance(tasks, Mapping):
        raise ConfigError(f"{where}: scales and tasks must be mappings")
    if not all(isinstance(v, str) for v in tasks.values()):
        raise ConfigError(f"{where}: tasks: each task's guideline must be text")
    if not isinstance(data.get("preference"), str):
        raise ConfigError(f"{where}: preference: expected text")
    return Guidelines({k: _scale(k, scales.get(k), where) for k in SCALES},
                      data["preference"], {str(k): v for k, v in tasks.items()})


def html(g: Guidelines, task: str, pair: bool) -> str:
    """The panel beside an item: the task's instructions, then the anchored scales (scores)
    or the preference rule (pairs)."""
    head = f"<div class='udasa-head'>Guidelines: {esc(task)}</div><p>{esc(g.task_text(task))}</p>"
    if pair:
        return f"<div class='udasa-guide'>{head}<p>{esc(g.preference)}</p></div>"
    rows = "".join(
        f"<tr><th scope='rowgroup' colspan='2'>{esc(s.label)}</th></tr>" + "".join(
            f"<tr><td class='num'>{a}</td><td>{esc(s.anchors[a])}</td></tr>" for a in ANCHORS)
        for s in g.scales.values())
    return (f"<div class='udasa-guide'>{head}<table class='udasa-scores udasa-anchors'>{rows}"
            "</table></div>")

"""The paper's Table 3 (docs/method.md §3): its four replies to "Briefly explain why water is
wet." scored by the configured scorers and fused as configured, beside the paper's values.

The replies and the paper's values ship as data (`resources/paper/table3.json`, with their
source). Each reply is scored within the group of four, as the paper did, so U_sem is each
reply's dissimilarity to the other three (Eq. 1-2, per response). Besides our scores, Eq. 5-6
(with the configured fusion) is applied to the paper's own axis values, to show how far the
listed u departs from the formula.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from scipy.stats import spearmanr

from udasa.config import AXES, SCORING_FIELDS, RunConfig
from udasa.errors import ConfigError, DataError
from udasa.files import write_json, write_text
from udasa.fusion import fuse

TABLE3_FILE = Path(__file__).resolve().parent / "resources" / "paper" / "table3.json"
PAPER_COLUMNS = {"sem": "U_sem", "fact": "U_fact", "val": "U_val"}


@dataclass(frozen=True)
class PaperTable3:
    source: str
    prompt: str
    rows: list[dict]  # reply, U_sem, U_fact, U_val, u, human


@dataclass
class Table3Row:
    reply: str
    ours: dict[str, float]  # per axis, as scored here
    u: float  # Eq. 5-6 over `ours`, configured fusion
    paper: dict[str, float]  # per axis, as listed
    paper_u: float  # as listed
    paper_u_formula: float  # Eq. 5-6 (configured fusion) over the paper's axis values
    human: float  # the paper's human column


@dataclass
class Table3:
    source: str
    prompt: str
    scorers: dict[str, str]  # axis -> scorer name and version
    fusion: str
    rows: list[Table3Row]
    rho_ours: float  # Spearman(u here, human)
    rho_paper: float  # Spearman(listed u, human)


def load_paper(path: Path = TABLE3_FILE) -> PaperTable3:
    """The paper's Table 3 from its data file; a missing or malformed field names the file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        rows = data["rows"]
        for i, row in enumerate(rows):
            for key in ("reply", *PAPER_COLUMNS.values(), "u", "human"):
                if key not in row:
                    raise DataError(f"{path}: rows[{i}] has no {key!r}")
        return PaperTable3(data["source"], data["prompt"], rows)
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise DataError(f"{path}: not a Table 3 data file ({type(e).__name__}: {e})") from None


def read_table3(path: Path) -> Table3:
    """A Table 3 written by `write` (its JSON)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return Table3(**{**data, "rows": [Table3Row(**r) for r in data["rows"]]})


def _rho(x: list[float], y: list[float]) -> float:
    if len(set(x)) < 2 or len(set(y)) < 2:
        return math.nan
    return float(spearmanr(x, y).statistic)


def score_table3(cfg: RunConfig, paper: PaperTable3 | None = None) -> Table3:
    """Score the paper's replies with `cfg.scoring`, fuse with `cfg.fusion`, compare."""
    from udasa.scorers import make_scorer

    paper = paper or load_paper()
    replies = [r["reply"] for r in paper.rows]
    ours: dict[str, list[float]] = {}
    scorers = {}
    for axis in AXES:  # one at a time: the first that cannot load is the one named
        scorer = make_scorer(axis, cfg.scoring.for_axis(axis))
        scorers[axis] = f"{scorer.name} ({scorer.version})"
        try:
            ours[axis] = [s.value for s in scorer.score([(paper.prompt, replies)])[0]]
        except OSError as e:  # a model that is neither local nor reachable on the hub
            model = cfg.scoring.for_axis(axis).model
            raise ConfigError(f"scoring.{SCORING_FIELDS[axis]}: cannot load {scorer.name} model "
                              f"{model!r} ({' '.join(str(e).split())[:160]})") from None
    rows = []
    for i, row in enumerate(paper.rows):
        mine = {axis: float(ours[axis][i]) for axis in AXES}
        listed = {axis: float(row[col]) for axis, col in PAPER_COLUMNS.items()}
        rows.append(Table3Row(row["reply"], mine, fuse(mine, cfg.fusion)[0], listed,
                              float(row["u"]), fuse(listed, cfg.fusion)[0], float(row["human"])))
    human = [r.human for r in rows]
    f = cfg.fusion
    fusion = f"{f.method} (T = {f.temperature})" if f.method == "softmax" else f.method
    return Table3(paper.source, paper.prompt, scorers, f"{fusion}, axes {', '.join(f.axes)}",
                  rows, _rho([r.u for r in rows], human), _rho([r.paper_u for r in rows], human))


def to_markdown(t: Table3) -> str:
    """The table as markdown: ours beside the paper's, per axis, then u and the human column."""
    head = ["reply", *[f"{PAPER_COLUMNS[a]} ours / paper" for a in AXES], "u ours",
            "u paper (listed)", "Eq. 5-6 on paper's U", "human (paper)"]
    lines = [f"# Table 3: \"{t.prompt}\"", "",
             f"Paper's values: {t.source}", "",
             "Scorers: " + "; ".join(f"{a}: {s}" for a, s in t.scorers.items())
             + f". Fusion: {t.fusion}.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in t.rows:
        cells = [r.reply, *[f"{r.ours[a]:.2f} / {r.paper[a]:.2f}" for a in AXES],
                 f"{r.u:.2f}", f"{r.paper_u:.2f}", f"{r.paper_u_formula:.2f}", f"{r.human:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    rho = (f"Spearman with the human column: ours {t.rho_ours:+.2f}, the paper's listed u "
           f"{t.rho_paper:+.2f} (n = {len(t.rows)} replies: an illustration, not a test).")
    lines += ["", rho]
    return "\n".join(lines) + "\n"


def write(t: Table3, out_dir: Path) -> tuple[Path, Path]:
    """`table3.md` and `table3.json` in `out_dir`."""
    md, js = out_dir / "table3.md", out_dir / "table3.json"
    write_text(md, to_markdown(t))
    write_json(js, asdict(t))
    return md, js

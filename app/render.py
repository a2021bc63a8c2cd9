"""HTML for the views. Model output is untrusted: every stored string passes through `esc`.

Nothing here emits markup taken from the store: texts are HTML-escaped (so `<script>`, an
`<img onerror>` and a markdown `[x](javascript:...)` link stay inert text) and shown in
`white-space: pre-wrap` blocks; numbers are formatted by us. Gradio's HTML component sets
the result as the element's content and does not interpret markdown. Bidirectional controls
(an RTL override can make a reply or a model name read backwards, or flip the score beside
it) are shown as visible tags such as `[U+202E]`: `plain` does that for texts that Gradio
shows itself (dropdown labels, table cells, captions), `esc` for our HTML.
"""

from __future__ import annotations

import html
import math
import numbers
import re
from collections.abc import Mapping, Sequence

import pandas as pd

from udasa.axes import axes

CSS = """
.udasa-cards {display: flex; gap: 10px; overflow-x: auto; align-items: stretch;}
.udasa-card {flex: 1 1 0; min-width: 220px; border: 1px solid #d0d7de; border-radius: 8px;
  padding: 10px; background: #fff;}
.udasa-card.chosen {border: 2px solid #1a7f37; background: #f0fff4;}
.udasa-card.rejected {border: 2px solid #cf222e; background: #fff5f5;}
.udasa-head {font-weight: 600; margin-bottom: 6px;}
.udasa-badge {display: inline-block; padding: 1px 6px; border-radius: 10px; font-size: 12px;
  color: #fff; margin-left: 6px;}
.udasa-badge.chosen {background: #1a7f37;} .udasa-badge.rejected {background: #cf222e;}
.udasa-text {white-space: pre-wrap; word-break: break-word; font-family: ui-monospace,
  monospace; font-size: 13px; background: #f6f8fa; border-radius: 6px; padding: 6px;
  max-height: 260px; overflow-y: auto;}
.udasa-prompt {white-space: pre-wrap; word-break: break-word; font-size: 15px; padding: 8px;
  border-left: 4px solid #0969da; background: #f6f8fa; margin-bottom: 8px;}
.udasa-scores {width: 100%; font-size: 12px; margin-top: 6px; border-collapse: collapse;}
.udasa-scores td, .udasa-scores th {padding: 1px 4px;}
.udasa-scores th {text-align: left;} .udasa-premise {margin-bottom: 8px;}
.udasa-premise .udasa-scores {width: auto; margin: 6px 0;}
.udasa-premise .udasa-scores td, .udasa-premise .udasa-scores th {padding: 1px 12px 1px 4px;} .udasa-scores td.num {text-align: right;
  font-variant-numeric: tabular-nums;}
.udasa-empty {border: 1px dashed #8c959f; border-radius: 8px; padding: 16px; color: #57606a;
  background: #fafbfc;}
.udasa-empty b {color: #24292f;}
.udasa-empty code {background: #eaeef2; padding: 1px 4px; border-radius: 4px;}
.udasa-label {text-decoration: underline dotted; cursor: help;}
.udasa-names ul {margin: 4px 0 0 18px;} .udasa-names {font-size: 13px; color: #57606a;}
.udasa-table {overflow-x: auto; max-height: 640px; overflow-y: auto;}
.udasa-table table {border-collapse: collapse; font-size: 13px; width: 100%;}
.udasa-table th {white-space: nowrap; text-align: left; padding: 4px 8px;
  border-bottom: 2px solid #d0d7de; position: sticky; top: 0; background: #fff;}
.udasa-table td {padding: 4px 8px; border-bottom: 1px solid #eaeef2; vertical-align: top;}
.udasa-table td.num {text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums;}
.udasa-table td.text {min-width: 220px;}
.udasa-caption {font-size: 13px; color: #57606a; margin: 4px 0;}
.udasa-table td.text div {white-space: pre-wrap; word-break: break-word; max-height: 12em;
  overflow-y: auto;}
.udasa-guide {border: 1px solid #d0d7de; border-radius: 8px; padding: 10px; background: #fff;
  font-size: 13px;}
.udasa-guide p {margin: 4px 0 8px;}
.udasa-anchors th {padding-top: 6px;} .udasa-anchors td.num {width: 2em; font-weight: 600;}
.udasa-active {box-shadow: inset 0 0 0 2px #0969da !important; border-radius: 6px;}
"""


# LRE RLE PDF LRO RLO and LRI RLI FSI PDI: the controls that reorder the text after them
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")


def plain(value: object) -> str:
    """A stored string as display text: bidirectional controls made visible (`[U+202E]`)."""
    return _BIDI.sub(lambda m: f"[U+{ord(m.group()):04X}]", "" if value is None else str(value))


def esc(value: object) -> str:
    """HTML-escape any value (quotes too), bidirectional controls made visible."""
    return html.escape(plain(value), quote=True)


def num(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}f}"


def empty_state(title: str, hint: str = "", commands: Sequence[str] = ()) -> str:
    """A friendly box instead of a table or traceback; `commands` shown as code."""
    cmds = "".join(f"<br><code>{esc(c)}</code>" for c in commands)
    return (f"<div class='udasa-empty'><b>{esc(title)}</b>"
            f"{'<br>' + esc(hint) if hint else ''}{cmds}</div>")


def prompt_block(prompt: str) -> str:
    return f"<div class='udasa-prompt'>{esc(prompt)}</div>"


def text_block(text: str) -> str:
    return f"<div class='udasa-text'>{esc(text)}</div>"


def reply_cards(replies: Sequence[Mapping], chosen: set[str], rejected: set[str]) -> str:
    """Side-by-side cards: text, U_sem / U_fact / U_val, fusion weights and u per reply.

    Each reply mapping holds response_id, index, text, scores {axis: U}, weights {axis: w}
    (empty when unscored) and u (None when unscored).
    """
    cards = []
    for r in replies:
        rid = r["response_id"]
        role = "chosen" if rid in chosen else "rejected" if rid in rejected else ""
        badge = (f"<span class='udasa-badge {role}'>{role.upper()}</span>" if role else "")
        rows = "".join(
            f"<tr><td>{esc(a.label)}</td><td class='num'>{num(r['scores'].get(a.key))}</td>"
            f"<td>w</td><td class='num'>{num(r['weights'].get(a.key))}</td></tr>"
            for a in axes())
        rows += f"<tr><td><b>u</b></td><td class='num'><b>{num(r['u'])}</b></td></tr>"
        cards.append(
            f"<div class='udasa-card {role}' data-response-id='{esc(rid)}'>"
            f"<div class='udasa-head'>Response {int(r['index']) + 1}{badge}</div>"
            f"{text_block(r['text'])}<table class='udasa-scores'>{rows}</table></div>")
    return f"<div class='udasa-cards'>{''.join(cards)}</div>"


def side_by_side(prompt: str, columns: Sequence[tuple[str, str]],
                 titles: Sequence[str] | None = None) -> str:
    """A prompt above two or more labelled texts in columns; `titles`: a tooltip per label."""
    tips = [f" title='{esc(t)}'" if t else "" for t in (titles or [""] * len(columns))]
    cols = "".join(f"<div class='udasa-card'><div class='udasa-head'{tip}>{esc(label)}</div>"
                   f"{text_block(text)}</div>" for (label, text), tip in zip(columns, tips))
    return f"{prompt_block(prompt)}<div class='udasa-cards'>{cols}</div>"


CELL_CHARS = 5000  # a text cell shows this much (a table lays out slowly around 1 MB words)


def _cell_text(value: object) -> str:
    text = plain(value)
    if len(text) <= CELL_CHARS:
        return esc(text)
    return (f"{esc(text[:CELL_CHARS])}<i> … {len(text) - CELL_CHARS:,} more characters (the "
            "Export tab has them all)</i>")


def _cell(value: object, text: bool, digits: int) -> str:
    if text:
        return f"<td class='text'><div>{_cell_text(value)}</div></td>"
    if isinstance(value, bool) or not isinstance(value, numbers.Number):
        return f"<td>{esc('' if value is None else value)}</td>"
    if isinstance(value, numbers.Integral):
        return f"<td class='num'>{int(value)}</td>"
    return f"<td class='num'>{num(float(value), digits)}</td>"


def html_table(table, text_columns: Sequence[str] = (), digits: int = 3,
               elem_class: str = "udasa-table") -> str:
    """A pandas DataFrame as an HTML table: headers kept on one line, numbers right-aligned,
    `text_columns` in full (up to CELL_CHARS) in cells that wrap and scroll; every value
    escaped."""
    head = "".join(f"<th scope='col'>{esc(c)}</th>" for c in table.columns)
    body = "".join(
        "<tr>" + "".join(_cell(None if _missing(v) else v, c in text_columns, digits)
                         for c, v in zip(table.columns, row)) + "</tr>"
        for row in table.itertuples(index=False))
    return (f"<div class='udasa-table {elem_class}'><table><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table></div>")


def _missing(value: object) -> bool:
    """None, NaN, pandas' NA."""
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False

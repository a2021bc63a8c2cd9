"""RAIN's prompts (udasa/resources/baselines/rain/): the generation prompt with its optional
few-shot dialogue, the self-evaluation prompt of each task with its optional few-shot
examples, and the value of a self-evaluation.

As the authors (SafeAILab/RAIN, HH/main.py `getv`, truth/main.py `getv`): the model judges
the reply so far (with its look-ahead) in both option orders, "(A) good / (B) bad" and
"(A) bad / (B) good" (truthfulness: one "Yes"/"No" question), and each order votes for the
option it gives the higher probability; the value is ((A + B) / 2 - 0.5) * 2, i.e. -1, 0 or 1
(one order: -1 or 1). `value: soft` uses 2 P(good) - 1 instead (see docs/baselines.md).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from pathlib import Path

import yaml

from udasa.errors import ConfigError

TASKS = ("harmless", "adversarial", "helpful", "truthful", "positive")
PROMPT_FILE = {"adversarial": "harmless"}  # the authors' adv/f2.txt is HH's red-team prompt
BUNDLED = "bundled"  # an examples setting: the bundled file of the task (or none)


def resources() -> Path:
    from udasa.baselines import RESOURCES

    return RESOURCES / "rain"


@functools.cache
def task_prompt(task: str) -> dict:
    """The self-evaluation prompt of a task (resources/baselines/rain/<task>.yaml)."""
    if task not in TASKS:
        raise ConfigError(f"rain.task: {task!r} is not one of {', '.join(TASKS)}")
    path = resources() / f"{PROMPT_FILE.get(task, task)}.yaml"
    return {"options": ["A", "B"], "orders": 2} | yaml.safe_load(path.read_text("utf-8"))


@functools.cache
def read_examples(path: str) -> str:
    """A few-shot file's text: '#' comment lines at its top dropped, then stripped."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    while lines and lines[0].startswith("#"):
        lines.pop(0)
    return "\n".join(lines).strip()


def examples_path(setting: str, bundled: str | None, field: str) -> Path | None:
    """The few-shot file a setting names: '' none; 'bundled' the task's own file under
    resources/baselines/rain/examples/ (none where the task has none); else a path."""
    if not setting or (setting == BUNDLED and not bundled):
        return None
    path = resources() / "examples" / bundled if setting == BUNDLED else Path(setting)
    if not path.is_file():
        raise ConfigError(f"{field}: {path}: file not found")
    return path


def examples_text(setting: str, bundled: str | None, field: str) -> str:
    path = examples_path(setting, bundled, field)
    return read_examples(str(path)) if path else ""


def eval_texts(tok, prompt: dict, question: str, response: str, examples: str = ""
               ) -> tuple[list[str], list[int]]:
    """The self-evaluation prompts for `response` to `question` (one per option order, each
    ending right before the option) and, per prompt, which option is the good one."""
    from udasa.scorers.lm_options import chat_prefix

    head = prompt["instruction"].strip() + "\n\n" + (examples + "\n\n" if examples else "")
    orders = ((prompt.get("good"), prompt.get("bad"), 0),
              (prompt.get("bad"), prompt.get("good"), 1))[:prompt["orders"]]
    texts = []
    for option_a, option_b, _ in orders:
        case = prompt["case"].format(prompt=question, response=response or "(empty)",
                                     option_a=option_a, option_b=option_b)
        texts.append(chat_prefix(tok, head + case.strip(), prompt["answer_prefix"]))
    return texts, [good for _, _, good in orders]


def vote_value(pairs: Sequence[tuple[float, float]], hard: bool = True) -> float:
    """RAIN's value from each option order's (P(good option), P(bad option)): hard, the
    authors' vote, each order voting 1 when P(good) > P(bad) (else 0), value
    2 * mean(votes) - 1; soft, 2 * mean(P(good) / (P(good) + P(bad))) - 1."""
    if hard:
        votes = [1.0 if good > bad else 0.0 for good, bad in pairs]
    else:
        votes = [good / (good + bad) for good, bad in pairs]
    return 2 * sum(votes) / len(votes) - 1


# the generation prompt ---------------------------------------------------------------------
def dialogue_turns(examples: str) -> list[dict]:
    """A few-shot dialogue ("Human: ..." / "Assistant: ..." turns, lines before the first turn
    a header) as chat messages; the header is left out."""
    turns = re.split(r"^(Human|Assistant):", examples, flags=re.MULTILINE)[1:]
    return [{"role": "user" if who == "Human" else "assistant", "content": said.strip()}
            for who, said in zip(turns[::2], turns[1::2], strict=True)]


def head_ids(tok, prompt: str, examples: str = "") -> list[int]:
    """The prompt as the model sees it, after the few-shot dialogue `examples` if any: its
    chat template (the examples as earlier turns), else a plain dialogue format (the examples
    as they are, then a blank line)."""
    if tok.chat_template:
        messages = [*dialogue_turns(examples), {"role": "user", "content": prompt}]
        return tok.apply_chat_template(messages, add_generation_prompt=True,
                                       return_dict=True)["input_ids"]
    text = dialogue_format().format(prompt=prompt)
    return tok((examples + "\n\n" if examples else "") + text,
               add_special_tokens=True)["input_ids"]


@functools.cache
def dialogue_format() -> str:
    return (resources() / "dialogue.txt").read_text(encoding="utf-8").rstrip("\n")


@functools.cache
def turn_marker() -> str:
    """The start of the user's turn in the plain dialogue format ("\\nHuman:")."""
    return "\n" + dialogue_format().split("{prompt}")[0].strip()


def stop_text(text: str) -> int | None:
    """Where a base model starts the next dialogue turn (the answer ends there)."""
    i = text.find(turn_marker())
    return i if i >= 0 else None

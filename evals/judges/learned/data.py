"""The human labels the learned judges learn from, read from the shared datasets folder.

* TruthfulQA: ``finetune_truth.jsonl.gz`` / ``finetune_info.jsonl.gz`` (the labelled answers
  GPT-judge and GPT-info were fine-tuned on) and ``TruthfulQA.csv`` (reference answers).
* HH-RLHF test pairs (harmless-base, helpful-base), split by prompt: :func:`hh_part` puts each
  first Human turn in ``train`` (the judges learn from it) or ``eval`` (the evaluation tasks and
  the validation draw from it), by a hash of the prompt, so the split is stable and disjoint.
* IMDB subset: train / test reviews with their labels.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import re
import tarfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from udasa.data import data_dir
from udasa.errors import DataError
from udasa.models import file_sha256

HH_EVAL_SHARE = 0.3  # share of HH prompts kept for evaluation (never trained on)
_LAST_ASSISTANT = re.compile(r"\n\nAssistant:(.*)\Z", re.DOTALL)
_FIRST_HUMAN = re.compile(r"\A\s*Human:(.*?)(?=\n\nAssistant:|\Z)", re.DOTALL)
_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)


def shared_file(rel: str, root: Path | None = None) -> Path:
    path = (root or data_dir()) / rel
    if not path.is_file():
        raise DataError(f"{path}: dataset not found; set UDASA_DATA_DIR to the shared data folder")
    return path


def files_hash(paths: list[Path]) -> str:
    """One hash over the training files' contents (part of every judge's cache key)."""
    return hashlib.sha256("".join(file_sha256(p) for p in paths).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Labelled:
    question: str
    answer: str
    label: int  # 1: the human label said yes (true / informative)


def labelled_answers(kind: str, root: Path | None = None) -> list[Labelled]:
    """TruthfulQA's human-labelled answers, ``kind`` "truth" or "info"."""
    path = shared_file(f"truthfulqa/finetune_{kind}.jsonl.gz", root)
    out = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            try:
                row = json.loads(line)
                q, rest = row["prompt"].split("\nA: ", 1)
                answer = rest.rsplit("\n", 1)[0]
                out.append(Labelled(q.removeprefix("Q: ").strip(), answer.strip(),
                                    int(row["completion"].strip() == "yes")))
            except (ValueError, KeyError, AttributeError) as err:
                raise DataError(f"{path}: line {n}: not a labelled answer ({err})") from None
    return out


def references(root: Path | None = None) -> dict[str, tuple[list[str], list[str]]]:
    """question -> (correct reference answers, incorrect reference answers)."""
    path = shared_file("truthfulqa/TruthfulQA.csv", root)
    out = {}
    with open(path, encoding="utf-8-sig", newline="") as f:
        for row in csv.DictReader(f):
            split = [[a.strip() for a in row[c].split(";") if a.strip()]
                     for c in ("Correct Answers", "Incorrect Answers")]
            best = row.get("Best Answer", "").strip()
            correct = split[0] + ([best] if best and best not in split[0] else [])
            out[row["Question"].strip()] = (correct, split[1])
    return out


def hh_part(prompt: str, eval_share: float = HH_EVAL_SHARE) -> str:
    """``eval`` or ``train`` for an HH prompt (first Human turn), by a stable hash of its text."""
    h = int(hashlib.sha1(prompt.strip().encode("utf-8")).hexdigest()[:8], 16)
    return "eval" if h / 0xFFFFFFFF < eval_share else "train"


@dataclass(frozen=True)
class Pair:
    prompt: str    # first Human turn (the split key)
    context: str   # the dialogue before the final Assistant turn
    chosen: str
    rejected: str


def hh_pairs(subset: str, part: str | None = None, root: Path | None = None) -> list[Pair]:
    """HH-RLHF test pairs of ``subset`` (harmless / helpful) whose prompt is in ``part``."""
    path = shared_file(f"hh-rlhf/{subset}-base/test.jsonl.gz", root)
    out = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            try:
                row = json.loads(line)
                c, r = (_LAST_ASSISTANT.search(row[k]) for k in ("chosen", "rejected"))
                first = _FIRST_HUMAN.search(row["chosen"])
            except (ValueError, KeyError, TypeError) as err:
                raise DataError(f"{path}: line {n}: not an HH pair ({err})") from None
            if not (c and r and first) or c.group(1).strip() == r.group(1).strip():
                continue
            prompt = first.group(1).strip()
            if part is None or hh_part(prompt) == part:
                out.append(Pair(prompt, row["chosen"][:c.start()], c.group(1).strip(),
                                r.group(1).strip()))
    return out


@cache
def hh_train_prompts(root: Path | None = None) -> frozenset[str]:
    """Every HH prompt the harmlessness / helpfulness judges train on (to keep out of evals)."""
    return frozenset(p.prompt for s in ("harmless", "helpful")
                     for p in hh_pairs(s, "train", root))


def imdb(split: str, root: Path | None = None) -> tuple[list[str], list[int]]:
    """(reviews, labels 1 = positive) of the IMDB subset's ``split`` (train / test)."""
    path = shared_file("imdb/aclImdb_subset5k.tar.gz", root)
    texts, labels = [], []
    pattern = re.compile(rf"(?:^|/){split}/(pos|neg)/\d+_\d+\.txt$")
    with tarfile.open(path, "r:gz") as tar:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            m = pattern.search(member.name)
            if m and member.isfile():
                raw = tar.extractfile(member).read().decode("utf-8", errors="replace")
                texts.append(_BR.sub(" ", raw).strip())
                labels.append(int(m.group(1) == "pos"))
    if not texts:
        raise DataError(f"{path}: no {split}/pos or {split}/neg reviews")
    return texts, labels

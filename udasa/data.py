"""Prompt sources: the built-in set, local files (JSON, JSONL, CSV, Parquet, gzip, aclImdb)
and Hugging Face datasets, turned into `Prompt` records.

A malformed source raises `DataError` naming the file and the line, row or column at fault.
A bad row (empty or non-string prompt, duplicate text) is skipped, logged and listed in
`LoadResult.skipped`.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
import os
import re
import tarfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from udasa.datasets import Source, data_dir, resolve, source_for
from udasa.errors import DataError
from udasa.records import LoadResult, Prompt, Skip, content_key

__all__ = ["BUILTIN_PATH", "TEXT_COLUMNS", "data_dir", "load_prompts"]

log = logging.getLogger(__name__)

BUILTIN_PATH = Path(__file__).parent / "resources" / "prompts" / "builtin.jsonl"
TEXT_COLUMNS = ("prompt", "text", "question", "instruction", "goal", "query")
_HF_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(?::[\w.-]+)?$")
_FILE_SUFFIXES = (".json", ".jsonl", ".csv", ".parquet", ".gz", ".tgz")
_HUMAN_TURN = re.compile(r"(?:^|\n\n)Human:(.*?)(?=\n\n(?:Human|Assistant):|\Z)", re.DOTALL)
_IMDB_FILE = re.compile(r"(?:^|/)(train|test)/(pos|neg)/(\d+)_(\d+)\.txt$")
_LOGGED_SKIPS = 20  # skips logged one by one; the rest are counted in one summary line
_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)
MAX_PROMPT_CHARS = 1_000_000  # a longer "prompt" is a broken file, not a prompt


@dataclass(frozen=True)
class _Row:
    """One candidate prompt before validation: raw value, where it came from, labels."""

    origin: str
    value: Any
    category: str = ""
    meta: dict[str, Any] | None = None
    problem: str = ""  # set when the row is unusable whatever its value


def load_prompts(
    source: str | os.PathLike[str],
    *,
    limit: int | None = None,
    column: str | None = None,
    split: str = "train",
    sample: str = "first",
    seed: int = 0,
    imdb_prefix_words: int = 8,
) -> LoadResult:
    """Load prompts from "builtin", a local file/folder, a named data set (`udasa.datasets`:
    `alpaca`, `hh-rlhf/harmless`, `truthfulqa`, `imdb`, `advbench`, ...), or a Hugging Face id
    (`owner/name[:config]`).

    A relative path not found from the working directory is also looked up under `data_dir()`.
    A named data set fixes its own split, except `imdb`, which takes `split`.
    `limit` keeps the first N prompts after skips (`sample="first"`), or N drawn from all of
    them (`sample="seeded"`, see :func:`seeded_sample`), listed in source order.
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    if sample not in ("first", "seeded"):
        raise ValueError(f"sample must be 'first' or 'seeded', got {sample!r}")
    source = os.fspath(source)
    name, label, rows = _dispatch(
        source, column=column, split=split, prefix_words=imdb_prefix_words
    )
    if sample == "first" or limit is None:
        return _collect(rows, source=name, limit=limit, where=label)
    result = _collect(rows, source=name, limit=None, where=label)
    result.prompts = seeded_sample(result.prompts, limit, seed)
    return result


def seeded_sample(prompts: list[Prompt], limit: int, seed: int) -> list[Prompt]:
    """`limit` of `prompts`, in their order: those whose sha256 of (seed, text) is lowest.

    The draw depends on the seed and the texts alone, so it is the same on every machine and
    Python version, whatever the file order; prompts added to a source displace a sampled
    one only where they rank lower."""
    rank = sorted(range(len(prompts)),
                  key=lambda i: content_key("data.sample", str(seed), prompts[i].text))
    keep = set(rank[:limit])
    return [p for i, p in enumerate(prompts) if i in keep]


# ---------------------------------------------------------------- dispatch


def _dispatch(
    source: str, *, column: str | None, split: str, prefix_words: int
) -> tuple[str, str, Iterable[_Row]]:
    """Pick the reader for `source`; returns (Prompt.source value, label for errors, rows)."""
    if source == "builtin":
        if not BUILTIN_PATH.is_file():
            raise DataError(f"built-in prompt set is missing: {BUILTIN_PATH}")
        label = str(BUILTIN_PATH)
        rows = _records_to_rows(*_read_jsonl(BUILTIN_PATH), label=label, column=column)
        return "builtin", label, rows
    path = Path(source).expanduser()
    src = None if path.exists() else source_for(source)
    if src is not None and source not in (src.name, src.mirror) \
            and not src.split_from_caller and split != src.split:  # a hub id, another split
        return f"hf:{source}", f"hf:{source}", _load_hf(source, split=split, column=column,
                                                        mirror=src)
    if src is not None:
        found = resolve(source, split=split)
        if found.path is None:
            columns, records = found.records()
            rows = _records_to_rows(columns, _numbered(records, found.origin),
                                    label=found.origin, column=column, prefix_words=prefix_words)
            return found.origin, found.origin, rows
        return (f"file:{found.path}", str(found.path),
                _load_path(found.path, column=column, split=split, prefix_words=prefix_words))
    path = _local_path(source)
    if path is None:
        if _HF_ID.match(source) and not source.lower().endswith(_FILE_SUFFIXES):
            return f"hf:{source}", f"hf:{source}", _load_hf(source, split=split, column=column)
        raise DataError(f"no such file or folder: {Path(source).expanduser().absolute()}")
    rows = _load_path(path, column=column, split=split, prefix_words=prefix_words)
    return f"file:{path}", str(path), rows


def _local_path(source: str) -> Path | None:
    """The existing local path `source` names (from cwd, else under data_dir()), or None."""
    path = Path(source).expanduser()
    if path.exists():
        return path.resolve()
    if not path.is_absolute() and (data_dir() / path).exists():
        return (data_dir() / path).resolve()
    return None


def _load_path(path: Path, *, column: str | None, split: str, prefix_words: int) -> Iterable[_Row]:
    """Read a local file or folder, choosing the format by extension or layout."""
    if path.is_dir():
        return _load_imdb_dir(path, split=split, prefix_words=prefix_words)
    name = path.name.lower()
    if name.endswith((".tar.gz", ".tgz", ".tar")):
        return _load_imdb_tar(path, split=split, prefix_words=prefix_words)
    inner = name.removesuffix(".gz")
    readers: dict[str, Callable[[Path], tuple[list[str], list[tuple[str, Any]]]]] = {
        ".jsonl": _read_jsonl,
        ".json": _read_json,
        ".csv": _read_csv,
        ".parquet": _read_parquet,
    }
    for suffix, reader in readers.items():
        if inner.endswith(suffix) and not (suffix == ".parquet" and name.endswith(".gz")):
            return _records_to_rows(*reader(path), label=str(path), column=column)
    raise DataError(
        f"{path}: unsupported file type (expected .json, .jsonl, .csv, .parquet, "
        ".json.gz, .jsonl.gz, .csv.gz, an aclImdb .tar.gz or folder)"
    )


# ---------------------------------------------------------------- validation


def _log_summary(skipped: list[Skip], where: str) -> None:
    """One line for what was skipped: INFO when only duplicates (routine in public datasets),
    WARNING when a row was bad and more were skipped than were logged one by one."""
    dups = sum(sk.reason.startswith("duplicate") for sk in skipped)
    if dups and dups == len(skipped):
        log.info("%s: skipped %d duplicate rows (listed with -v; all in LoadResult.skipped)",
                 where, dups)
    elif len(skipped) > _LOGGED_SKIPS:
        log.warning("%s: skipped %d rows in all (%d duplicates); the first %d are logged one by "
                    "one (duplicates with -v) and all are in LoadResult.skipped",
                    where, len(skipped), dups, _LOGGED_SKIPS)


def _collect(rows: Iterable[_Row], *, source: str, limit: int | None, where: str) -> LoadResult:
    """Validate rows into prompts: skip bad rows and duplicates, stop at `limit`."""
    result = LoadResult(prompts=[])
    first_origin: dict[str, str] = {}
    seen = 0

    def skip(origin: str, reason: str) -> None:
        result.skipped.append(Skip(origin, reason))
        if len(result.skipped) <= _LOGGED_SKIPS:  # duplicates are routine: listed only with -v
            level = logging.DEBUG if reason.startswith("duplicate") else logging.WARNING
            log.log(level, "skipped %s: %s", origin, reason)

    for row in rows:
        if limit is not None and len(result.prompts) >= limit:
            break
        seen += 1
        if row.problem:
            skip(row.origin, row.problem)
        elif row.value is None:
            skip(row.origin, "missing value")
        elif not isinstance(row.value, str):
            skip(row.origin, f"non-string value ({type(row.value).__name__})")
        elif not row.value.strip():
            skip(row.origin, "empty prompt")
        elif len(row.value) > MAX_PROMPT_CHARS:
            raise DataError(f"{row.origin}: prompt is {len(row.value):,} characters; at most "
                            f"{MAX_PROMPT_CHARS:,} are accepted (is this the right file?)")
        elif (text := row.value.strip()) in first_origin:
            skip(row.origin, f"duplicate of {first_origin[text]}")
        else:
            first_origin[text] = row.origin
            result.prompts.append(
                Prompt(text, source, row.origin, row.category, dict(row.meta or {}))
            )
    _log_summary(result.skipped, where)
    if seen == 0 and limit != 0:
        raise DataError(f"{where}: has no rows")
    if not result.prompts and limit != 0:
        raise DataError(
            f"{where}: no usable prompts; all {seen} rows were skipped "
            f"(first: {result.skipped[0].origin}: {result.skipped[0].reason})"
        )
    return result


# ---------------------------------------------------------------- raw readers


def read_text(path: Path) -> str:
    """A data file's text (gzip undone): DataError naming the file and line when it is empty,
    not UTF-8 or holds a NUL byte."""
    return _read_text(Path(path))


def _read_text(path: Path) -> str:
    """Read a (possibly gzipped) UTF-8 file; errors name the file and the line/byte offset."""
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty")
    data = path.read_bytes()
    if path.name.lower().endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{path}: not a valid gzip file ({e})") from None
    text = _decode(data, str(path))
    if not text.strip():
        raise DataError(f"{path}: file is empty")
    return text


def _decode(data: bytes, label: str) -> str:
    """Decode UTF-8 (a leading BOM is dropped); a bad byte is reported by line and offset."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise DataError(
            f"{label}: line {line}: not valid UTF-8 (byte offset {e.start}: {e.reason})"
        ) from None
    if (nul := data.find(b"\x00")) >= 0:
        line = data[:nul].count(b"\n") + 1
        raise DataError(f"{label}: line {line}: NUL byte at offset {nul} (a binary file?)")
    return text


def _read_jsonl(path: Path) -> tuple[list[str], list[tuple[str, Any]]]:
    """JSON Lines: one object per line; blank lines are ignored."""
    records = []
    for lineno, line in enumerate(_read_text(path).split("\n"), 1):
        if not line.strip():
            continue
        try:
            records.append((f"{path}:line {lineno}", json.loads(line)))
        except json.JSONDecodeError as e:
            raise DataError(
                f"{path}: line {lineno}: invalid JSON ({e.msg}, column {e.colno})"
            ) from None
    return _columns(records), records


def _read_json(path: Path) -> tuple[list[str], list[tuple[str, Any]]]:
    """A JSON list of objects, or an object whose "data" key holds that list."""
    try:
        doc = json.loads(_read_text(path))
    except json.JSONDecodeError as e:
        raise DataError(
            f"{path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}"
        ) from None
    if isinstance(doc, dict) and isinstance(doc.get("data"), list):
        doc = doc["data"]
    if not isinstance(doc, list):
        raise DataError(f'{path}: expected a JSON list of objects or {{"data": [...]}}')
    records = [(f"{path}:row {i}", rec) for i, rec in enumerate(doc, 1)]
    return _columns(records), records


def _read_csv(path: Path) -> tuple[list[str], list[tuple[str, Any]]]:
    """CSV with a header row; origins count data rows from 1."""
    reader = csv.DictReader(io.StringIO(_read_text(path), newline=""))
    try:
        records = [(f"{path}:row {i}", rec) for i, rec in enumerate(reader, 1)]
    except csv.Error as e:
        raise DataError(f"{path}: line {reader.line_num}: malformed CSV ({e})") from None
    return [c for c in reader.fieldnames or [] if c is not None], records


def _read_parquet(path: Path) -> tuple[list[str], list[tuple[str, Any]]]:
    """Parquet through pyarrow; nulls become None (skipped as missing values)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty")
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as e:
        raise DataError(f"{path}: not a valid Parquet file ({e})") from None
    records = [(f"{path}:row {i}", rec) for i, rec in enumerate(table.to_pylist(), 1)]
    return table.column_names, records


def _columns(records: list[tuple[str, Any]]) -> list[str]:
    """Keys of all object records, in order of first appearance."""
    cols: dict[str, None] = {}
    for _, rec in records:
        if isinstance(rec, dict):
            cols.update(dict.fromkeys(rec))
    return list(cols)


# ---------------------------------------------------------------- schemas


def _numbered(records: list[dict], label: str) -> list[tuple[str, Any]]:
    return [(f"{label}:row {i}", rec) for i, rec in enumerate(records, 1)]


def _records_to_rows(
    columns: list[str], records: list[tuple[str, Any]], *, label: str, column: str | None,
    prefix_words: int = 8,
) -> Iterable[_Row]:
    """Recognise the schema from the columns, then map each record to a candidate row."""
    if not records:
        return []
    to_row = _schema(columns, label=label, column=column, prefix_words=prefix_words)
    return (
        to_row(origin, rec)
        if isinstance(rec, dict)
        else _Row(origin, None, problem=f"not an object ({type(rec).__name__})")
        for origin, rec in records
    )


def _schema(columns: list[str], *, label: str, column: str | None,
            prefix_words: int = 8) -> Callable[[str, dict], _Row]:
    """The row mapper for a known dataset layout (upstream files and their hub versions),
    else the generic text-column mapper."""
    cols = set(columns)
    if column is not None:
        if column not in cols:
            raise DataError(
                f"{label}: missing column {column!r}; columns present: {', '.join(columns) or 'none'}"
            )
        return _generic(column)
    if "chosen" in cols:
        return _hh_rlhf
    if {"Question", "Best Answer"} <= cols:
        return _truthfulqa
    if {"question", "best_answer"} <= cols:
        return _truthfulqa_hub
    if {"goal", "target"} <= cols:
        return _advbench
    if cols == {"prompt", "target"}:
        return _advbench_hub
    if cols == {"text", "label"}:
        return _imdb_hub(prefix_words)
    if "instruction" in cols and ("output" in cols or not cols & {"prompt", "text", "question"}):
        return _alpaca
    for name in TEXT_COLUMNS:
        if name in cols:
            return _generic(name)
    raise DataError(
        f"{label}: missing text column (one of {', '.join(TEXT_COLUMNS)}, or pass column=...); "
        f"columns present: {', '.join(columns) or 'none'}"
    )


def _category(rec: dict, default: str = "") -> str:
    value = rec.get("category")
    return value if isinstance(value, str) and value.strip() else default


def _generic(column: str) -> Callable[[str, dict], _Row]:
    def to_row(origin: str, rec: dict) -> _Row:
        if column not in rec:
            return _Row(origin, None, problem=f"missing column {column!r}")
        return _Row(origin, rec[column], _category(rec))

    return to_row


def _alpaca(origin: str, rec: dict) -> _Row:
    """Alpaca: instruction, plus a blank line and the input when there is one."""
    text, extra = rec.get("instruction"), rec.get("input")
    if isinstance(text, str) and text.strip() and isinstance(extra, str) and extra.strip():
        text = f"{text.strip()}\n\n{extra.strip()}"
    meta = {k: rec[k] for k in ("input", "output") if k in rec}
    return _Row(origin, text, _category(rec, "alpaca"), meta)


def _hh_rlhf(origin: str, rec: dict) -> _Row:
    """HH-RLHF: the first Human turn of the `chosen` dialogue; both dialogues go in meta."""
    chosen = rec.get("chosen")
    if not isinstance(chosen, str):
        return _Row(origin, chosen)
    match = _HUMAN_TURN.search(chosen)
    if match is None:
        return _Row(origin, None, problem="no 'Human:' turn in 'chosen'")
    meta = {"chosen": chosen, "rejected": rec.get("rejected")}
    return _Row(origin, match.group(1), "hh-rlhf", meta)


def _answers(value: Any) -> list[str]:
    return [a.strip() for a in value.split("; ") if a.strip()] if isinstance(value, str) else []


def _truthfulqa(origin: str, rec: dict) -> _Row:
    """TruthfulQA CSV: the question; answers (split on "; ") go in meta."""
    meta = {
        "best_answer": rec.get("Best Answer"),
        "correct_answers": _answers(rec.get("Correct Answers")),
        "incorrect_answers": _answers(rec.get("Incorrect Answers")),
        "type": rec.get("Type"),
        "topic": rec.get("Category"),
    }
    return _Row(origin, rec.get("Question"), "truthfulqa", meta)


def _advbench(origin: str, rec: dict) -> _Row:
    """AdvBench harmful behaviours: the goal; the target completion goes in meta."""
    return _Row(origin, rec.get("goal"), "advbench", {"target": rec.get("target")})


def _advbench_hub(origin: str, rec: dict) -> _Row:
    """AdvBench on the hub (walledai/AdvBench): `prompt` is the goal."""
    return _Row(origin, rec.get("prompt"), "advbench", {"target": rec.get("target")})


def _truthfulqa_hub(origin: str, rec: dict) -> _Row:
    """TruthfulQA on the hub (`truthful_qa`, generation): answers are already lists."""
    def listed(value: Any) -> list[str]:
        return [a.strip() for a in value if isinstance(a, str) and a.strip()] \
            if isinstance(value, list) else _answers(value)

    meta = {"best_answer": rec.get("best_answer"),
            "correct_answers": listed(rec.get("correct_answers")),
            "incorrect_answers": listed(rec.get("incorrect_answers")),
            "type": rec.get("type"), "topic": rec.get("category")}
    return _Row(origin, rec.get("question"), "truthfulqa", meta)


def _imdb_hub(prefix_words: int) -> Callable[[str, dict], _Row]:
    """IMDB on the hub (stanfordnlp/imdb: text, label 0 neg / 1 pos): the review opening."""
    def to_row(origin: str, rec: dict) -> _Row:
        text, label = rec.get("text"), rec.get("label")
        if label not in (0, 1):
            return _Row(origin, None, problem=f"no sentiment label ({label!r})")
        if not isinstance(text, str):
            return _Row(origin, text)
        prefix = " ".join(_BR.sub(" ", text).split()[:prefix_words])
        return _Row(origin, prefix, "imdb", {"label": ("neg", "pos")[label], "rating": None})
    return to_row


# ---------------------------------------------------------------- IMDB (aclImdb)


def _imdb_rows(
    files: Iterable[tuple[str, Callable[[], bytes]]], *, label: str, split: str, prefix_words: int
) -> list[_Row]:
    """Rows from (relative name, reader) pairs of an aclImdb tree, sorted by label then id."""
    if split not in ("train", "test"):
        raise DataError(f"{label}: aclImdb has splits 'train' and 'test', not {split!r}")
    found = []
    for name, read in files:
        m = _IMDB_FILE.search(name)
        if m and m.group(1) == split:
            found.append((m.group(2), int(m.group(3)), int(m.group(4)), name, read))
    if not found:
        raise DataError(
            f"{label}: no aclImdb reviews found under {split}/{{pos,neg}}/<id>_<rating>.txt"
        )
    rows = []
    for sentiment, _, rating, name, read in sorted(found, key=lambda f: f[:2]):
        review = _BR.sub(" ", _decode(read(), f"{label}:{name}"))
        prefix = " ".join(review.split()[:prefix_words])
        meta = {"label": sentiment, "rating": rating, "split": split}
        rows.append(_Row(f"{label}:{name}", prefix, "imdb", meta))
    return rows


def _load_imdb_dir(path: Path, *, split: str, prefix_words: int) -> list[_Row]:
    """A folder holding aclImdb/, or the aclImdb folder itself."""
    root = path / "aclImdb" if (path / "aclImdb").is_dir() else path
    if not any((root / s).is_dir() for s in ("train", "test")):
        raise DataError(f"{path}: folder is not an aclImdb layout (no train/ or test/ inside)")
    files = [(f.relative_to(root).as_posix(), f.read_bytes) for f in sorted(root.glob("*/*/*.txt"))]
    return _imdb_rows(files, label=str(path), split=split, prefix_words=prefix_words)


def _load_imdb_tar(path: Path, *, split: str, prefix_words: int) -> list[_Row]:
    """An aclImdb tarball, read in one pass without extracting to disk."""
    files = []
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                m = _IMDB_FILE.search(member.name)
                if member.isfile() and m and m.group(1) == split:
                    fh = tar.extractfile(member)
                    data = fh.read() if fh else b""
                    files.append((member.name, lambda data=data: data))
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: cannot read tar archive ({e})") from None
    return _imdb_rows(files, label=str(path), split=split, prefix_words=prefix_words)


# ---------------------------------------------------------------- Hugging Face


def _load_hf(source: str, *, split: str, column: str | None,
             mirror: Source | None = None) -> Iterable[_Row]:
    """A Hugging Face dataset `owner/name[:config]` via `datasets.load_dataset` (`mirror`: the
    registered data set whose mirror copy holds another split)."""
    name, _, config = source.partition(":")
    if mirror is not None:  # the hub's own spelling of the part
        config, data_dir = mirror.config, mirror.data_dir
    try:
        import datasets

        ds = (datasets.load_dataset(name, config, data_dir=data_dir, split=split)
              if mirror is not None else datasets.load_dataset(name, config or None, split=split))
    except Exception as e:  # noqa: BLE001 - any hub/network/format failure means "cannot load"
        held = (f"; the offline mirror holds only its {mirror.split!r} split (set the split to "
                f"{mirror.split!r} to read it)" if mirror is not None else "")
        raise DataError(
            f"{source!r} does not exist as a local path, and the Hugging Face hub could not "
            f"load it as a dataset ({type(e).__name__}: {' '.join(str(e).split())[:200]})"
            + held) from None
    records = [(f"hf:{source}:row {i}", rec) for i, rec in enumerate(ds, 1)]
    return _records_to_rows(list(ds.column_names), records, label=f"hf:{source}", column=column)

"""Data sets by name: an offline mirror, else the Hugging Face hub (docs/method.md §7).

One resolver for every data set the method and the harness read. A name (`alpaca`,
`hh-rlhf/harmless`, `truthfulqa`, `imdb`, `advbench`, ...) is looked up, in order:

1. in the offline mirror `$UDASA_DATA_DIR` (default `~/.cache/udasa/data`), at its upstream
   file path (`hh-rlhf/harmless-base/test.jsonl.gz`, `truthfulqa/TruthfulQA.csv`, ...);
2. in the same mirror as a hub-layout folder named by the hub id (`Anthropic/hh-rlhf/`,
   `truthful_qa/`, ...): a folder written by `datasets.save_to_disk`, or the hub repository's
   own files (parquet / json / csv, split by file name);
3. on the Hugging Face hub, as the data sets lm-eval and Inspect use (`truthful_qa`,
   `Anthropic/hh-rlhf`, `stanfordnlp/imdb`, `walledai/AdvBench`, `tatsu-lab/alpaca`).

A hub id is also a name, so a config written for the hub runs offline: `tatsu-lab/alpaca`,
`stanfordnlp/imdb`, `walledai/AdvBench`, and with the part named where the hub id has several
(`Anthropic/hh-rlhf:harmless-base`, `truthful_qa:generation`, `truthful_qa:multiple_choice`)
resolve like `alpaca`, `imdb`, ... (mirror first) when the split asked for is the one the
mirror holds (`hub_source`).

Mirror files keep their upstream format; hub data keeps the hub's columns. `udasa.data` reads
both. Where neither is found, `DatasetNotFound` says so in one line naming both places.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from udasa.errors import DataError

ENV = "UDASA_DATA_DIR"


class DatasetNotFound(DataError):
    """A named data set is in neither the offline mirror nor reachable on the hub."""


@dataclass(frozen=True)
class Source:
    """Where one named data set lives: its mirror path and its hub equivalent (if any)."""

    name: str
    mirror: str  # path inside the mirror, upstream layout
    hub: str | None = None  # hub dataset id
    config: str | None = None  # hub config name (`load_dataset(hub, config)`)
    data_dir: str | None = None  # hub sub-folder (`load_dataset(hub, data_dir=...)`)
    split: str = "train"  # the hub split this name stands for
    split_from_caller: bool = False  # the mirror file holds several splits (IMDB)
    note: str = ""


SOURCES: dict[str, Source] = {s.name: s for s in (
    Source("alpaca", "alpaca/alpaca_data_52k_corrected.json.gz", "tatsu-lab/alpaca",
           note="the 52k Alpaca instructions (mirror: lightly community-corrected copy)"),
    Source("alpaca/first200", "alpaca/alpaca_data_first200.json",
           note="the first 200 Alpaca records, exactly as upstream (a mirror file only)"),
    Source("hh-rlhf/harmless", "hh-rlhf/harmless-base/test.jsonl.gz", "Anthropic/hh-rlhf",
           data_dir="harmless-base", split="test"),
    Source("hh-rlhf/helpful", "hh-rlhf/helpful-base/test.jsonl.gz", "Anthropic/hh-rlhf",
           data_dir="helpful-base", split="test"),
    Source("truthfulqa", "truthfulqa/TruthfulQA.csv", "truthful_qa", config="generation",
           split="validation"),
    Source("truthfulqa/mc", "truthfulqa/mc_task.json", "truthful_qa", config="multiple_choice",
           split="validation"),
    Source("imdb", "imdb/aclImdb_subset5k.tar.gz", "stanfordnlp/imdb", split="test",
           split_from_caller=True),
    Source("advbench", "advbench/harmful_behaviors.csv", "walledai/AdvBench"),
    Source("advbench/transfer", "advbench/transfer_expriment_behaviors.csv"),
    Source("gcg/refusal-prefixes", "gcg/refusal_prefixes.json"),
    Source("gcg/universal-suffixes", "gcg/universal_suffixes.json"),
    Source("gcg/smoothllm-vicuna", "gcg/smoothllm_gcg_vicuna_behaviors.json"),
    Source("gcg/smoothllm-llama2", "gcg/smoothllm_gcg_llama2_behaviors.json"),
)}


@dataclass(frozen=True)
class Resolved:
    """A found data set: a mirror file (`path`) or hub rows (`dataset`), and where from."""

    source: Source
    origin: str  # "mirror:PATH", "hub-folder:PATH" or "hub:ID"
    path: Path | None = None
    dataset: Any = None  # a datasets.Dataset in the hub's columns

    def records(self) -> tuple[list[str], list[dict]]:
        """(column names, rows) of hub data (`dataset`)."""
        if self.dataset is None:
            raise DataError(f"{self.origin}: a file, not hub rows")
        return list(self.dataset.column_names), list(self.dataset)


def data_dir() -> Path:
    """The offline mirror: `$UDASA_DATA_DIR`, else `~/.cache/udasa/data` (XDG cache home)."""
    env = os.environ.get(ENV)
    if env:
        return Path(env).expanduser().resolve()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return (cache / "udasa" / "data").resolve()


def source_for(name_or_path: str) -> Source | None:
    """The registered source for a name, its mirror path (`hh-rlhf/.../test.jsonl.gz`) or its
    hub id (`hub_source`)."""
    if name_or_path in SOURCES:
        return SOURCES[name_or_path]
    found = next((s for s in SOURCES.values() if s.mirror == name_or_path), None)
    return found or hub_source(name_or_path)


def hub_id(src: Source) -> str:
    """How a config names `src` on the hub: the id, `:part` where the id has several."""
    assert src.hub is not None
    parts = [s for s in SOURCES.values() if s.hub == src.hub]
    return src.hub + (f":{src.config or src.data_dir}" if len(parts) > 1 else "")


def hub_source(source: str) -> Source | None:
    """The registered data set a hub id stands for (`tatsu-lab/alpaca`,
    `Anthropic/hh-rlhf:harmless-base`; case as on the hub or not), None for any other id; a
    hub id with several registered parts and none named is a DataError listing them."""
    name, _, part = source.partition(":")
    matches = [s for s in SOURCES.values() if s.hub and s.hub.lower() == name.lower()]
    if part:
        return next((s for s in matches if part in (s.config, s.data_dir)), None)
    if len(matches) > 1:
        raise DataError(f"data set {source!r}: the hub id has several parts; name one: "
                        + ", ".join(f"{hub_id(s)} ({s.split} split)" for s in matches))
    return matches[0] if matches else None


def resolve(name: str, split: str | None = None) -> Resolved:
    """Find data set `name` (a registered name or mirror path): mirror file, hub-layout folder
    in the mirror, then the hub. `split` matters only where the caller picks it (IMDB)."""
    src = source_for(name)
    if src is None:
        known = ", ".join(SOURCES)
        raise DataError(f"unknown data set {name!r} (known: {known})")
    split = split if (split and src.split_from_caller) else src.split
    path = data_dir() / src.mirror
    if path.exists():
        return Resolved(src, f"mirror:{path}", path=path)
    if src.hub is None:
        raise DatasetNotFound(f"data set {src.name!r}: {path} not found (no hub copy exists); "
                              f"set {ENV} to an offline mirror holding {src.mirror}")
    folder = hub_folder(src)
    if folder is not None:
        try:
            return Resolved(src, f"hub-folder:{folder}", dataset=_load_folder(folder, split))
        except Exception as e:  # noqa: BLE001 - a broken folder is reported, not skipped
            raise DataError(f"{folder}: hub-layout folder of data set {src.name!r} could not "
                            f"be read ({type(e).__name__}: {_oneline(e)})") from None
    try:
        return Resolved(src, f"hub:{src.hub}", dataset=_load_hub(src, split))
    except Exception as e:  # noqa: BLE001 - any hub/network/format failure means "not found"
        raise DatasetNotFound(_not_found(src, split, e)) from None


def resolve_file(name: str) -> Path:
    """A data set that only exists as a mirror file (refusal prefixes, published suffixes)."""
    found = resolve(name)
    if found.path is None:
        raise DataError(f"data set {name!r}: needs the mirror file {found.source.mirror} "
                        f"under {ENV}, found only {found.origin}")
    return found.path


def hub_folder(src: Source) -> Path | None:
    """The mirror's hub-layout folder for `src` (`<mirror>/<hub id>[/<config or data_dir>]`)."""
    if src.hub is None:
        return None
    root = data_dir() / src.hub
    if not root.is_dir():
        return None
    for sub in (src.config, src.data_dir):
        if sub and (root / sub).is_dir():
            return root / sub
    return root


def _load_folder(folder: Path, split: str):
    """A `save_to_disk` folder (DatasetDict or Dataset), else the hub repository's files."""
    import datasets

    if (folder / "dataset_dict.json").is_file():
        return datasets.load_from_disk(str(folder))[split]
    if (folder / "state.json").is_file():
        return datasets.load_from_disk(str(folder))
    return datasets.load_dataset(str(folder), split=split)


def _load_hub(src: Source, split: str):
    import datasets

    assert src.hub is not None
    return datasets.load_dataset(src.hub, src.config, data_dir=src.data_dir, split=split)


def _oneline(err: Exception, width: int = 200) -> str:
    return " ".join(str(err).split())[:width]


def _not_found(src: Source, split: str, err: Exception) -> str:
    where = f"{src.hub}" + "".join(f", {k} {v}" for k, v in
                                    (("config", src.config), ("data_dir", src.data_dir)) if v)
    return (f"data set {src.name!r} not found: the offline mirror {data_dir()} (${ENV}) has "
            f"neither {src.mirror} nor {src.hub}/, and the Hugging Face hub dataset {where} "
            f"(split {split}) could not be loaded ({type(err).__name__}: {_oneline(err)})")

"""Content keys and provenance: what names a run, its responses, its checkpoints, and what a
run records about the software and models that made it.

Every key is `udasa.records.content_key` over a canonical JSON of the settings that change the
result, so the same settings always give the same key (a rerun resumes, never duplicates) and
settings that only change how work is scheduled are left out.
"""

from __future__ import annotations

import json
import platform
import sys
from importlib.metadata import version as pkg_version
from typing import Any

from udasa import __version__
from udasa.config import RunConfig, TrainingConfig, to_dict
from udasa.records import content_key

# How work is scheduled, never what is generated: left out of run and response keys, so a
# rerun with another batch size or concurrency regenerates nothing.
SCHEDULING = ("batch_tokens", "concurrency", "max_retries", "backoff_base_s", "backoff_max_s")

# Generation settings that change neither the responses nor their identity.
GENERATION_VOLATILE = ("timeout_s", "api_key_env", "device", *SCHEDULING)

# Packages whose versions every run manifest records.
PACKAGES = ("torch", "transformers", "sentence-transformers", "trl", "scikit-learn",
            "alt-profanity-check", "openai", "sqlite-utils")


# Fields added after workspaces were first keyed: left out of a key while at their default, so
# the runs made before they existed keep their ids (section, field, default).
ADDED_LATER = (("data", "sample", "first"), ("pairs", "selection", "uncertainty"))


def drop_added_defaults(data: dict[str, Any]) -> dict[str, Any]:
    """`data` (a config as plain data) without the `ADDED_LATER` fields at their default."""
    for section, name, default in ADDED_LATER:
        if data.get(section, {}).get(name, None) == default:
            data[section].pop(name)
    return data


def _key_of(data: dict[str, Any], *extra: str) -> str:
    return content_key(json.dumps(data, sort_keys=True), *extra)


def run_id_of(cfg: RunConfig) -> str:
    """A run is its configuration up to the pairs: the same config resumes the same run.

    Training settings are left out: they key the checkpoints instead (`train_key_of`), so one
    set of pairs can be trained several ways.
    """
    data = drop_added_defaults(to_dict(cfg))
    data.pop("training")
    for name in SCHEDULING:
        data["generation"].pop(name)
    if not data["scoring"]["extra"]:  # no plugin axis: the same ids as before there were any
        data["scoring"].pop("extra")
    return _key_of(data)


def gen_key_of(cfg: RunConfig) -> str:
    """Responses are shared by every run with the same generation settings and seed."""
    data = to_dict(cfg.generation)
    for name in GENERATION_VOLATILE:
        data.pop(name)
    return _key_of(data, str(cfg.seed))


def train_key_of(training: TrainingConfig, soft_labels: bool = False) -> str:
    """Checkpoints are keyed by the DPO settings (and by training on soft labels, for the
    baselines that do), under the run whose pairs they train on."""
    return _key_of(to_dict(training), *(["soft-labels"] if soft_labels else []))


def prompt_seed(seed: int, prompt_id: str) -> int:
    """Per-prompt sampling seed: independent of processing order (resume-safe)."""
    return int(content_key(str(seed), prompt_id), 16) % (2**31)


def package_versions() -> dict[str, str | None]:
    """Versions of udasa, Python and `PACKAGES` (None for a package not installed)."""
    versions: dict[str, str | None] = {"udasa": __version__, "python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            versions[name] = pkg_version(name)
        except Exception:  # noqa: BLE001
            versions[name] = None
    return versions


def manifest(cfg: RunConfig) -> dict[str, Any]:
    """What a run records about how it was made: seed, package versions, platform, policy."""
    from udasa.models import model_identity

    g = cfg.generation
    policy = (model_identity(g.model) if g.backend == "hf"
              else {"id": f"{g.backend}:{g.model}", "base_url": g.base_url})
    return {"seed": cfg.seed, "versions": package_versions(), "platform": platform.platform(),
            "policy": policy}

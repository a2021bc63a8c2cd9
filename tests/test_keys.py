"""Content keys (udasa/keys.py): the same settings give the same hex keys, release after release.

The expected values are those every workspace made so far holds: if one of them changes, old
workspaces no longer resume (their responses, scores and checkpoints are not found again).
"""

from __future__ import annotations

import dataclasses

from udasa.baselines.common import BaselineConfig, baseline_run_id, soft_labels_of
from udasa.config import RunConfig
from udasa.keys import gen_key_of, package_versions, prompt_seed, run_id_of, train_key_of


def test_default_keys_are_the_ones_stored_workspaces_hold():
    cfg = RunConfig()
    assert run_id_of(cfg) == "f08e1c544d0b8b11"
    assert gen_key_of(cfg) == "b40dc5ac6154e954"
    assert train_key_of(cfg.training) == "d54cfe3c76ba071b"
    assert prompt_seed(0, "abc") == 2143304144


def test_baselines_share_the_train_key_formula():
    rlaif = BaselineConfig(method="rlaif")
    # RLAIF's labeller version 1 (option ids read after the prompt) keys its pairs; unversioned
    # they had 803e481becd22090
    assert baseline_run_id(rlaif) == "ccd3769083d9e756"
    assert soft_labels_of(rlaif)
    assert train_key_of(rlaif.training, soft_labels=True) == "b68e74f31569544a"
    assert train_key_of(rlaif.training) == train_key_of(RunConfig().training)
    # RLCD's sampler version 3 (the paper's 16 harmlessness pairs) keys its pairs; version 2
    # had 2a1ec51ff98776b7, version 1 90ab1f9308e5f850
    assert baseline_run_id(BaselineConfig(method="rlcd")) == "18ab608548a2a2fd"


def test_scheduling_settings_key_nothing():
    cfg = RunConfig()

    def generation(**changes) -> RunConfig:
        return dataclasses.replace(cfg, generation=dataclasses.replace(cfg.generation, **changes))

    busy = generation(batch_tokens=1024, concurrency=2, max_retries=0, backoff_max_s=1.0)
    assert (run_id_of(busy), gen_key_of(busy)) == (run_id_of(cfg), gen_key_of(cfg))
    assert gen_key_of(generation(device="cuda", timeout_s=5.0)) == gen_key_of(cfg)
    assert gen_key_of(generation(temperature=0.5)) != gen_key_of(cfg)
    assert gen_key_of(dataclasses.replace(cfg, seed=1)) != gen_key_of(cfg)


def test_package_versions_name_udasa_and_python():
    versions = package_versions()
    assert versions["udasa"] and versions["python"] and "torch" in versions

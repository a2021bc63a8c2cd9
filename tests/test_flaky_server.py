"""A flaky judge and generation server: 20% of requests fail (429, 500, 503, a hang past the
timeout, JSON cut in half, a connection reset). Every call of `udasa generate` and of the
`gpt4` judge either succeeds with exactly the fault-free reply or is recorded as a failure and
left out; no reply is stored twice; the rerun retries only what failed. The short version of
bench/chaos_server.py (its figures: bench/results/chaos_server.md)."""

from __future__ import annotations

import sys

from conftest import REPO

sys.path.insert(0, str(REPO / "bench"))

import chaos_server


def test_every_call_succeeds_as_without_faults_or_is_recorded_as_failed(tmp_path):
    out = chaos_server.run(prompts=60, items=80, n=2, rate=0.2, seed=1, work=tmp_path)
    assert set(out["faults_injected"]) == set(chaos_server.KINDS)
    assert sum(out["faults_injected"].values()) >= 0.1 * out["requests_seen"]
    for p in out["passes"]:
        assert p["generation_succeeded"] + p["generation_failed_recorded"] == 60, p
        assert p["judge_succeeded"] + p["judge_failed_recorded"] == 80, p
        assert p["generation_unaccounted"] == 0
        assert p["generation_differing_from_reference"] == p["judge_differing_from_reference"] == 0
        assert p["generation_duplicate_rows"] == p["generation_prompts_with_not_n"] == 0
        assert p["judge_duplicate_rows"] == 0
    first, rerun = out["passes"]
    failed = first["generation_failed_recorded"] + first["judge_failed_recorded"]
    assert rerun["requests"] >= failed  # the rerun asks again for what failed, nothing else
    assert rerun["requests"] < first["requests"] / 4

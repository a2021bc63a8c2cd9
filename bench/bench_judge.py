"""Judge calls: concurrent vs sequential against a local OpenAI-compatible server, then the
cached rerun's HTTP call count.

    .venv/bin/python bench/bench_judge.py [--calls 64] [--latency 0.25] [--concurrency 16]

The server is tests/openai_server.py's FakeOpenAIServer on 127.0.0.1, sleeping `--latency` s
per request (a stand-in for a remote judge's response time), so the figures measure the judge
layer's own overlap and overhead, not a model. Goals: speed-up >= 8x at concurrency 16, and
0 HTTP calls when the same items are judged again against the same store.
Results: bench/results/judge.json and judge.md (``--out`` for another stem).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # openai_server.py

from _common import environment, machine_state, md_table, warn_if_busy, write_results
from openai_server import FakeOpenAIServer

from evals.judges import make_judge, summarize
from udasa.store import Store

KEY_ENV = "UDASA_BENCH_JUDGE_KEY"


def timed_run(server: FakeOpenAIServer, store: Store | None, items: list[dict],
              concurrency: int) -> dict:
    """Judge `items` once; wall time, HTTP calls seen by the server, judge stats."""
    judge = make_judge("gpt4", store, base_url=server.base_url, api_key_env=KEY_ENV,
                       concurrency=concurrency)
    before = len(server.requests_to("/chat/completions"))
    t0 = time.perf_counter()
    out = judge.judge("helpful", items)
    wall = time.perf_counter() - t0
    return {"concurrency": concurrency, "wall_s": round(wall, 3),
            "http_calls": len(server.requests_to("/chat/completions")) - before,
            "summary": summarize(out), "stats": judge.stats.as_dict()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=64)
    ap.add_argument("--latency", type=float, default=0.25, help="server seconds per request")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--out", default="judge")
    args = ap.parse_args(argv)
    os.environ[KEY_ENV] = "sk-bench-not-a-real-key"

    state_before = machine_state()
    warn_if_busy(state_before, "start")
    items = [{"prompt": f"bench question {i}", "response": f"bench answer {i}"}
             for i in range(args.calls)]
    with tempfile.TemporaryDirectory() as tmp, \
            FakeOpenAIServer(lambda body: "Score: 7/10", latency_s=args.latency) as server:
        sequential = timed_run(server, None, items, 1)
        store = Store(tmp)
        concurrent = timed_run(server, store, items, args.concurrency)
        rerun = timed_run(server, store, items, args.concurrency)
        store.close()
    state_after = machine_state()
    warn_if_busy(state_after, "end")

    speedup = sequential["wall_s"] / concurrent["wall_s"]
    ideal = args.latency * args.calls / args.concurrency
    data = {"calls": args.calls, "latency_s": args.latency, "sequential": sequential,
            "concurrent": concurrent, "cached_rerun": rerun, "speedup": round(speedup, 2),
            "goals": {"speedup_ge_8": speedup >= 8, "rerun_http_calls_0":
                      rerun["http_calls"] == 0},
            "environment": environment(),
            "machine_state": {"start": state_before, "end": state_after}}
    quiet = "" if state_before["quiet"] and state_after["quiet"] else " (machine NOT quiet)"
    rows = [["sequential (concurrency 1)", sequential["wall_s"], sequential["http_calls"],
             sequential["summary"]["mean"], "1.0x"],
            [f"concurrent ({args.concurrency})", concurrent["wall_s"], concurrent["http_calls"],
             concurrent["summary"]["mean"], f"{speedup:.1f}x"],
            ["cached rerun", rerun["wall_s"], rerun["http_calls"], rerun["summary"]["mean"],
             "-"]]
    md = (f"# Judge calls{quiet}\n\n{args.calls} `helpful` judgements, FakeOpenAIServer on "
          f"127.0.0.1 with {args.latency} s latency per request; ideal concurrent time "
          f"{ideal:.2f} s.\n\n"
          + md_table(["run", "wall s", "HTTP calls", "mean score", "speed-up"], rows)
          + f"\nGoals: speed-up >= 8x: **{'met' if speedup >= 8 else 'MISSED'}** "
            f"({speedup:.1f}x); cached rerun makes 0 HTTP calls: "
            f"**{'met' if rerun['http_calls'] == 0 else 'MISSED'}** ({rerun['http_calls']}).\n")
    write_results(args.out, data, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())

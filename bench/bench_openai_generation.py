"""OpenAI-compatible generation: `udasa generate` and evaluated `openai:` models at
concurrency 16 vs 1 against a local server that waits 100 ms per request.

    .venv/bin/python bench/bench_openai_generation.py [--prompts 64] [--latency 0.1]

The server is tests/openai_server.py's FakeOpenAIServer on 127.0.0.1 (it honours `n`), so the
figures measure the generator's own overlap and overhead, not a model. Both passes run the
pipeline's real generate step (N=5 per prompt, one request each) into a fresh store, then the
eval path (`EvalModel.generate`, N=1). Goal: concurrency 16 >= 8x concurrency 1.
Results: bench/results/openai_generation.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # openai_server.py

from _common import environment, machine_state, md_table, write_results
from openai_server import FakeOpenAIServer

from evals.models import EvalModel
from udasa.config import load_config
from udasa.pipeline import Pipeline
from udasa.store import Store


def pipeline_pass(server: FakeOpenAIServer, prompts: int, concurrency: int) -> dict:
    with tempfile.TemporaryDirectory() as ws:
        data = Path(ws) / "prompts.jsonl"
        data.write_text("".join(json.dumps({"text": f"bench question {i}: why is the sky blue?"})
                                + "\n" for i in range(prompts)))
        cfg = load_config(ROOT / "configs" / "cpu-demo.yaml", [
            f"data.source={data}", "generation.backend=openai",
            "generation.model=fake-model", f"generation.base_url={server.base_url}",
            f"generation.concurrency={concurrency}", "training.enabled=false"])
        before = len(server.requests_to("/chat/completions"))
        t0 = time.perf_counter()
        report = Pipeline(cfg, ws).generate()
        wall = time.perf_counter() - t0
    return {"concurrency": concurrency, "wall_s": wall, "prompts": report.done,
            "requests": len(server.requests_to("/chat/completions")) - before}


def eval_pass(server: FakeOpenAIServer, prompts: int, concurrency: int) -> dict:
    model = EvalModel("m", "openai:fake-model", server.base_url, concurrency=concurrency)
    items = [(f"p{i}", f"bench question {i}") for i in range(prompts)]
    with tempfile.TemporaryDirectory() as ws:
        t0 = time.perf_counter()
        out = model.generate(Store(ws), items, 32)
        wall = time.perf_counter() - t0
    return {"concurrency": concurrency, "wall_s": wall, "prompts": len(out)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--latency", type=float, default=0.1)
    ap.add_argument("--out", default="openai_generation")
    args = ap.parse_args()
    state = machine_state()
    runs = []
    with FakeOpenAIServer(latency_s=args.latency) as server:
        for kind, fn in (("udasa generate (N=5)", pipeline_pass), ("eval model (N=1)", eval_pass)):
            one = fn(server, args.prompts, 1)
            many = fn(server, args.prompts, 16)
            runs.append({"path": kind, "c1": one, "c16": many,
                         "speedup": one["wall_s"] / many["wall_s"]})
            print(runs[-1], flush=True)
    data = {"benchmark": "openai_generation", "environment": environment(),
            "machine_state": state, "setup": vars(args), "runs": runs,
            "goal": {"min_speedup": 8, "met": all(r["speedup"] >= 8 for r in runs)}}
    table = md_table(["path", "prompts", "concurrency 1 s", "concurrency 16 s", "speed-up"],
                     [[r["path"], args.prompts, r["c1"]["wall_s"], r["c16"]["wall_s"],
                       f"{r['speedup']:.1f}x"] for r in runs])
    md = (f"# OpenAI-compatible generation: concurrency 16 vs 1\n\n{args.prompts} prompts "
          f"against tests/openai_server.py on 127.0.0.1 waiting {args.latency * 1000:.0f} ms "
          f"per request; {environment()['date']}; machine shared (loadavg "
          f"{state['loadavg']}). Goal >= 8x.\n\n{table}")
    write_results(args.out, data, md)


if __name__ == "__main__":
    main()

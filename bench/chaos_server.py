"""A flaky judge and generation server at scale: 20% of calls fail, mixed kinds.

A fault-injecting OpenAI-compatible server on 127.0.0.1 (tests/openai_server.py, with a seeded
draw per request): of every request, `--fault-rate` (default 0.2) get one fault, in equal
shares: HTTP 429, HTTP 500, HTTP 503, a hang past the client's timeout, a 200 whose JSON body
is cut in half, and a connection reset (TCP RST, nothing answered). The real code calls it:
`udasa generate` (`generation.backend=openai`, one request per prompt asking for n replies)
and the `gpt4` judge (the `openai` judge backend) over stored replies, each with its retries
(`max_retries`, backoff) as configured.

The same calls go first to the same server with no faults (the reference), then with faults
(one pass, then a second pass: the rerun a user would make). Checked for every call: it either
succeeded, with exactly the reference's reply, or is recorded as a failure (a prompt event for
generation, a judge call with ok=0) and left out; no reply is stored twice (one row per key,
exactly n replies per generated prompt). Writes bench/results/chaos_server.{json,md}.

    .venv/bin/python bench/chaos_server.py                     # 600 prompts, 800 judgements
    .venv/bin/python bench/chaos_server.py --prompts 50 --items 60 --out chaos-server-try
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from _common import ROOT, environment, machine_state, md_table, warn_if_busy, write_results
from openai_server import FakeOpenAIServer, _Fault

KINDS = ("429", "500", "503", "timeout", "truncated-json", "reset")
KEY_ENV = "UDASA_CHAOS_KEY"
TIMEOUT_S = 0.5  # the clients' timeout; a "timeout" fault hangs past it
RETRY = {"max_retries": 2, "backoff_base_s": 0.01, "backoff_max_s": 0.05}


def _digest(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def respond(body: dict) -> str:
    """Deterministic replies: the judge model scores from a hash of the prompt it is shown;
    the generator answers with the choice index and the prompt's hash."""
    text = body["messages"][-1]["content"]
    if body.get("model") == "judge":
        return f"{_digest(text) % 10 + 1}"
    return f"reply {body['_choice_index']} ({_digest(text) % 9973}) to: {text[:40]}"


class ChaosServer(FakeOpenAIServer):
    """FakeOpenAIServer whose every request draws a fault with probability `rate`."""

    def __init__(self, rate: float, seed: int):
        super().__init__(respond)
        self.rate, self.rng = rate, random.Random(seed)
        self.injected: Counter[str] = Counter()
        self._draw = threading.Lock()

    def _record(self, entry: dict) -> _Fault | None:
        super()._record(entry)
        with self._draw:
            if self.rng.random() >= self.rate:
                return None
            kind = self.rng.choice(KINDS)
            self.injected[kind] += 1
        if kind == "timeout":
            return _Fault(None, None, TIMEOUT_S * 2, None)
        if kind == "truncated-json":
            cut = json.dumps({"id": "x", "object": "chat.completion", "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "5"}}]})
            return _Fault(200, cut[:len(cut) // 2], 0.0, None)
        if kind == "reset":
            return _Fault(None, None, 0.0, None, reset=True)
        return _Fault(int(kind), None, 0.0, 0)


def prompts_file(path: Path, n: int) -> Path:
    path.write_text("".join(json.dumps({"prompt": f"Question {i}: name something {i % 17} "
                                                  f"times as {['red', 'old', 'odd'][i % 3]}."})
                            + "\n" for i in range(n)))
    return path


def generate(ws: Path, base_url: str, data: Path, n: int) -> dict:
    """`udasa generate` through the server; returns {prompt id: [replies]} and the failures."""
    from udasa.config import load_config
    from udasa.pipeline import Pipeline

    sets = {"data.source": str(data), "data.limit": 100_000, "generation.backend": "openai",
            "generation.model": "gen", "generation.base_url": base_url, "generation.n": n,
            "generation.timeout_s": TIMEOUT_S, "generation.concurrency": 8,
            "generation.api_key_env": KEY_ENV, "training.enabled": "false",
            **{f"generation.{k}": v for k, v in RETRY.items()}}
    cfg = load_config(ROOT / "configs" / "cpu-demo.yaml", [f"{k}={v}" for k, v in sets.items()])
    pipe = Pipeline(cfg, ws)
    pipe.generate()
    store = pipe.store
    rows = store.responses(pipe.gen_key)
    replies: dict[str, list] = {}
    for r in rows:
        replies.setdefault(r.prompt_id, []).append((r.sample_index, r.text))
    failed = {e.prompt_id: e.reason for e in store.prompt_events(pipe.gen_key)
              if e.prompt_id not in replies}
    keys = Counter((r.prompt_id, r.sample_index) for r in rows)
    out = {"replies": replies, "failed": failed, "duplicates": sum(c > 1 for c in keys.values()),
           "short": sum(len(v) != n for v in replies.values()),
           "prompts": len(store.run_prompts(pipe.run_id))}
    store.close()
    return out


def judge(ws: Path, base_url: str, items: list[dict]) -> dict:
    """The gpt4 judge (openai backend) through the server over `items`; verdicts and rows."""
    from evals.judges.base import make_judge
    from evals.store_tables import JudgeCall
    from udasa.store import Store

    store = Store(ws)
    j = make_judge("gpt4", store, base_url=base_url, model="judge", api_key_env=KEY_ENV,
                   timeout_s=TIMEOUT_S, concurrency=8, **RETRY)
    verdicts = j.judge("harmless", items)
    calls = store.select(JudgeCall, "judge_cache")
    out = {"scores": [v.score if v.ok else None for v in verdicts],
           "errors": [v.error for v in verdicts if not v.ok],
           "rows": len(calls), "distinct_keys": len({c.key for c in calls}),
           "stats": j.stats.as_dict()}
    store.close()
    return out


def judge_items(n: int) -> list[dict]:
    return [{"prompt": f"Question {i % 200}: how do I do thing {i}?",
             "response": f"Here is answer {i}, said {'kindly' if i % 2 else 'rudely'}."}
            for i in range(n)]


def one_pass(ws: Path, server: FakeOpenAIServer, data: Path, items: list[dict], n: int) -> dict:
    start, before = time.perf_counter(), len(server.requests)
    gen = generate(ws, server.base_url, data, n)
    jud = judge(ws, server.base_url, items)
    return {"generation": gen, "judge": jud, "requests": len(server.requests) - before,
            "wall_s": round(time.perf_counter() - start, 1)}


def compare(ref: dict, got: dict, n: int) -> dict:
    """Per call: succeeded with the reference's reply, or recorded as failed; never both,
    never neither; no duplicate rows."""
    g, rg = got["generation"], ref["generation"]
    gen_ok = [p for p in g["replies"] if sorted(g["replies"][p]) == sorted(rg["replies"][p])]
    gen_wrong = [p for p in g["replies"] if p not in gen_ok]
    unaccounted = rg["prompts"] - len(g["replies"]) - len(g["failed"])
    j, rj = got["judge"], ref["judge"]
    judged = [(a, b) for a, b in zip(j["scores"], rj["scores"]) if a is not None]
    return {
        "generation_calls": rg["prompts"], "generation_succeeded": len(gen_ok),
        "generation_failed_recorded": len(g["failed"]),
        "generation_differing_from_reference": len(gen_wrong),
        "generation_unaccounted": unaccounted,
        "generation_duplicate_rows": g["duplicates"], "generation_prompts_with_not_n": g["short"],
        "judge_calls": len(rj["scores"]), "judge_succeeded": len(judged),
        "judge_failed_recorded": len(j["errors"]),
        "judge_differing_from_reference": sum(a != b for a, b in judged),
        "judge_duplicate_rows": j["rows"] - j["distinct_keys"],
        "judge_failure_reasons": dict(Counter(e.split(":")[0][:60] for e in j["errors"])),
        "judge_stats": j["stats"],
    }


def run(prompts: int, items: int, n: int, rate: float, seed: int, work: Path) -> dict:
    import os

    os.environ.setdefault(KEY_ENV, "sk-chaos")
    data = prompts_file(work / "prompts.jsonl", prompts)
    todo = judge_items(items)
    with ChaosServer(0.0, seed) as clean:
        ref = one_pass(work / "reference", clean, data, todo, n)
    out = {"reference": {"requests": ref["requests"], "wall_s": ref["wall_s"]}, "passes": []}
    with ChaosServer(rate, seed) as flaky:
        for i in (1, 2):  # the first run, then the rerun after it
            got = one_pass(work / "faulty", flaky, data, todo, n)
            out["passes"].append({"pass": i, "requests": got["requests"],
                                  "wall_s": got["wall_s"], **compare(ref, got, n)})
        out["faults_injected"] = dict(flaky.injected)
        out["requests_seen"] = len(flaky.requests)
    return out


def markdown(data: dict, args) -> str:
    quiet = data["machine_state"]["start"]["quiet"] and data["machine_state"]["end"]["quiet"]
    inj = data["faults_injected"]
    rows = []
    for p in data["passes"]:
        rows.append([p["pass"], p["requests"], p["wall_s"],
                     f"{p['generation_succeeded']} / {p['generation_calls']}",
                     p["generation_failed_recorded"], p["generation_differing_from_reference"],
                     p["generation_unaccounted"],
                     p["generation_duplicate_rows"] + p["generation_prompts_with_not_n"],
                     f"{p['judge_succeeded']} / {p['judge_calls']}", p["judge_failed_recorded"],
                     p["judge_differing_from_reference"], p["judge_duplicate_rows"]])
    return (
        "# A flaky judge and generation server at scale\n\n"
        f"{data['environment']['cpu']}, {data['environment']['date']}; machine "
        f"{'quiet' if quiet else 'SHARED with other work (timings slow)'}. Command: "
        f"`.venv/bin/python bench/chaos_server.py --prompts {args.prompts} --items {args.items}"
        f" --n {args.n} --fault-rate {args.fault_rate} --seed {args.seed}`.\n\n"
        f"{args.prompts} `udasa generate` calls (one request per prompt for {args.n} replies) "
        f"and {args.items} `gpt4`-judge calls (openai backend) to a server on 127.0.0.1 that "
        f"fails {args.fault_rate:.0%} of requests, in equal shares: 429, 500, 503, a hang past "
        f"the {TIMEOUT_S} s client timeout, a 200 with its JSON cut in half, a connection "
        f"reset. Retries: max_retries {RETRY['max_retries']}, backoff "
        f"{RETRY['backoff_base_s']}-{RETRY['backoff_max_s']} s. Pass 2 is the rerun. The "
        f"reference pass (no faults) made {data['reference']['requests']} requests in "
        f"{data['reference']['wall_s']} s.\n\n"
        f"Faults injected over both passes ({data['requests_seen']} requests): "
        + ", ".join(f"{k} {inj.get(k, 0)}" for k in KINDS) + ".\n\n"
        + md_table(["pass", "requests", "wall s", "generated ok", "gen failed (recorded)",
                    "gen differing", "gen unaccounted", "gen duplicate or not n",
                    "judged ok", "judge failed (recorded)", "judge differing",
                    "judge duplicate rows"], rows)
        + "\n\nEvery call either succeeded with exactly the fault-free run's reply or is "
          "recorded as a failure (a prompt event; a judge call with ok = 0) and left out of "
          "every result; the rerun retries only the failures. Judge failure reasons, pass 1: "
        + json.dumps(data["passes"][0]["judge_failure_reasons"]) + ".\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--prompts", type=int, default=600)
    p.add_argument("--items", type=int, default=800)
    p.add_argument("--n", type=int, default=2, help="replies per prompt")
    p.add_argument("--fault-rate", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="chaos_server")
    args = p.parse_args()
    before = machine_state()
    warn_if_busy(before, "start")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="udasa-chaos-server-") as tmp:
        data = {"environment": environment(), "settings": vars(args) | {"retry": RETRY,
                                                                       "timeout_s": TIMEOUT_S}}
        data |= run(args.prompts, args.items, args.n, args.fault_rate, args.seed, Path(tmp))
    data["wall_s"] = round(time.perf_counter() - start, 1)
    after = machine_state()
    warn_if_busy(after, "end")
    data["machine_state"] = {"start": before, "end": after}
    write_results(args.out, data, markdown(data, args))
    print(markdown(data, args))


if __name__ == "__main__":
    main()

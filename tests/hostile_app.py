"""A workspace full of hostile text, and `udasa-app` served over it (test_app_hostile.py).

Every stored string the app can show is planted: prompts, replies (one of 1 MB), the run
name, the models of runs and evaluations, and annotator names of stored ratings. Each one
carries a plain token so a test can tell where it surfaces: PROMPT / REPLY for what
annotators may read, METHOD (model, method and run names) and OTHER (other annotators) for
what they must never see.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from conftest import REPO
from results_factory import evaluation, record

from app import rating
from evals.premise import premise_stats, write_premise
from evals.store_tables import add_rating
from udasa.config import load_config, to_dict
from udasa.pipeline import Pipeline
from udasa.records import Prompt
from udasa.store_records import Response, Score

OUTSIDE = "203.0.113.7"  # TEST-NET-3: documentation only, never routed
PROMPT, REPLY, METHOD, OTHER = "prmQX", "rplQX", "mdlQX", "annQX"
RLO = "\u202e"
# what a page must never run or fetch: each sets window.__pwned, logs PWNED or loads OUTSIDE
CORPUS = [
    "<script>window.__pwned=1;console.log('PWNED')</script>",
    '<img src=x onerror="window.__pwned=2">',
    '<svg onload="window.__pwned=3"><circle r=9 /></svg>',
    '<a href="javascript:window.__pwned=4">click me</a>',
    "[click me](javascript:window.__pwned=5)",
    f"![pixel](http://{OUTSIDE}/pixel.png)",
    f'<img src="http://{OUTSIDE}/img.png"> <img src="//{OUTSIDE}/img2.png">',
    "<iframe src=\"javascript:parent.__pwned=6\"></iframe><iframe srcdoc='<b>x</b>'></iframe>",
    f"<style>@import url('http://{OUTSIDE}/x.css'); body{{background:url(//{OUTSIDE}/b)}}</style>",
    "&lt;script&gt;window.__pwned=7&lt;/script&gt; &amp;amp; &#60;b&#62; &#x3C;i&#x3E;",
    f"harmless {RLO}gpj.exe{chr(0x202C)} and an unclosed {RLO}override",
    "${window.__pwned=8} {{constructor.constructor('window.__pwned=9')()}}",
    '<details open ontoggle="window.__pwned=10"><summary>s</summary></details>',
    '<input autofocus onfocus="window.__pwned=11">',
    f'<meta http-equiv="refresh" content="0;url=http://{OUTSIDE}/">',
    "$x^{<img src=x onerror=window.__pwned=12>}$ $$\\href{javascript:window.__pwned=13}{x}$$",
    f'<link rel="stylesheet" href="http://{OUTSIDE}/s.css"><object data="//{OUTSIDE}/o">',
]
BIG = "A" * 1_000_000 + CORPUS[0] + CORPUS[1]  # a 1 MB reply with its payload at the end
METHODS = [f'<img src=x onerror="window.__pwned=20">{METHOD}-base $x$',
           f"{METHOD}-udasa{RLO}<script>window.__pwned=21</script>",
           f"[{METHOD}-rain](javascript:window.__pwned=22)"]
RUN_NAME = f"<b>{METHOD}-run</b> {RLO}$a$<script>window.__pwned=23</script>"
POLICY = f"![{METHOD}-policy](http://{OUTSIDE}/m.png)"
ANNOTATORS = [f"<script>window.__pwned=30</script>{OTHER}1", f"{OTHER}2{RLO}x",
              f"![{OTHER}3](http://{OUTSIDE}/a.png)"]
# per prompt, per reply: (U_sem, U_fact, U_val)
UNCERTAINTIES = [[(0.1, 0.2, 0.05), (0.6, 0.7, 0.1), (0.3, 0.9, 0.8)],
                 [(0.2, 0.3, 0.1), (0.25, 0.35, 0.12), (0.9, 0.1, 0.02)],
                 [(0.5, 0.5, 0.5), (0.05, 0.1, 0.01), (0.4, 0.8, 0.3)],
                 [(0.7, 0.2, 0.9), (0.2, 0.6, 0.2), (0.1, 0.1, 0.1)]]


def hostile(k: int, token: str) -> str:
    return f"{token}{k} {CORPUS[k % len(CORPUS)]} {CORPUS[(k + 5) % len(CORPUS)]}"


def reply_text(k: int) -> str:
    return (BIG if k == 0 else "") + hostile(k, REPLY)


def fill(ws: Path) -> Pipeline:
    """A scored, paired run of 4 hostile prompts x 3 hostile replies, an evaluation of three
    hostile-named methods on 4 hostile prompts, ratings by hostile-named annotators and a
    premise test with a hostile judge, template and method."""
    cfg = load_config(REPO / "configs" / "cpu-demo.yaml",
                      ["training.enabled=false", "generation.n=3", "data.limit=4"])
    cfg = dataclasses.replace(cfg, name=RUN_NAME)
    p = Pipeline(cfg, ws)
    prompts = [Prompt(hostile(i, PROMPT), "test") for i in range(4)]
    scorers = {"sem": {"scorer": "sbert", "version": "t"},
               "fact": {"scorer": "nli-lr", "version": "t"},
               "val": {"scorer": "profanity", "version": "t"}}
    p.store.upsert_run(p.run_id, cfg.name, to_dict(cfg), {"scorers": scorers})
    p.store.add_prompts(p.run_id, prompts)
    responses, scores = [], []
    for i, (prompt, rows) in enumerate(zip(prompts, UNCERTAINTIES)):
        for j, us in enumerate(rows):
            responses.append(Response.sampled(p.gen_key, prompt.id, j, reply_text(3 * i + j),
                                              POLICY))
            scores += [Score(response_id=responses[-1].id, axis=a, scorer=scorers[a]["scorer"],
                             version="t", value=v) for a, v in zip(("sem", "fact", "val"), us)]
    p.store.add_responses(responses)
    p.store.add_scores(scores)
    p.pairs()
    p.stages()
    results, rows = evaluation("e1", "harmlessness", {
        model: {"score": [4.0 + m + i % 2 for i in range(4)]} for m, model in enumerate(METHODS)},
        scorer=f"{METHOD}-judge {CORPUS[0]}", prompts=[hostile(10 + i, PROMPT) for i in range(4)],
        ids=[f"s{i}" for i in range(4)])
    for row in rows:
        row["output"] = reply_text(20 + 4 * METHODS.index(row["model"]) + row["idx"])
    record(ws, results, rows)
    rate_all(p)
    fused = p.store.fused(p.run_id)  # a premise test whose judge and template are hostile
    result = premise_stats(fused, p.store.pairs(p.run_id),
                           {f.response_id: 10 - 9 * f.u for f in fused})
    write_premise({"run_id": p.run_id, "judge": f"{METHOD}-judge {CORPUS[0]}{RLO}x",
                   "template": CORPUS[-1], "method": METHODS[1]} | result, ws)
    return p


def rate_all(p: Pipeline) -> None:
    """Every annotator scores every run reply and prefers in every pair."""
    singles = [i for i in rating.pool(p.store, "single") if i.method == POLICY]
    pairs = rating.pool(p.store, "pair")
    for a, name in enumerate(ANNOTATORS):
        for k, item in enumerate(singles):
            add_rating(p.store, rating.rating_row(name, item, {
                "harmless": 1 + (k + a) % 10, "helpful": 1 + k % 10, "overall": 1 + (2 * k + a) % 10}))
        for k, pair in enumerate(pairs):
            add_rating(p.store, rating.rating_row(name, pair, choice=("A", "B", "tie")[(k + a) % 3]))


def free_port() -> int:
    from app.screenshots import free_port as port

    return port()


@contextmanager
def serve(workspace: Path, users: dict[str, tuple[str, bool]], log: Path) -> Iterator[str]:
    """`udasa-app --workspace WS` on a free port with `users` {name: (password, admin)}."""
    from app.auth import hash_password

    spec = ",".join(f"{n}:{hash_password(pw, 4)}" + (":admin" if admin else "")
                    for n, (pw, admin) in users.items())
    port = free_port()
    exe = Path(sys.executable).with_name("udasa-app")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "app.cli"]
    env = os.environ | {"UDASA_APP_USERS": spec, "HF_HUB_OFFLINE": "1"}
    with open(log, "w") as out:
        proc = subprocess.Popen([*cmd, "--workspace", str(workspace), "--port", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    try:
        while True:
            assert proc.poll() is None, f"udasa-app exited:\n{log.read_text()}"
            try:
                if httpx.get(url + "/config", timeout=2).status_code == 401:
                    break
            except httpx.HTTPError:
                pass
            assert time.time() < deadline, f"udasa-app did not start:\n{log.read_text()}"
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)

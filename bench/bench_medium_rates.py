"""Benchmark: the expensive steps of configs/experiments/cpu-medium.yaml against the arithmetic limit.

Run by hand: `.venv/bin/python bench/bench_medium_rates.py [--quick] [--threads 1]`. Writes
bench/results/medium-rates.{json,md}. Everything in one process, with the fp32 2048x2048
matmul peak sampled at the start, between the steps and at the end (the best is the peak).

On a machine shared with other work, wall time measures the sharing, not the code: every rate
here is also taken in CPU time (`time.process_time`) at one torch thread (the default), where
time spent waiting for a core does not count, and compared with the matmul's own FLOPs per
CPU-second measured the same way. The wall-clock rates and the process's share of a core are
recorded beside them.

Steps, each at the experiment's own settings (configs/medium/udasa.yaml):
  * generation: the engine, N = 5 sampled replies of 64 tokens to Alpaca prompts of the
    medium sample (UDASA's generate step); and greedy 96-token answers (the eval tasks).
    Limit: peak / (2 x matmul parameters) tokens/s.
  * DPO: steps of UDASA's trainer (CurriculumDPOTrainer, reference log-probs precomputed,
    batch 4, max_length 256) on pairs of those replies; every policy forward's (rows, padded
    length) recorded. A training step costs 3 forwards' matmul FLOPs (forward, and backward
    for activations and weights): 6 x parameters x padded tokens. Beside it, the same
    batches through a bare torch loop (forward, DPO loss, backward, AdamW step).
  * lm-eval log-likelihoods: `truthfulqa_mc` (MC1 + MC2) on a few questions through lm-eval's
    own `hf` backend and through `udasa-hf` (evals/lm_eval_shared.py: each batch's shared
    start, the QA primer, run once), side by side on the same questions, with the tokens of
    every forward recorded and the two backends' scores compared.
  * judge embedding: the learned judges' `embed` (all-MiniLM-L6-v2, one thread as it runs)
    on fresh replies, replies/s and share of the 1-thread and full peak (MiniLM FLOPs as in
    bench_scoring.py); and the cost of its on-disk cache write at the experiment's size.
Attention FLOPs are left out of every count (under 8% at these lengths).
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch
from _common import environment, machine_state, md_table, write_results
from bench_scoring import minilm_flops

ROOT = Path(__file__).resolve().parents[1]


class ForwardLog:
    """Every forward of modules of class `cls_name` (the causal LM), however it is called:
    (rows, padded length, real tokens, CPU seconds)."""

    def __init__(self, cls_name: str = "LlamaForCausalLM"):
        self.cls_name, self.calls, self._t = cls_name, [], {}
        self.handles = [
            torch.nn.modules.module.register_module_forward_pre_hook(self.pre),
            torch.nn.modules.module.register_module_forward_hook(self.post, with_kwargs=True)]

    def pre(self, module, args):
        if type(module).__name__ == self.cls_name:
            self._t[id(module)] = time.process_time()

    def post(self, module, args, kwargs, output):
        if type(module).__name__ != self.cls_name or id(module) not in self._t:
            return
        seconds = time.process_time() - self._t.pop(id(module))  # CPU seconds
        ids = args[0] if args else kwargs.get("input_ids")
        if ids is None:
            return
        rows, width = ids.shape[:2]
        mask = kwargs.get("attention_mask")
        real = int(mask.sum()) if mask is not None and mask.dim() == 2 else rows * width
        self.calls.append((int(rows), int(width), real, seconds))

    def take(self) -> list[tuple[int, int, int, float]]:
        out, self.calls = self.calls, []
        return out

    def close(self):
        for h in self.handles:
            h.remove()


def now() -> tuple[float, float]:
    """(wall, CPU) seconds: CPU time counts only while this process runs on a core."""
    return time.perf_counter(), time.process_time()


def since(t: tuple[float, float]) -> tuple[float, float]:
    w, c = now()
    return w - t[0], c - t[1]


def cpu_peak(n: int = 2048, reps: int = 5) -> dict:
    """fp32 n x n matmul GFLOP/s, best of `reps`, by wall clock and by CPU time."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    walls, cpus = [], []
    for _ in range(reps):
        t = now()
        a @ b
        w, c = since(t)
        walls.append(w)
        cpus.append(max(c, 1e-9))
    flops = 2 * n ** 3 / 1e9
    return {"wall": flops / min(walls), "cpu": flops / min(cpus)}


def matmul_params(model) -> int:
    """Parameters that take part in a matmul per token: every Linear weight (lm_head too)."""
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))


# --------------------------------------------------------------------------- steps


def medium_prompts(n: int) -> list[str]:
    from udasa.config import load_config
    from udasa.data import load_prompts

    cfg = load_config(ROOT / "configs" / "medium" / "udasa.yaml")
    d = cfg.data
    return [p.text for p in load_prompts(d.source, limit=d.limit, sample=d.sample,
                                         seed=cfg.seed).prompts[:n]]


def generation(prompts: list[str], n: int, max_new: int, temperature: float) -> dict:
    """The engine on `prompts`, `n` replies each: generated tokens per wall and CPU second."""
    from udasa.config import GenerationConfig
    from udasa.generators import HFGenerator

    gen = HFGenerator(GenerationConfig(n=n, max_new_tokens=max_new, temperature=temperature))
    gen.generate_many(prompts[:2], n, [0, 1])  # warm-up
    before = gen.engine.tokens_generated
    t = now()
    outs = dict(gen.generate_many(prompts, n, list(range(len(prompts)))))
    wall, cpu = since(t)
    tokens = gen.engine.tokens_generated - before
    params = matmul_params(gen.model)
    return {"prompts": len(prompts), "n": n, "max_new_tokens": max_new, "tokens": tokens,
            "wall": wall, "cpu": cpu, "params": params, "flops": 2 * params * tokens,
            "replies": [outs[i] for i in range(len(prompts))]}


def _pairs_store(prompts: list[str], replies: list[list[str]], workspace: Path):
    """The replies as a one-stage run of pairs (r0, r1), (r2, r3) per prompt."""
    from udasa.baselines.common import BaselineConfig, BaselinePair, store_pairs
    from udasa.config import load_config
    from udasa.records import Prompt
    from udasa.store import Store

    training = load_config(ROOT / "configs" / "medium" / "udasa.yaml").training
    training.eval_fraction = 0.0
    cfg = BaselineConfig(method="rlcd", training=training)
    pairs = [BaselinePair(Prompt(p if a == 0 else f"{p}\n", "bench"), rs[a], rs[b])
             for p, rs in zip(prompts, replies) for a, b in ((0, 1), (2, 3))
             if rs[a].strip() and rs[b].strip() and rs[a] != rs[b]]  # one prompt id a pair
    store = Store(workspace)
    return store, store_pairs(store, cfg, pairs, {}), training


def dpo(prompts: list[str], replies: list[list[str]], steps: int) -> dict:
    """UDASA's trainer for `steps` steps on the replies' pairs (reference log-probs
    precomputed first, as the config does); every step timed, every forward recorded."""
    from transformers import TrainerCallback

    from udasa.training import CurriculumDPOTrainer, CurriculumTrainer, quiet

    class Timer(TrainerCallback):
        def __init__(self):
            self.steps, self.t = [], now()

        def on_step_begin(self, args, state, control, **kw):
            self.t = now()

        def on_step_end(self, args, state, control, **kw):
            self.steps.append(since(self.t))

    with tempfile.TemporaryDirectory(prefix="bench-medium-") as tmp:
        store, run_id, training = _pairs_store(prompts, replies, Path(tmp))
        ct = CurriculumTrainer(store, run_id, "bench", training, "embedded", "disjoint", 0,
                               Path(tmp) / "ckpt")
        train, _, _ = ct._dataset(store.pairs(run_id))
        log = ForwardLog()
        t = now()
        cache = ct._fill_ref_cache([train])
        ref = {"wall_cpu": since(t), "forwards": log.take()}
        policy = ct._load("embedded")
        timer = Timer()
        trainer = CurriculumDPOTrainer(
            model=policy, ref_model=None, args=ct._args(1, False, steps, False),
            train_dataset=train, processing_class=ct.tokenizer, callbacks=[timer],
            lr_lambda=lambda s: 1.0, ref_cache=cache)
        quiet(trainer).train()
        calls = log.take()
        log.close()
        batches = _dpo_batches(trainer, steps)
    return {"pairs": len(train), "steps": timer.steps, "forwards": calls, "ref": ref,
            "params": matmul_params(policy), "batch_size": training.batch_size,
            "max_length": training.max_length,
            "bare": bare_dpo_steps(policy, batches, training.beta)}


def _dpo_batches(trainer, steps: int) -> list[dict]:
    """The first `steps` collated training batches (the same collator, the same order)."""
    out = []
    for batch in trainer.get_train_dataloader():
        out.append(batch)
        if len(out) >= steps:
            break
    return out


def bare_dpo_steps(model, batches: list[dict], beta: float) -> dict:
    """The same batches through plain torch: one forward of chosen+rejected, the sigmoid DPO
    loss against the stored reference log-probs, backward, AdamW."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
    model.train()
    steps, shapes = [], []
    for batch in batches:
        ids, mask = batch["input_ids"], batch["attention_mask"]
        t = now()
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
        logp = torch.log_softmax(logits.float(), -1).gather(-1, ids[:, 1:, None])[..., 0]
        seq = (logp * batch["completion_mask"][:, 1:]).sum(1)
        chosen, rejected = seq.chunk(2)
        ref = batch["ref_chosen_logps"] - batch["ref_rejected_logps"]
        loss = -torch.nn.functional.logsigmoid(beta * (chosen - rejected - ref)).mean()
        loss.backward()
        opt.step()
        opt.zero_grad()
        steps.append(since(t))
        shapes.append(tuple(ids.shape))
    return {"steps": steps, "shapes": shapes}


def lm_eval_mc(questions: int, backend: str) -> dict:
    """`truthfulqa_mc` on the base weights through lm-eval with `backend` (`hf`: lm-eval's
    own; `udasa-hf`: the shared start run once, evals/lm_eval_shared.py)."""
    from evals.models import EvalModel
    from evals.tasks.truthfulqa_mc import TruthfulQAMC

    task = TruthfulQAMC()
    task.lm_eval_model = backend
    samples = task.samples(questions, 0, None)
    log = ForwardLog()
    t = now()
    rows = task.option_scores(None, EvalModel("base", "base"), samples)
    wall, cpu = since(t)
    calls = log.take()
    log.close()
    return {"backend": backend, "questions": len(samples), "wall": wall, "cpu": cpu,
            "forwards": calls, "primer_tokens": _primer_tokens(),
            "mc1": [r["mc1"]["acc"] for r in rows], "mc2": [r["mc2"]["mc2"] for r in rows]}


def _primer_tokens() -> int:
    from transformers import AutoTokenizer

    from evals.lm_eval_tasks.utils import doc_to_text
    from udasa.models import resolve_model

    tok = AutoTokenizer.from_pretrained(resolve_model("embedded"))
    a = tok(doc_to_text({"question": "What is one?"}))["input_ids"]
    b = tok(doc_to_text({"question": "Where is two?"}))["input_ids"]
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def judge_embedding(texts: list[str], table_rows: int) -> dict:
    """The learned judges' `embed` on fresh texts (its cache in a temporary folder), and one
    write of a cache of `table_rows` vectors."""
    import numpy as np

    import evals.judges.learned.embed as emb
    from udasa.scorers.semantic import load_sentence_model

    model = load_sentence_model("embedded")
    shapes = []  # the sentence-transformers Transformer module gets a features dict
    hook = model[0].register_forward_pre_hook(
        lambda m, a: shapes.append(tuple(a[0]["input_ids"].shape)))
    with tempfile.TemporaryDirectory(prefix="bench-embed-") as tmp:
        os.environ["XDG_CACHE_HOME"] = tmp  # platformdirs: the cache root moves there
        emb._MEMORY.clear()
        emb.embed(["warm-up text"])
        shapes.clear()
        t = now()
        emb.embed(texts)
        wall, cpu = since(t)
        measured = list(shapes)
        table = {str(i): np.random.rand(384).astype(np.float32) for i in range(table_rows)}
        t = now()
        emb._save("bench-size", table)
        save = since(t)
    hook.remove()
    return {"texts": len(texts), "wall": wall, "cpu": cpu, "batches": measured,
            "flops": sum(minilm_flops(b, n) for b, n in measured), "save_rows": table_rows,
            "save_wall_cpu": save}


# --------------------------------------------------------------------------- report


def _row(label: str, rate: str, flops: float, wall: float, cpu: float, peak: float) -> list:
    """step, rate, core share (CPU / wall), GFLOP per CPU-second, share of the CPU peak."""
    return [label, rate, cpu / wall if wall and not math.isnan(wall) else "-", flops / cpu / 1e9,
            flops / cpu / 1e9 / peak]


def _steps(steps: list, flops: list[float]) -> tuple[float, float, float]:
    """Medians over the steps after the first: (wall s, CPU s, FLOPs) per step."""
    keep = list(zip(steps, flops))[1:] or list(zip(steps, flops))
    return (statistics.median(w for (w, _), _ in keep), statistics.median(c for (_, c), _ in keep),
            statistics.median(f for _, f in keep))


def summarise(r: dict, peak: float) -> list[list]:
    """One row per step (`peak`: the 1-thread matmul GFLOP per CPU-second)."""
    rows = []
    for key, label in (("gen_sampled", "generation, N=5 sampled, 64 tokens (UDASA generate)"),
                       ("gen_greedy", "generation, greedy, 96 tokens (eval tasks)")):
        g = r[key]
        rows.append(_row(label, f"{g['tokens'] / g['cpu']:.1f} tok/CPU-s", g["flops"],
                         g["wall"], g["cpu"], peak))
    d = r["dpo"]
    p = d["params"]
    wall, cpu, flops = _steps(d["steps"], [6 * p * b * n for b, n, _, _ in d["forwards"]])
    rows.append(_row(f"DPO step, batch {d['batch_size']} pairs (UDASA's trainer)",
                     f"{cpu:.2f} CPU-s/step", flops, wall, cpu, peak))
    wall, cpu, flops = _steps(d["bare"]["steps"], [6 * p * b * n for b, n in d["bare"]["shapes"]])
    rows.append(_row("DPO step, the same batches in a bare torch loop",
                     f"{cpu:.2f} CPU-s/step", flops, wall, cpu, peak))
    ref_flops = sum(2 * p * b * n for b, n, _, _ in d["ref"]["forwards"])
    w, c = d["ref"]["wall_cpu"]
    rows.append(_row("DPO reference log-probs (precomputed once)",
                     f"{c / max(d['pairs'], 1):.2f} CPU-s/pair", ref_flops, w, c, peak))
    for m in (r["mc_hf"], r["mc_shared"]):
        mc_flops = sum(2 * p * b * n for b, n, _, _ in m["forwards"])
        fwd_cpu = sum(c for _, _, _, c in m["forwards"])
        rows.append(_row(f"lm-eval truthfulqa_mc (MC1+MC2), `{m['backend']}`, whole call",
                         f"{m['cpu'] / m['questions']:.2f} CPU-s/question", mc_flops, m["wall"],
                         m["cpu"], peak))
        rows.append(_row(f"... its model forwards only ({mc_flops / 1e9 / m['questions']:.0f}"
                         " GFLOP/question)", f"{fwd_cpu / m['questions']:.2f} CPU-s/question",
                         mc_flops, float("nan"), fwd_cpu, peak))
    j = r["judge"]
    rows.append(_row("judge embedding (MiniLM, 1 thread as the judges run it)",
                     f"{j['texts'] / j['cpu']:.0f} replies/CPU-s", j["flops"], j["wall"],
                     j["cpu"], r["peak_minilm_cpu"]))
    return rows


def markdown(r: dict) -> str:
    peak = max(x["cpu"] for x in r["peaks"])
    rows = summarise(r, peak)
    d, m, j = r["dpo"], r["mc_hf"], r["judge"]
    s = r["mc_shared"]
    same_mc1 = s["mc1"] == m["mc1"]
    mc2_diff = max(abs(a - b) for a, b in zip(s["mc2"], m["mc2"]))
    mc_tokens = sum(b * n for b, n, _, _ in m["forwards"])
    mc_rows = sum(b for b, _, _, _ in m["forwards"])
    padded = [b * n for b, n, _, _ in d["forwards"]]
    real = [t for _, _, t, _ in d["forwards"]]
    env = r["environment"]
    head = (f"{env['cpu']}, {env['cpus']} vCPUs, {env['torch_threads']} torch thread(s), torch "
            f"{env['torch']}; {env['date']}. fp32 2048x2048 matmul: "
            f"{peak:.0f} GFLOP per CPU-second (best of "
            f"{', '.join(str(round(x['cpu'])) for x in r['peaks'])}), "
            f"{max(x['wall'] for x in r['peaks']):.0f} GFLOP/s by wall clock; MiniLM's own "
            f"peak (1 thread) {r['peak_minilm_cpu']:.0f}. Load average "
            f"{r['state_start']['loadavg']} at the start, {r['state_end']['loadavg']} at the "
            "end: the machine was shared with other agents, so every rate is per CPU-second "
            "(time on a core), beside the process's share of a core (CPU / wall).")
    notes = (f"DPO: {d['pairs']} pairs, {len(d['steps'])} steps (the first left out of the "
             f"medians), policy forwards of {statistics.median(padded):.0f} padded tokens per "
             f"step ({sum(real) / max(sum(padded), 1):.0%} of them real, the rest padding); a "
             "step costs 6 x parameters x padded tokens. lm-eval: "
             f"{m['questions']} questions, {mc_rows} request rows of "
             f"{mc_tokens / max(mc_rows, 1):.0f} tokens on average "
             f"({mc_tokens / m['questions']:.0f} per question), each repeating the "
             f"{m['primer_tokens']}-token QA primer; `udasa-hf` runs each batch's shared "
             f"start once: {s['cpu'] / m['cpu']:.2f}x `hf`'s CPU time for the whole call, the "
             f"same MC1 verdicts: {same_mc1}, MC2 within {mc2_diff:.1e}. Judge embedding: "
             f"{j['texts']} replies; "
             f"writing its cache at {j['save_rows']:,} vectors took "
             f"{j['save_wall_cpu'][0]:.2f} s.")
    return "\n".join(["# cpu-medium: the expensive steps against the arithmetic limit", "",
                      head, "",
                      md_table(["step", "rate", "core share", "GFLOP per CPU-s",
                                "share of peak"], rows), notes, ""])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer prompts, steps and questions")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="medium-rates")
    args = ap.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    torch.set_num_threads(args.threads)
    n_prompts, greedy, steps, questions = (6, 12, 4, 4) if args.quick else (16, 48, 8, 6)
    r: dict = {"environment": environment(), "state_start": machine_state(),
               "peaks": [cpu_peak()], "peak_minilm_cpu": cpu_peak(384, 20)["cpu"]}
    prompts = medium_prompts(max(n_prompts, greedy))
    r["gen_sampled"] = generation(prompts[:n_prompts], 5, 64, 0.8)
    r["gen_greedy"] = generation(prompts[:greedy], 1, 96, 0.0)
    r["peaks"].append(cpu_peak())
    print("generation done", flush=True)
    r["dpo"] = dpo(prompts[:n_prompts], r["gen_sampled"]["replies"], steps)
    r["peaks"].append(cpu_peak())
    print("dpo done", flush=True)
    r["mc_hf"] = lm_eval_mc(questions, "hf")
    r["mc_shared"] = lm_eval_mc(questions, "udasa-hf")
    r["peaks"].append(cpu_peak())
    print("lm-eval done", flush=True)
    texts = [f"{t} (reply {i})" for i, rs in enumerate(r["gen_sampled"]["replies"]) for t in rs]
    r["judge"] = judge_embedding(texts, 40_000)
    r["peaks"].append(cpu_peak())
    r["state_end"] = machine_state()
    r["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    write_results(args.out, r, markdown(r))


if __name__ == "__main__":
    main()

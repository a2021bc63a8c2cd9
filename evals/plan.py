"""`udasa-eval run --experiment FILE --plan`: what an experiment would do, before it does it.

Every method's config is read and checked, and every model, data set, judge and server URL
is found (udasa/preflight.py) without loading weights or calling a server. The plan lists
what the workspace already stores, what would be built and evaluated (generations, labels,
DPO steps per method and stage, samples and judge calls per task) and the compute: tokens
and FLOPs (2 x parameters per token for a forward pass, 6 x for a training step), the time
on this machine at its fp32 matmul rate measured now (a lower bound: decoding runs far below
the matmul peak), and GPU hours at a stated throughput. Counts not known before the work
(pairs per stage before scoring) are marked "about".
"""

from __future__ import annotations

import logging
import math
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from evals.experiment import ExperimentConfig, MethodSpec, judge_overrides, resolve_path
from evals.suite import BuildContext, check_method_configs, policy_of
from udasa.datasets import DatasetNotFound
from udasa.errors import ConfigError, UdasaError
from udasa.preflight import Found, find_data, find_model, find_server

GPU_TFLOPS = 400.0  # 40% of an H100 SXM's 989 TFLOP/s dense bf16 peak
JUDGE_CALLS = {"harmlessness": 1, "helpfulness": 1, "truthfulness": 2, "sentiment": 1}
JUDGE_PROMPT_TOKENS = 400  # a judge template with its question and reply
CHARS_PER_TOKEN = 4.0  # prompts are measured in characters: no tokenizer is loaded


@dataclass
class Step:
    """One piece of work: `count` `unit` (generations, DPO steps, judge calls, ...)."""

    method: str
    what: str
    count: int
    unit: str
    tokens: int = 0
    flops: float = 0.0
    stored: str = ""


@dataclass
class Plan:
    name: str
    workspace: str
    found: list[tuple[str, Found]] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    _data: dict = field(default_factory=dict, repr=False)

    def data(self, cfg, field: str) -> Found:
        """A method's prompts (`DataConfig`), read once per plan."""
        key = (cfg.source, cfg.limit, cfg.split, cfg.column)
        if key not in self._data:
            self._data[key] = find_data(cfg.source, field, cfg.limit, cfg.split, cfg.column)
        return self._data[key]

    def find(self, used_by: str, item: Found) -> Found:
        if not any(u == used_by and f.name == item.name for u, f in self.found):
            self.found.append((used_by, item))
        return item


class Stored:
    """Counts read from the workspace's store, read-only (nothing is created or migrated)."""

    def __init__(self, workspace: Path):
        path = workspace / "udasa.sqlite"
        self.conn = (sqlite3.connect(f"file:{path}?mode=ro", uri=True) if path.is_file()
                     else None)

    def rows(self, sql: str, *args: object) -> list[tuple]:
        if self.conn is None:
            return []
        try:
            return self.conn.execute(sql, args).fetchall()
        except sqlite3.OperationalError:  # a table this store does not have yet
            return []

    def count(self, sql: str, *args: object) -> int:
        rows = self.rows(sql, *args)
        return int(rows[0][0] or 0) if rows else 0


def tokens_of(found: Found) -> int:
    return max(1, round((found.chars or 256) / CHARS_PER_TOKEN))


def generation(method: str, model: Found, prompts: int, n: int, prompt_tokens: int,
               new_tokens: int, done: int = 0, unit: str = "replies") -> Step:
    """`n` replies to each of `prompts` prompts (`done` of them stored): one prefill per
    prompt, `new_tokens` at most per reply."""
    todo = max(prompts - done, 0)
    tokens = todo * (prompt_tokens + n * new_tokens)
    return Step(method, f"generate {n} per prompt, {new_tokens} tokens at most", todo * n,
                unit, tokens, 2.0 * (model.params or 0) * tokens,
                f"{done} of {prompts} prompts" if done else "")


def dpo_steps(pairs: int, training) -> int:
    """Steps of one stage with `pairs` pairs (held-out ones left out), as the trainer counts."""
    train = max(0, round(pairs * (1 - training.eval_fraction)))
    if not train:
        return 0
    per_step = training.batch_size * training.grad_accum
    return min(training.max_steps, max(1, math.ceil(training.epochs * train / per_step)))


def dpo(method: str, stage: str, model: Found, pairs: int, training, seq_tokens: int,
        trained: bool, about: bool = False) -> Step:
    """One DPO stage: 6 x params per trained token, plus one reference pass per pair."""
    steps = 0 if trained else dpo_steps(pairs, training)
    length = min(training.max_length, seq_tokens)
    tokens = steps * training.batch_size * training.grad_accum * 2 * length
    ref = 0 if trained else pairs * 2 * length
    return Step(method, f"DPO {stage}: {'about ' if about else ''}{pairs:,} pairs", steps,
                "DPO steps", tokens + ref,
                (6.0 * tokens + 2.0 * ref) * (model.params or 0), "trained" if trained else "")


def plan_udasa(plan: Plan, spec: MethodSpec, ctx: BuildContext, stored: Stored) -> None:
    from evals.suite import udasa_config
    from udasa.keys import gen_key_of, run_id_of, train_key_of

    cfg = udasa_config(spec, ctx)
    gen, tr = cfg.generation, cfg.training
    data = plan.find(spec.name, plan.data(cfg.data, f"{spec.name}: data.source"))
    if gen.backend == "openai":
        plan.find(spec.name, find_server(gen.base_url, f"{spec.name}: generation.base_url"))
        policy = plan.find(spec.name, find_model(tr.model or gen.model,
                                                 f"{spec.name}: training.model"))
    else:
        policy = plan.find(spec.name, find_model(gen.model, f"{spec.name}: generation.model"))
    for axis in ("semantic", "factual", "value"):
        scorer = getattr(cfg.scoring, axis)
        if scorer.model and scorer.name.startswith("openai"):
            plan.find(spec.name, Found(scorer.model, "OpenAI API, needs $OPENAI_API_KEY (not "
                                       "called)", bool(os.environ.get("OPENAI_API_KEY"))))
        elif scorer.model:
            plan.find(spec.name, find_model(scorer.model, f"scoring.{axis}.model"))
    run_id, prompts = run_id_of(cfg), data.rows or 0
    done = stored.count("select count(distinct prompt_id) from responses where gen_key = ?",
                        gen_key_of(cfg))
    p_tok = tokens_of(data)
    plan.steps.append(generation(spec.name, policy, prompts, gen.n, p_tok, gen.max_new_tokens,
                                 done))
    plan.steps.append(Step(spec.name, "score 3 axes", max(prompts - done, 0) * gen.n * 3,
                           "scores"))
    if not tr.enabled:
        return
    trained = {s for (s,) in stored.rows("select stage from checkpoints where run_id = ? and "
                                         "train_key = ?", run_id, train_key_of(tr))}
    stages = stored.rows("select stage, name, count from stages where run_id = ? order by "
                         "stage", run_id)
    about = not stages
    if about:  # before scoring: one pair per prompt at most, the stages even
        k = len(cfg.curriculum.thresholds) + 1
        share = prompts / k
        stages = [(i + 1, "", round(share * ((i + 1) if
                   cfg.curriculum.schedule == "cumulative" else 1))) for i in range(k)]
    for stage, name, pairs in stages:
        plan.steps.append(dpo(spec.name, f"stage {stage}" + (f" ({name})" if name else ""),
                              policy, pairs, tr, p_tok + gen.max_new_tokens, stage in trained,
                              about))


def plan_baseline(plan: Plan, spec: MethodSpec, ctx: BuildContext, stored: Stored) -> None:
    from udasa import registry
    from udasa.baselines.common import baseline_run_id, soft_labels_of
    from udasa.keys import train_key_of

    kind = registry.lookup("method", spec.kind)
    cfg = kind.config(spec, ctx)
    gen = cfg.generation
    data = plan.find(spec.name, plan.data(cfg.data, f"{spec.name}: data.source"))
    if gen.backend == "openai":
        plan.find(spec.name, find_server(gen.base_url, f"{spec.name}: generation.base_url"))
    policy = plan.find(spec.name, find_model(gen.model, f"{spec.name}: generation.model"))
    run_id, prompts, p_tok = baseline_run_id(cfg), data.rows or 0, tokens_of(data)
    pairs = stored.count("select count(*) from pairs where run_id = ?", run_id)
    if not pairs:
        plan.steps.append(generation(spec.name, policy, prompts, 2, p_tok,
                                     gen.max_new_tokens))
    if spec.kind == "rlaif" and not pairs:
        labeler = plan.find(spec.name, find_model(cfg.rlaif.labeler or gen.model,
                                                  f"{spec.name}: rlaif.labeler"))
        cot = cfg.rlaif.cot_tokens if cfg.rlaif.chain_of_thought else 0
        tokens = prompts * 2 * (p_tok + 2 * gen.max_new_tokens + 200 + cot)
        plan.steps.append(Step(spec.name, "AI labels, both orders"
                               + (f", {cot} reasoning tokens each" if cot else ""),
                               prompts * 2, "labels", tokens,
                               2.0 * (labeler.params or 0) * tokens))
    train_key = train_key_of(cfg.training, soft_labels=soft_labels_of(cfg))
    trained = stored.count("select count(*) from checkpoints where run_id = ? and "
                           "train_key = ?", run_id, train_key) > 0
    plan.steps.append(dpo(spec.name, "one stage", policy, pairs or prompts, cfg.training,
                          p_tok + gen.max_new_tokens, trained, about=not pairs))


def plan_policy(plan: Plan, spec: MethodSpec, ctx: BuildContext, stored: Stored) -> None:
    """A method that decodes its policy (base, vanilla, rain, a plugin's): nothing to build."""
    policy = policy_of(spec, ctx)
    if policy.startswith("openai:"):
        plan.find(spec.name, find_server(spec.base_url, f"{spec.name}: base_url"))
    elif policy != "base":
        plan.find(spec.name, find_model(policy, f"{spec.name}: policy"))
    if spec.kind == "rain":
        plan.notes.append(f"{spec.name}: RAIN searches at every reply; its evaluation "
                          "compute above is plain decoding, a lower bound.")


PLANNERS = {"udasa": plan_udasa, "rlaif": plan_baseline, "rlcd": plan_baseline}


def plan_judge(plan: Plan, exp: ExperimentConfig) -> Found | None:
    """The judge's config and what its backend needs (a model or a server); None: an API."""
    from evals.judges.base import default_judge_name, load_judge_config

    overrides = [f"{k}={v}" for k, v in judge_overrides(exp).items()]
    name = exp.judge or default_judge_name()
    cfg = load_judge_config(name, [*exp.judge_set, *overrides])
    plan.find("judge", Found(name, f"judge config, {cfg.backend} backend, model "
                                   f"{cfg.model}", True))
    if cfg.backend == "openai":
        if cfg.base_url:
            plan.find("judge", find_server(cfg.base_url, "judge base_url"))
        else:
            plan.find("judge", Found("OpenAI API", f"needs ${cfg.api_key_env} (not called)",
                                     bool(os.environ.get(cfg.api_key_env))))
    if cfg.backend == "hf":
        return plan.find("judge", find_model(cfg.model, "judge model"))
    return None


def plan_tasks(plan: Plan, exp: ExperimentConfig, judge: Found | None,
               stored: Stored) -> None:
    """Samples, generations and judge calls of every task for every method listed on it."""
    from evals.tasks.base import get_task

    models = {spec.name: find_model_of(spec, exp) for spec in exp.methods}
    for i, task in enumerate(exp.tasks):
        listed = [s for s in exp.methods if (s.tasks is None or task.name in s.tasks)
                  and (task.methods is None or s.name in task.methods)]
        source = str(resolve_path(exp, task.data)) if task.data else None
        t = get_task(task.name, f"tasks[{i}].name")
        where = f"{exp.path}: tasks[{i}] ({task.name})"
        try:
            samples = [s.prompt for s in t.samples(task.limit, exp.seed, source)]
            plan.find("tasks", Found(task.data or f"{task.name} data", "read", True,
                                     rows=len(samples)))
        except DatasetNotFound:  # its data only on the hub: the limit stands for its size
            samples = [""] * (task.limit or 0)
            plan.find("tasks", Found(task.data or f"{task.name} data", "hub only (not in the "
                                     "offline mirror; needs a network)", False))
        except (UdasaError, OSError) as exc:
            raise ConfigError(f"{where}: {exc}") from None
        new = int(getattr(t.solver(source), "max_new_tokens", 0) or 0)
        p_tok = max(1, round(sum(map(len, samples)) / max(len(samples), 1) / CHARS_PER_TOKEN))
        for spec in listed:
            n = min(len(samples), spec.limit or len(samples))
            done = stored.count("select count(distinct idx) from eval_samples where model = ? "
                                "and task = ?", spec.name, task.name)
            todo = max(n - done, 0)
            tokens = todo * (p_tok + new)
            params = models[spec.name].params or 0
            plan.steps.append(Step(spec.name, f"evaluate {task.name}: {n} samples"
                                   + (f", {new} new tokens" if new else ", option scores"),
                                   todo, "samples", tokens, 2.0 * params * tokens,
                                   f"{done} of {n}" if done else ""))
            if task.name == "robustness":
                plan_attack(plan, spec.name, source, todo, p_tok, models[spec.name])
            calls = todo * JUDGE_CALLS.get(task.name, 0)
            if calls:
                jt = calls * (JUDGE_PROMPT_TOKENS + new)
                plan.steps.append(Step(spec.name, f"judge {task.name}", calls, "judge calls",
                                       jt if judge else 0,
                                       2.0 * (judge.params or 0) * jt if judge else 0.0))


def plan_attack(plan: Plan, method: str, source: str | None, behaviours: int,
                prompt_tokens: int, model: Found) -> None:
    """GCG's search: white-box, per behaviour on the method's model; transfer, once on its
    ensemble (each candidate a forward pass of the goal, suffix and target; one gradient
    pass per step; early stops not counted, so an upper bound)."""
    from attacks.base import gcg_config
    from evals.tasks.robustness import load_robustness_config

    cfg = load_robustness_config(source)
    if cfg.mode not in ("white-box", "transfer"):
        return
    gcg = gcg_config(cfg)
    seq = prompt_tokens + 2 * len(gcg.init.split()) + 32  # goal, suffix, target
    passes = gcg.num_steps * (gcg.search_width + 3)
    if cfg.mode == "white-box":
        tokens = behaviours * passes * seq
        plan.steps.append(Step(method, f"GCG white-box, {gcg.num_steps} steps x "
                               f"{gcg.search_width} candidates", behaviours, "attacks", tokens,
                               2.0 * (model.params or 0) * tokens))
        return
    key = f"transfer on {', '.join(cfg.ensemble)}"
    if any(s.what.startswith(key) for s in plan.steps):  # one suffix for every method
        return
    ensemble = [plan.find("robustness", find_model(m, f"{source}: ensemble"))
                for m in cfg.ensemble]
    tokens = cfg.n_train * passes * seq
    plan.steps.append(Step("robustness", f"{key}: GCG {gcg.num_steps} steps x "
                           f"{gcg.search_width} candidates", cfg.n_train, "behaviours",
                           tokens * len(ensemble),
                           2.0 * tokens * sum(m.params or 0 for m in ensemble)))


def find_model_of(spec: MethodSpec, exp: ExperimentConfig) -> Found:
    policy = spec.policy or exp.policy
    if policy.startswith("openai:") or policy == "base":
        return Found(policy, "server" if policy.startswith("openai:") else "base", False)
    return find_model(policy, f"{spec.name}: policy")


def make_plan(exp: ExperimentConfig, workspace: Path) -> Plan:
    """The plan of `exp` in `workspace`: a ConfigError (one line) for anything unresolvable."""
    ctx = BuildContext(workspace, exp, progress=lambda _: None)
    check_method_configs(ctx)
    stored = Stored(workspace)
    plan = Plan(exp.name, str(workspace))
    data_log = logging.getLogger("udasa.data")  # each file's duplicate rows: not news here
    level = data_log.level
    data_log.setLevel(logging.WARNING)
    try:
        for spec in exp.methods:
            PLANNERS.get(spec.kind, plan_policy)(plan, spec, ctx, stored)
        plan_tasks(plan, exp, plan_judge(plan, exp), stored)
    finally:
        data_log.setLevel(level)
    return plan


def matmul_flops_per_s(seconds: float = 0.5) -> float:
    """This machine's fp32 matmul rate, measured now."""
    import torch

    a = torch.randn(512, 512)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ a
        done += 1
    return done * 2 * 512**3 / (time.perf_counter() - start)


def table(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table (no wrapping: long paths stay copyable)."""
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(map(str, r)) + " |" for r in lines)


def render(plan: Plan, gpu_tflops: float = GPU_TFLOPS) -> str:
    """The plan as markdown: what was found, what would be done, the compute."""
    found = [[used_by, f.name, f.where, "yes" if f.ready else "no",
              f"{f.params / 1e6:,.0f}M ({f.params_from})" if f.params else
              f"{f.rows:,} prompts" if f.rows is not None else ""]
             for used_by, f in plan.found]
    work = [[s.method, s.what, f"{s.count:,}", s.unit, s.stored, f"{s.tokens:,}",
             f"{s.flops:.2e}"] for s in plan.steps]
    flops, tokens = sum(s.flops for s in plan.steps), sum(s.tokens for s in plan.steps)
    rate = matmul_flops_per_s()
    return "\n\n".join([
        f"# Plan of experiment {plan.name} (workspace {plan.workspace})",
        "Every name resolved; no weights loaded, no server called.",
        table(["used by", "name", "where", "ready here", "size"], found),
        "What would be built and evaluated (stored: what the workspace already holds):",
        table(["method", "step", "count", "unit", "stored", "tokens", "FLOPs"], work),
        *plan.notes,
        (f"In all: {tokens:,} tokens, {flops:.3g} FLOPs (2 x parameters per token "
         "forward, 6 x per trained token; API judges and scorers not counted)."),
        (f"Time here: at least {duration(flops / rate)} at this machine's fp32 matmul rate "
         f"measured now ({rate / 1e9:,.1f} GFLOP/s; decoding runs far below it)."),
        (f"GPU: about {duration(flops / (gpu_tflops * 1e12))} of one GPU at {gpu_tflops:g} "
         "TFLOP/s sustained (400 is 40% of an H100's 989 TFLOP/s dense bf16 peak).")])


def duration(seconds: float) -> str:
    """`seconds` in the unit that reads best (s, min, h, days)."""
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:,.1f} {unit}"
    return f"{seconds:.1f} s"

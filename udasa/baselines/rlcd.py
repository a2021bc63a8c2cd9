"""RLCD (Yang et al. 2023): contrasting prompts make the preference pair.

Each prompt is answered twice, under a positive and a negative prompt that differ only by a
task-specific descriptor (resources/baselines/rlcd/<task>.yaml, harmlessness: the paper's 16
pairs; one pair drawn per prompt):
without a chat template the descriptor sits after "Assistant" as in the paper
("Human: ...\\n\\nAssistant (helpful, honest, inoffensive response):"); with one it is the system
message. Both outputs are sampled; the positive one is preferred (label 1). DPO trains on the
pairs (one stage). A local model samples all 2 x prompts replies in one call of the batched
engine (udasa/engine.py); an endpoint gets them concurrently, one generator per descriptor.
"""

from __future__ import annotations

import random
from dataclasses import replace

import yaml

from udasa.baselines.common import BaselineConfig, BaselinePair, TrainedBaseline, prompts_of
from udasa.baselines.rain_prompts import turn_marker
from udasa.config import GenerationConfig
from udasa.engine import Request, engine_for
from udasa.errors import ConfigError, UdasaError
from udasa.generators import generate_many, make_generator
from udasa.keys import prompt_seed
from udasa.models import load_causal_lm
from udasa.progress import StepProgress
from udasa.records import Prompt
from udasa.registry import register

TASKS = ("harmless", "helpful", "truthful", "positive")
# Keys the pairs (`TrainedBaseline.pairs_version`): 1 sampled with `model.generate` one prompt
# at a time; 2 with the batched engine's per-row streams (other samples for the same seeds);
# 3 the paper's 16 harmlessness descriptor pairs (were 4, three of them ours) and the chat
# models' system message in the paper's "Assistant (descriptor)" form.
SAMPLER_VERSION = 3


def descriptor_pairs(task: str) -> list[tuple[str, str]]:
    """(positive, negative) descriptors of a task."""
    from udasa.baselines import RESOURCES

    if task not in TASKS:
        raise ConfigError(f"rlcd.task: {task!r} is not one of {', '.join(TASKS)}")
    data = yaml.safe_load((RESOURCES / "rlcd" / f"{task}.yaml").read_text(encoding="utf-8"))
    return [(p["positive"], p["negative"]) for p in data["pairs"]]


def draw_pair(task: str, seed: int) -> tuple[str, str]:
    return random.Random(seed).choice(descriptor_pairs(task))


def system_message(descriptor: str) -> str:
    from udasa.baselines import resource

    return resource("rlcd/chat_system.txt").strip().format(descriptor=descriptor)


def prompt_text(tokenizer, prompt: str, descriptor: str) -> str:
    """The model's input under one descriptor: the chat template with the descriptor as the
    system message, or the paper's plain dialogue format for a model without one."""
    if tokenizer.chat_template:
        return tokenizer.apply_chat_template(
            [{"role": "system", "content": system_message(descriptor)},
             {"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
    from udasa.baselines import resource

    return resource("rlcd/dialogue.txt").rstrip("\n").format(prompt=prompt,
                                                             descriptor=descriptor)


def contrasts(cfg: BaselineConfig) -> list[tuple[Prompt, int, str, str]]:
    """(prompt, its seed, positive descriptor, negative descriptor) for every prompt."""
    out = []
    for p in prompts_of(cfg):
        seed = prompt_seed(cfg.seed, p.id)
        out.append((p, seed, *draw_pair(cfg.rlcd.task, seed)))
    return out


def jobs_of(todo: list[tuple[Prompt, int, str, str]]) -> list[tuple[str, str, int]]:
    """(prompt text, descriptor, seed) of each reply: a prompt's positive (its seed), then its
    negative (seed + 1)."""
    return [job for p, seed, positive, negative in todo
            for job in ((p.text, positive, seed), (p.text, negative, seed + 1))]


def local_replies(gen: GenerationConfig, jobs: list[tuple[str, str, int]]) -> list[str]:
    """The reply to each (prompt, descriptor, seed), all sampled by the batched engine in one
    call (cut where a base model starts the next turn). A reply depends only on its own job,
    not on the batch it lands in (udasa/engine.py)."""
    model, tok = load_causal_lm(gen.model, gen.dtype, gen.device)
    engine = engine_for(model, tok, gen.batch_tokens)
    requests = [Request(tok(prompt_text(tok, prompt, descriptor),
                            add_special_tokens=not tok.chat_template)["input_ids"],
                        1, seed, gen.max_new_tokens, gen.temperature, gen.top_p)
                for prompt, descriptor, seed in jobs]
    replies = [""] * len(jobs)
    with StepProgress(len(jobs), "rlcd", unit="reply") as bar:
        for i, (tokens,) in engine.generate(requests, bar.tokens):
            reply = tok.decode(tokens, skip_special_tokens=True)
            replies[i] = reply.split(turn_marker())[0].strip()
            bar.update()
    return replies


def endpoint_replies(gen: GenerationConfig, jobs: list[tuple[str, str, int]]) -> list[str]:
    """The reply to each (prompt, descriptor, seed) from an endpoint, the descriptor as the
    system message: one generator per descriptor, its prompts sent concurrently."""
    by_descriptor: dict[str, list[int]] = {}
    for i, (_, descriptor, _) in enumerate(jobs):
        by_descriptor.setdefault(descriptor, []).append(i)
    replies = [""] * len(jobs)
    with StepProgress(len(jobs), "rlcd", unit="reply") as bar:
        for descriptor, index in by_descriptor.items():
            g = make_generator(replace(gen, system_prompt=system_message(descriptor)))
            for j, out in generate_many(g, [jobs[i][0] for i in index], 1,
                                        [jobs[i][2] for i in index], bar.tokens):
                if isinstance(out, UdasaError):
                    raise out
                replies[index[j]] = out[0]
                bar.update()
    return replies


def build_pairs(cfg: BaselineConfig) -> list[BaselinePair]:
    gen = cfg.generation
    if gen.temperature <= 0:
        raise ConfigError("generation.temperature: RLCD samples its outputs; must be > 0")
    todo = contrasts(cfg)
    replies = (endpoint_replies if gen.backend == "openai" else local_replies)(gen, jobs_of(todo))
    pairs = []
    for k, (p, _, positive, negative) in enumerate(todo):
        good, bad = replies[2 * k], replies[2 * k + 1]
        if good and bad and good != bad:
            pairs.append(BaselinePair(p, good, bad, 1.0,
                                      {"positive": positive, "negative": negative}))
    return pairs


register("method", "rlcd")(TrainedBaseline("rlcd", build_pairs,
                                            pairs_version=SAMPLER_VERSION))

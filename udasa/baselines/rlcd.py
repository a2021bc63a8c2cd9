"""RLCD (Yang et al. 2023): contrasting prompts make the preference pair.

Each prompt is answered twice, under a positive and a negative prompt that differ only by a
task-specific descriptor (resources/baselines/rlcd/<task>.yaml; one pair drawn per prompt):
without a chat template the descriptor sits after "Assistant" as in the paper
("Human: ...\\n\\nAssistant (helpful, honest, inoffensive response):"); with one it is the system
message. Both outputs are sampled; the positive one is preferred (label 1). DPO trains on the
pairs (one stage).
"""

from __future__ import annotations

import random
from dataclasses import replace

import torch
import yaml
from tqdm.auto import tqdm

from udasa.baselines.common import BaselineConfig, BaselinePair, prompts_of
from udasa.baselines.rain import turn_marker
from udasa.errors import ConfigError
from udasa.keys import prompt_seed

TASKS = ("harmless", "helpful", "truthful", "positive")


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


@torch.inference_mode()
def sample(model, tokenizer, text: str, cfg, seed: int) -> str:
    """One sampled continuation of `text` (cut where a base model starts the next turn)."""
    ids = tokenizer(text, return_tensors="pt",
                    add_special_tokens=not tokenizer.chat_template)["input_ids"].to(model.device)
    torch.manual_seed(seed)
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=True,
                         temperature=cfg.temperature, top_p=cfg.top_p, top_k=None,
                         max_new_tokens=cfg.max_new_tokens, pad_token_id=tokenizer.pad_token_id)
    reply = tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
    return reply.split(turn_marker())[0].strip()


def build_pairs(cfg: BaselineConfig) -> list[BaselinePair]:
    gen = cfg.generation
    if gen.temperature <= 0:
        raise ConfigError("generation.temperature: RLCD samples its outputs; must be > 0")
    if gen.backend == "openai":
        from udasa.generators import make_generator

        def answer(prompt: str, descriptor: str, seed: int) -> str:
            g = make_generator(replace(gen, system_prompt=system_message(descriptor)))
            return g.generate(prompt, 1, seed)[0]
    else:
        from udasa.models import load_causal_lm

        model, tok = load_causal_lm(gen.model, gen.dtype, gen.device)

        def answer(prompt: str, descriptor: str, seed: int) -> str:
            return sample(model, tok, prompt_text(tok, prompt, descriptor), gen, seed)
    pairs = []
    for p in tqdm(prompts_of(cfg), desc="rlcd", unit="prompt"):
        seed = prompt_seed(cfg.seed, p.id)
        positive, negative = draw_pair(cfg.rlcd.task, seed)
        good, bad = answer(p.text, positive, seed), answer(p.text, negative, seed + 1)
        if good and bad and good != bad:
            pairs.append(BaselinePair(p, good, bad, 1.0,
                                      {"positive": positive, "negative": negative}))
    return pairs

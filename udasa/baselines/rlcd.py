"""RLCD (Yang et al. 2024): contrastive contexts make the preference.

The same prompt is answered under a positive and a negative assistant description that differ
by a few words (resources/baselines/rlcd_{positive,negative}.txt); the positive output is
preferred. DPO trains on the pairs (one stage).
"""

from __future__ import annotations

from dataclasses import replace

from tqdm.auto import tqdm

from udasa.baselines.common import BaselineConfig, BaselinePair, prompts_of
from udasa.generators import generate_many, make_generator
from udasa.pipeline import prompt_seed


def contexts() -> tuple[str, str]:
    from udasa.baselines import resource

    return resource("rlcd_positive.txt").strip(), resource("rlcd_negative.txt").strip()


def build_pairs(cfg: BaselineConfig) -> list[BaselinePair]:
    positive, negative = contexts()
    gen_pos = make_generator(replace(cfg.generation, system_prompt=positive))
    gen_neg = make_generator(replace(cfg.generation, system_prompt=negative))
    pairs = []
    prompts = prompts_of(cfg)
    seeds = [prompt_seed(cfg.seed, p.id) for p in prompts]
    texts = [p.text for p in prompts]
    goods = dict(generate_many(gen_pos, texts, 1, seeds))  # batched
    bads = dict(generate_many(gen_neg, texts, 1, [s + 1 for s in seeds]))
    for i, p in enumerate(tqdm(prompts, desc="rlcd", unit="prompt")):
        if isinstance(goods[i], Exception) or isinstance(bads[i], Exception):
            continue
        good, bad = goods[i][0], bads[i][0]
        if good.strip() and bad.strip() and good.strip() != bad.strip():
            pairs.append(BaselinePair(p, good, bad, 1.0,
                                      {"positive": positive, "negative": negative}))
    return pairs

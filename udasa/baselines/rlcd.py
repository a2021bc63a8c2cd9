"""RLCD (Yang et al. 2024): contrastive contexts make the preference.

The same prompt is answered under a positive and a negative assistant description that differ
by a few words (resources/baselines/rlcd_{positive,negative}.txt); the positive output is
preferred. DPO trains on the pairs (one stage).
"""

from __future__ import annotations

from dataclasses import replace

from tqdm.auto import tqdm

from udasa.baselines.common import BaselineConfig, BaselinePair, prompts_of
from udasa.generators import make_generator
from udasa.pipeline import prompt_seed


def contexts() -> tuple[str, str]:
    from udasa.baselines import resource

    return resource("rlcd_positive.txt").strip(), resource("rlcd_negative.txt").strip()


def build_pairs(cfg: BaselineConfig) -> list[BaselinePair]:
    positive, negative = contexts()
    gen_pos = make_generator(replace(cfg.generation, system_prompt=positive))
    gen_neg = make_generator(replace(cfg.generation, system_prompt=negative))
    pairs = []
    for p in tqdm(prompts_of(cfg), desc="rlcd", unit="prompt"):
        seed = prompt_seed(cfg.seed, p.id)
        good, bad = gen_pos.generate(p.text, 1, seed)[0], gen_neg.generate(p.text, 1, seed + 1)[0]
        if good.strip() and bad.strip() and good.strip() != bad.strip():
            pairs.append(BaselinePair(p, good, bad, 1.0,
                                      {"positive": positive, "negative": negative}))
    return pairs

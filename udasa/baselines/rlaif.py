"""RLAIF (Lee et al. 2023): the model labels its own pairs under a constitution-style prompt.

Two samples per prompt; the judge (the policy itself by default) reads both in each order and
the normalised option probabilities give a soft preference, averaged over the two orders so
that swapping the replies swaps the label exactly. The better reply is chosen; the soft label
is stored with the pair; DPO trains on the pairs (one stage).
"""

from __future__ import annotations

from tqdm.auto import tqdm

from udasa.baselines.common import BaselineConfig, BaselinePair, prompts_of
from udasa.generators import generate_many, make_generator
from udasa.models import load_causal_lm
from udasa.pipeline import prompt_seed
from udasa.scorers.lm_options import chat_prefix, option_probs

PROMPT_FILE = "rlaif_judge.txt"


def _template() -> str:
    from udasa.baselines import resource

    return resource(PROMPT_FILE)


def preference(model, tokenizer, prompt: str, first: str, second: str) -> float:
    """P(first reply is better), averaged over both presentation orders."""
    tpl = _template()
    texts = [chat_prefix(tokenizer, tpl.format(prompt=prompt, first=a, second=b), "(")
             for a, b in ((first, second), (second, first))]
    probs = option_probs(model, tokenizer, texts, ["A", "B"], batch_size=2)
    return float((probs[0, 0] + probs[1, 1]) / 2)


def build_pairs(cfg: BaselineConfig, judge_model: str = "embedded") -> list[BaselinePair]:
    generator = make_generator(cfg.generation)
    model, tok = load_causal_lm(judge_model)
    pairs = []
    prompts = prompts_of(cfg)
    outs = dict(generate_many(generator, [p.text for p in prompts], 2,
                              [prompt_seed(cfg.seed, p.id) for p in prompts]))  # batched
    for i, p in enumerate(tqdm(prompts, desc="rlaif", unit="prompt")):
        if isinstance(outs[i], Exception):
            continue
        a, b = outs[i]
        if a.strip() == b.strip() or not a.strip() or not b.strip():
            continue
        pa = preference(model, tok, p.text, a, b)
        chosen, rejected, label = (a, b, pa) if pa >= 0.5 else (b, a, 1 - pa)
        pairs.append(BaselinePair(p, chosen, rejected, label))
    return pairs

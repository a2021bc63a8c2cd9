"""RLAIF (Lee et al. 2023; Constitutional AI, Bai et al. 2022): an AI labeller picks the better
of two sampled replies under a principle drawn per comparison from a constitution.

The labeller is any local model spec (default: the policy itself). It reads both replies in
each order, optionally writes a chain of thought first, and the normalised probabilities of
the option tokens give P(first is better), averaged over the two orders so that swapping the
replies swaps the label exactly. The better reply is chosen and that probability is the pair's
soft label, which DPO trains on as its target (conservative DPO; hard labels a switch).
"""

from __future__ import annotations

import random
from functools import cache
from pathlib import Path

import torch
import yaml
from tqdm.auto import tqdm

from udasa.baselines.common import (
    BaselineConfig,
    BaselinePair,
    RlaifOptions,
    TrainedBaseline,
    prompts_of,
)
from udasa.errors import ConfigError
from udasa.generators import generate_many, make_generator
from udasa.keys import prompt_seed
from udasa.models import load_causal_lm
from udasa.progress import StepProgress
from udasa.registry import register
from udasa.scorers.lm_options import chat_prefix, option_probs

# Keys the pairs (`TrainedBaseline.pairs_version`): 1, option ids read after the prompt (a
# SentencePiece tokenizer's "▁A" was read where the model writes "A" after "(").
LABELER_VERSION = 1
COT_CLAMP = (0.4, 0.6)  # Constitutional AI's range for chain-of-thought labels


@cache
def labeler_prompts() -> dict[str, str]:
    from udasa.baselines import RESOURCES

    return yaml.safe_load((RESOURCES / "rlaif" / "labeler.yaml").read_text(encoding="utf-8"))


def load_constitution(name: str) -> list[str]:
    """Principles, one a line ('#' comments and blank lines skipped): a bundled name
    (resources/baselines/rlaif/constitution-<name>.txt) or a file path."""
    from udasa.baselines import RESOURCES

    path = Path(name) if Path(name).suffix else RESOURCES / "rlaif" / f"constitution-{name}.txt"
    if not path.is_file():
        raise ConfigError(f"rlaif.constitution: {path}: file not found")
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    principles = [ln for ln in lines if ln and not ln.startswith("#")]
    if not principles:
        raise ConfigError(f"rlaif.constitution: {path}: no principles in it")
    return principles


@torch.inference_mode()
def _reason(model, tokenizer, text: str, max_tokens: int) -> str:
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
    out = model.generate(input_ids=ids.to(model.device), attention_mask=torch.ones_like(ids),
                         do_sample=False, max_new_tokens=max_tokens, top_p=None, top_k=None,
                         temperature=None, pad_token_id=tokenizer.pad_token_id)
    return tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip()


def label_texts(model, tokenizer, prompt: str, first: str, second: str, principle: str,
                cot_tokens: int = 0) -> list[str]:
    """The labeller's inputs ending right before the option letter, one per order."""
    p, texts = labeler_prompts(), []
    for a, b in ((first, second), (second, first)):
        body = p["judge"].format(prompt=prompt, first=a, second=b, principle=principle).strip()
        if cot_tokens:
            head = chat_prefix(tokenizer, f"{body}\n{p['cot_instruction']}", p["cot_prefix"])
            texts.append(head + " " + _reason(model, tokenizer, head, cot_tokens)
                         + p["cot_answer"])
        else:
            texts.append(chat_prefix(tokenizer, f"{body}\n{p['instruction']}",
                                     p["answer_prefix"]))
    return texts


def preference(model, tokenizer, prompt: str, first: str, second: str, principle: str,
               cot_tokens: int = 0) -> float:
    """P(first reply is better), averaged over both presentation orders."""
    texts = label_texts(model, tokenizer, prompt, first, second, principle, cot_tokens)
    probs = option_probs(model, tokenizer, texts, ["A", "B"], batch_size=2)
    return float((probs[0, 0] + probs[1, 1]) / 2)


def clamp(p: float, lo: float, hi: float) -> float:
    """`p` moved into [lo, hi]."""
    return min(hi, max(lo, p))


def labeler_of(cfg: BaselineConfig) -> str:
    spec = cfg.rlaif.labeler or cfg.generation.model
    endpoint = not cfg.rlaif.labeler and cfg.generation.backend == "openai"
    if spec.startswith("openai:") or endpoint:
        raise ConfigError("rlaif.labeler: needs option probabilities, so a local model "
                          "(embedded, a path or a hub id), not an endpoint")
    return spec


def label(opts: RlaifOptions, model, tok, prompt: str, a: str, b: str,
          seed: int) -> tuple[str, str, float, str]:
    """(chosen, rejected, P(chosen better), principle) for two replies."""
    principle = random.Random(seed).choice(load_constitution(opts.constitution))
    pa = preference(model, tok, prompt, a, b, principle,
                    opts.cot_tokens if opts.chain_of_thought else 0)
    if opts.chain_of_thought and opts.clamp_cot:
        pa = clamp(pa, *COT_CLAMP)
    return (a, b, pa, principle) if pa >= 0.5 else (b, a, 1 - pa, principle)


def build_pairs(cfg: BaselineConfig) -> list[BaselinePair]:
    generator = make_generator(cfg.generation)
    load_constitution(cfg.rlaif.constitution)  # a bad file fails before any generation
    model, tok = load_causal_lm(labeler_of(cfg))
    pairs = []
    prompts = prompts_of(cfg)
    seeds = [prompt_seed(cfg.seed, p.id) for p in prompts]
    outs = {}
    with StepProgress(len(prompts), "rlaif replies") as bar:  # batched, one tok/s bar
        for i, out in generate_many(generator, [p.text for p in prompts], 2, seeds,
                                    bar.tokens):
            outs[i] = out
            bar.update()
    for i, p in enumerate(tqdm(prompts, desc="rlaif labels", unit="prompt")):
        if isinstance(outs[i], Exception):
            continue
        a, b = outs[i]
        seed = seeds[i]
        if a.strip() == b.strip() or not a.strip() or not b.strip():
            continue
        chosen, rejected, soft, principle = label(cfg.rlaif, model, tok, p.text, a, b, seed)
        pairs.append(BaselinePair(p, chosen, rejected, soft, {"principle": principle}))
    return pairs


register("method", "rlaif")(TrainedBaseline("rlaif", build_pairs, labeler_field="rlaif.labeler",
                                             pairs_version=LABELER_VERSION))

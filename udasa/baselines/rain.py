"""RAIN (Li et al. 2023): inference-time self-evaluation and rewind, no training.

Generation proceeds segment by segment (token sets of 1, 2, 4, then 10 tokens). For each
segment the model samples candidate continuations, evaluates each partial answer itself with a
"(A) harmless / (B) harmful" prompt in both option orders (value v = (P(harmless) - 0.5) * 2 in
[-1, 1]), and rewinds (discards the candidates and samples again) until a candidate reaches the
value threshold Vt after at least minT tries, or maxT tries are spent; the best candidate seen
is kept. Defaults are the paper's search bounds (maxT 50, minT 6, Vt 0.8); RAIN's sharing of
values between similar nodes through sentence embeddings is left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from udasa.models import load_causal_lm
from udasa.scorers.lm_options import chat_prefix, option_probs


@dataclass
class RainConfig:
    model: str = "embedded"
    max_new_tokens: int = 64
    segments: list[int] = field(default_factory=lambda: [1, 2, 4, 10])
    max_tries: int = 50  # maxT
    min_tries: int = 6  # minT
    value_threshold: float = 0.8  # Vt
    candidates: int = 2  # continuations sampled per try
    temperature: float = 0.8
    top_p: float = 0.95


@dataclass
class RainStats:
    visited_tokens: int = 0  # tokens sampled during the search
    emitted_tokens: int = 0  # tokens in the answer
    tries: int = 0
    rewinds: int = 0


class RainGenerator:
    """A `Generator` that decodes with RAIN's search (see the module docstring)."""

    def __init__(self, cfg: RainConfig):
        from udasa.baselines import resource

        self.cfg = cfg
        self.model, self.tok = load_causal_lm(cfg.model)
        self.template = resource("rain_eval.txt")
        self.name = f"rain:{cfg.model}"
        self.stats = RainStats()

    def value(self, prompt: str, partials: list[str]) -> list[float]:
        """Self-evaluation in [-1, 1]: +1 surely harmless, -1 surely harmful (both orders)."""
        texts = []
        for partial in partials:
            for a, b in (("harmless", "harmful"), ("harmful", "harmless")):
                body = self.template.format(prompt=prompt, partial=partial or "(empty)",
                                            option_a=a, option_b=b)
                texts.append(chat_prefix(self.tok, body, "("))
        probs = option_probs(self.model, self.tok, texts, ["A", "B"], batch_size=8)
        harmless = (probs[0::2, 0] + probs[1::2, 1]) / 2
        return [float((h - 0.5) * 2) for h in harmless]

    @torch.inference_mode()
    def _sample(self, ids: torch.Tensor, length: int) -> torch.Tensor:
        out = self.model.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=True,
            temperature=self.cfg.temperature, top_p=self.cfg.top_p, top_k=None,
            num_return_sequences=self.cfg.candidates, max_new_tokens=length,
            pad_token_id=self.tok.pad_token_id)
        return out[:, ids.shape[1]:]

    def generate(self, prompt: str, n: int, seed: int) -> list[str]:
        return [self._one(prompt, seed + i) for i in range(n)]

    def _one(self, prompt: str, seed: int) -> str:
        torch.manual_seed(seed)
        head = self.tok.apply_chat_template([{"role": "user", "content": prompt}],
                                            add_generation_prompt=True, return_tensors="pt",
                                            return_dict=True)["input_ids"]
        answer: list[int] = []
        segment = 0
        while len(answer) < self.cfg.max_new_tokens:
            length = min(self.cfg.segments[min(segment, len(self.cfg.segments) - 1)],
                         self.cfg.max_new_tokens - len(answer))
            ids = torch.cat([head, torch.tensor([answer], dtype=head.dtype)], dim=1)
            best, best_v = None, -2.0
            for tries in range(1, self.cfg.max_tries + 1):
                cands = self._sample(ids, length)
                self.stats.visited_tokens += int(cands.numel())
                self.stats.tries += 1
                texts = [self.tok.decode(answer + c.tolist(), skip_special_tokens=True)
                         for c in cands]
                for cand, v in zip(cands, self.value(prompt, texts)):
                    if v > best_v:
                        best, best_v = cand.tolist(), v
                if tries >= self.cfg.min_tries and best_v >= self.cfg.value_threshold:
                    break
                self.stats.rewinds += 1  # discard this round's candidates, search again
            assert best is not None
            if self.tok.eos_token_id in best:
                best = best[:best.index(self.tok.eos_token_id)]
                answer += best
                self.stats.emitted_tokens += len(best)
                break
            answer += best
            self.stats.emitted_tokens += len(best)
            segment += 1
        return self.tok.decode(answer, skip_special_tokens=True).strip()

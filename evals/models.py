"""Models under evaluation: the embedded base, a checkpoint folder, a hub id, or an endpoint.

A model spec is a string: `base` (the embedded SmolLM2 policy), a local path, a hub id, or
`openai:<model>` (an OpenAI-compatible endpoint; `--base-url` and `$OPENAI_API_KEY`). Outputs
are greedy and cached in the store, so a rerun generates nothing it already has.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from tqdm.auto import tqdm

from udasa.config import GenerationConfig
from udasa.generators import PromptTooLong, make_generator
from udasa.models import EMBEDDED, model_identity
from udasa.records import content_key
from udasa.store import Store


@dataclass
class EvalModel:
    """One model (or method) under evaluation."""

    name: str  # the leaderboard row label
    spec: str
    base_url: str | None = None
    decoder: str = "greedy"  # greedy | sample (vanilla) | rain (inference-time search)
    options: dict = field(default_factory=dict)  # decoder settings (RainConfig fields)
    limit: int | None = None  # at most this many samples per task (not part of the identity)

    def generation_config(self, max_new_tokens: int) -> GenerationConfig:
        temperature = float(self.options.get("temperature", 0.7)) if self.decoder == "sample" \
            else 0.0
        if self.spec.startswith("openai:"):
            return GenerationConfig(backend="openai", model=self.spec.split(":", 1)[1],
                                    base_url=self.base_url, temperature=temperature, n=1,
                                    max_new_tokens=max_new_tokens)
        model = EMBEDDED if self.spec == "base" else self.spec
        return GenerationConfig(model=model, temperature=temperature, n=1,
                                max_new_tokens=max_new_tokens)

    def identity(self) -> dict:
        cfg = self.generation_config(0)
        ident = ({"id": f"openai:{cfg.model}", "base_url": cfg.base_url}
                 if cfg.backend == "openai" else model_identity(cfg.model))
        return ident | {"decoder": self.decoder, "options": self.options}

    def generator(self, max_new_tokens: int):
        if self.decoder == "rain":
            from udasa.baselines.rain import RainConfig, RainGenerator

            cfg = self.generation_config(max_new_tokens)
            return RainGenerator(RainConfig(model=cfg.model, max_new_tokens=max_new_tokens,
                                            **self.options))
        return make_generator(self.generation_config(max_new_tokens))

    def generate(self, store: Store, prompts: list[tuple[str, str]], max_new_tokens: int,
                 desc: str = "") -> dict[str, str]:
        """Greedy outputs for (prompt_id, text) pairs; cached in the store by model + settings."""
        gen_key = content_key("eval", json.dumps(self.identity(), sort_keys=True),
                              str(max_new_tokens))
        have = {r["prompt_id"]: r["text"] for r in store.responses(gen_key)}
        todo = [(pid, text) for pid, text in prompts if pid not in have]
        if todo:
            generator = self.generator(max_new_tokens)
            for pid, text in tqdm(todo, desc=desc or f"generate {self.name}", unit="prompt"):
                try:
                    out = generator.generate(text, 1, seed=0)[0]
                except PromptTooLong:
                    out = ""
                store.add_responses([{"id": content_key(gen_key, pid), "gen_key": gen_key,
                                      "prompt_id": pid, "sample_index": 0, "text": out,
                                      "model": self.name}])
                have[pid] = out
        return {pid: have[pid] for pid, _ in prompts}


def default_models(store: Store) -> list[EvalModel]:
    """The embedded base model and every stage checkpoint stored in the workspace."""
    models = [EvalModel("base (SmolLM2-135M)", "base")]
    for c in store.checkpoints():
        if c["path"]:
            models.append(EvalModel(f"udasa {c['run_id'][:6]}/{c['train_key'][:6]} "
                                    f"stage {c['stage']} ({c['name']})", c["path"]))
    return models

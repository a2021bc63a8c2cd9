"""The ``learned`` judge backend: each template is answered by the learned judge registered
for it (:mod:`evals.judges.learned.recipes`: harmless / helpful: the HH reward model, on the 1-10
scale of its calibration; truthful / informative: P(yes) of the TruthfulQA judges, items may
carry ``references``, the correct answers, and ``incorrect``; sentiment: P(positive) of the
IMDB classifier). The backend reads the item's fields, not the rendered prompt.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from evals.judges.base import JudgeConfig, Judgement, JudgeStats, Template
from evals.judges.learned import build
from udasa.registry import register

NOT_MEASURED = "agreement with human labels not yet measured: udasa-eval validate-judge"


def templates() -> dict[str, str]:
    """Judge template -> the registered learned judge that answers it."""
    return {build.recipe_of(n).template: n for n in build.judge_names()
            if build.recipe_of(n).template}


@register("judge_backend", "learned")
class LearnedBackend:
    """Loads (building on first use) the learned judge behind each template."""

    def __init__(self, config: JudgeConfig, stats: JudgeStats, root: Path | None = None):
        self.config = config
        self.stats = stats
        self.root = root  # the shared data folder (None: udasa.data.data_dir())
        self.settings: dict[str, Any] = {}  # judge name -> settings (None: the defaults)
        self.model_name = f"learned-v{build.VERSION}"
        self._built: dict[str, build.Built] = {}

    def judge_of(self, template: str) -> build.Built:
        name = templates().get(template)
        if name is None:
            raise ValueError(f"the learned judge has no judge for template {template!r}")
        if name not in self._built:
            self._built[name] = build.get(name, self.settings.get(name), self.root)
        return self._built[name]

    def params(self, template: Template) -> dict[str, Any]:
        built = self.judge_of(template.name)
        return {"template": template.name, "judge": built.name, "settings": built.meta["settings"],
                "version": built.meta["version"]}

    def label(self, template: str) -> str:
        """The judge's name and its measured agreement with human labels, for tables (or that
        it is not yet measured: `udasa-eval validate-judge` measures it once)."""
        built = self.judge_of(template)
        if not built.agreements:
            return f"learned {built.name} judge ({NOT_MEASURED})"
        a = built.agreements[0]
        return (f"learned {built.name} judge ({a.metric} {a.value:.2f} "
                f"[{a.low:.2f}, {a.high:.2f}] vs human labels, n={a.n})")

    def agreements(self) -> list[dict[str, Any]]:
        return [a.as_dict() for b in self._built.values() for a in b.agreements or []]

    def run(self, prompts: list[str], template: Template) -> Iterator[tuple[int, Judgement]]:
        raise ValueError("the learned judge reads item fields: call run_items")

    def run_items(self, items: list[dict[str, Any]], template: Template
                  ) -> Iterator[tuple[int, Judgement]]:
        if not items:
            return
        built = self.judge_of(template.name)
        scores, replies = self._score(built, items)
        self.stats.add(calls=len(items))
        for i, (score, reply) in enumerate(zip(scores, replies, strict=True)):
            yield i, Judgement(float(score), True, reply)

    @staticmethod
    def _score(built: build.Built, items: list[dict[str, Any]]) -> build.Scores:
        return build.recipe_of(built.name).score(built.judge, items)

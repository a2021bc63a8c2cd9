"""`white-box`: GCG optimises one suffix per behaviour on the model under test (the task's
`gcg` config, `configs/gcg/cpu-demo.yaml` by default) -> `asr_whitebox_*`. Suffixes are kept
in the store (a rerun reuses them) and their loss curves plotted."""

from __future__ import annotations

import dataclasses
import json

from attacks.base import (
    AttackContext,
    AttackRun,
    BaseAttack,
    cached_gcg,
    gcg_config,
    gcg_note,
    local_lm,
    plot,
    slug,
)
from attacks.gcg import Behaviour, attack_prompt, run_gcg
from udasa.records import content_key
from udasa.registry import register


@register("attack", "white-box")
class WhiteBoxGCG(BaseAttack):
    def check_files(self, cfg) -> None:
        gcg_config(cfg)

    def run(self, ctx: AttackContext, test: list[Behaviour], train: list[Behaviour]
            ) -> AttackRun:
        model = ctx.model
        if model.spec.startswith("openai:"):
            return AttackRun(skipped="white-box GCG needs the model's weights and gradients; an "
                                     "API model is attacked in transfer modes only")
        gcfg = gcg_config(ctx.cfg)
        lm = local_lm(model.spec)
        ident = json.dumps(model.identity(), sort_keys=True)
        config = json.dumps(dataclasses.asdict(gcfg), sort_keys=True)
        runs = [cached_gcg(ctx.store, content_key("gcg-whitebox", ident, b.goal, b.target, config),
                           "white-box", model.name, [b], lambda b=b: run_gcg(lm, b, gcfg))
                for b in test]
        out = AttackRun({"whitebox": {}}, notes=[gcg_note(gcfg)])
        for b, r in zip(test, runs):
            out.prompts["whitebox"][b.id] = attack_prompt(b.goal, r["suffix"], r["separator"])
            out.extra[b.id] = {"suffix": r["suffix"], "suffix_ids": r["suffix_ids"],
                               "losses": r["losses"], "best_loss": r["best_loss"],
                               "steps": r["steps"], "gcg_success": r["success"]}
        plot({b.goal: r["losses"] for b, r in zip(test, runs)},
             ctx.workspace / "plots" / f"gcg_whitebox_{slug(model.name)}.png",
             f"white-box GCG on {model.name}", {})
        return out

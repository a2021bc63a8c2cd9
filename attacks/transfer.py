"""`transfer`: one universal suffix optimised (progressive goals, then models) on the task's
`ensemble` models over the first `n_train` behaviours of the file, then applied to the model
under test on the other behaviours -> `asr_transfer_optimised_*`."""

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
from udasa.configfile import require
from udasa.records import content_key
from udasa.registry import register


@register("attack", "transfer")
class TransferGCG(BaseAttack):
    holds_out_train = True

    def check(self, cfg) -> None:
        require(bool(cfg.ensemble), "ensemble",
                "transfer mode needs the models to optimise the universal suffix on")

    def check_files(self, cfg) -> None:
        gcg_config(cfg)

    def suffix(self, ctx: AttackContext, train: list[Behaviour], gcfg) -> dict:
        """The universal suffix of the ensemble (from the store, else optimised now)."""
        from evals.models import EvalModel

        ensemble = ctx.cfg.ensemble
        idents = [EvalModel(s, s).identity() for s in ensemble]
        key = content_key("gcg-transfer", json.dumps(idents, sort_keys=True),
                          json.dumps([dataclasses.asdict(b) for b in train]),
                          json.dumps(dataclasses.asdict(gcfg), sort_keys=True))
        return cached_gcg(ctx.store, key, "transfer", json.dumps(ensemble), train,
                          lambda: run_gcg([local_lm(s) for s in ensemble], train, gcfg))

    def run(self, ctx: AttackContext, test: list[Behaviour], train: list[Behaviour]
            ) -> AttackRun:
        cfg, gcfg = ctx.cfg, gcg_config(ctx.cfg)
        r = self.suffix(ctx, train, gcfg)
        out = AttackRun({"transfer_optimised": {b.id: attack_prompt(b.goal, r["suffix"],
                                                                    r["separator"])
                                                for b in test}})
        out.extra = {b.id: {"suffix": r["suffix"], "suffix_ids": r["suffix_ids"]} for b in test}
        marks = [e["step"] for e in r["events"] if e["event"] in ("add_goal", "add_model")]
        plot({"universal suffix": r["losses"]},
             ctx.workspace / "plots" / f"gcg_transfer_{slug('-'.join(cfg.ensemble))}.png",
             f"universal GCG on {', '.join(cfg.ensemble)} ({len(train)} behaviours)",
             {"universal suffix": marks})
        out.notes.append(f"universal suffix {r['suffix']!r} optimised on {cfg.ensemble} over "
                         f"{len(train)} behaviours (first rows of the file; not tested here), "
                         f"final loss {r['best_loss']:.3f}, {r['steps']} steps; "
                         + gcg_note(gcfg))
        if ctx.model.spec in cfg.ensemble:
            out.notes.append("WARNING: the model under test is in the ensemble (not a transfer)")
        return out

"""`transfer-published`: the universal suffixes published with the GCG paper
(`gcg/universal_suffixes.json`, or `robustness.suffixes`), appended to each behaviour; no
optimisation. With several suffixes the task's `asr_transfer_*` is the ensemble (a behaviour
counts as broken when any suffix breaks it, the paper's "GCG (Ensemble)")."""

from __future__ import annotations

from attacks.advbench import load_universal_suffixes
from attacks.base import AttackContext, AttackRun, BaseAttack, resolve
from attacks.gcg import Behaviour, attack_prompt
from udasa.registry import register


@register("attack", "transfer-published")
class PublishedSuffixes(BaseAttack):
    def check_files(self, cfg) -> None:
        if cfg.suffixes:
            load_universal_suffixes(resolve(cfg.suffixes))

    def run(self, ctx: AttackContext, test: list[Behaviour], train: list[Behaviour]
            ) -> AttackRun:
        cfg = ctx.cfg
        suffixes = load_universal_suffixes(resolve(cfg.suffixes) if cfg.suffixes else None)
        prompts = {f"transfer_{s.id}": {b.id: attack_prompt(b.goal, s.suffix) for b in test}
                   for s in suffixes}
        note = (f"published universal suffixes {[s.id for s in suffixes]} appended with one "
                "space" + ("; asr_transfer_* = any suffix succeeds (ensemble)"
                           if len(suffixes) > 1 else ""))
        return AttackRun(prompts, notes=[note])

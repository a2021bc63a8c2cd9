"""The attack tables of the workspace store: optimised GCG suffixes with their loss curves.

Declared here, beside the attacks; every Store opened after this module is imported holds
them, and each function below makes sure the store it is handed does (`Store.ensure`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from udasa.store import Store, now, where_equal
from udasa.store_schema import Record, Schema, Table, bool_field, declare, json_field


@dataclass(frozen=True, kw_only=True)
class AttackSuffix(Record):
    """One optimised suffix; `target` names the model (white-box) or the ensemble (transfer),
    `result` is the full `GCGResult.to_dict()`."""

    key: str
    mode: str
    target: str
    behaviours: list = json_field(list)
    suffix: str
    suffix_ids: list = json_field(list)
    best_loss: float
    losses: list = json_field(list)
    success: bool = bool_field(False)
    config: dict = json_field()
    result: dict = json_field()
    created_at: str = ""

    @classmethod
    def of(cls, key: str, mode: str, target: str, behaviours: list[dict],
           result: dict[str, Any]) -> AttackSuffix:
        """The row of a GCG result (`GCGResult.to_dict()`)."""
        return cls(key=key, mode=mode, target=target, behaviours=behaviours,
                   suffix=result["suffix"], suffix_ids=result["suffix_ids"],
                   best_loss=result["best_loss"], losses=result["losses"],
                   success=bool(result["success"]), config=result["config"], result=result)


ATTACKS = declare(Schema("attacks", (Table("attack_suffixes", AttackSuffix, "key"),)))


def attack_suffix(store: Store, key: str) -> AttackSuffix | None:
    """A stored suffix, or None."""
    rows = store.ensure(ATTACKS).select(AttackSuffix, "attack_suffixes", "key = ?", [key])
    return rows[0] if rows else None


def add_attack_suffix(store: Store, suffix: AttackSuffix) -> None:
    """Keep one optimised suffix (replacing one stored under the same key)."""
    store.ensure(ATTACKS).insert("attack_suffixes", [replace(suffix, created_at=now())],
                                 replace=True)


def attack_suffixes(store: Store, mode: str | None = None) -> list[AttackSuffix]:
    """Every stored suffix (of one mode), oldest first."""
    return store.ensure(ATTACKS).select(AttackSuffix, "attack_suffixes", *where_equal(mode=mode),
                                        order_by="created_at, rowid")

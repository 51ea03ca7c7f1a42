"""What one run did: one :class:`Change` per thing the init looked at, in order."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Action = Literal["created", "updated", "unchanged", "skipped"]


@dataclass(frozen=True)
class Change:
    """The outcome for one subject (``bucket bronze``, ``user lakehouse-reader``, ...)."""

    subject: str
    action: Action
    detail: str = ""

    @property
    def changed(self) -> bool:
        return self.action in {"created", "updated"}

    def __str__(self) -> str:
        return f"{self.subject}: {self.action}" + (f" ({self.detail})" if self.detail else "")


@dataclass
class Report:
    """Every :class:`Change` of a run; :attr:`changed` is empty when the server already matched."""

    changes: list[Change] = field(default_factory=list)

    def add(self, change: Change) -> Change:
        self.changes.append(change)
        return change

    @property
    def changed(self) -> list[Change]:
        return [change for change in self.changes if change.changed]

    def summary(self) -> str:
        if not self.changed:
            return f"nothing changed: all {len(self.changes)} checks already matched the configuration"
        return f"{len(self.changed)} change(s), {len(self.changes) - len(self.changed)} check(s) already matched"

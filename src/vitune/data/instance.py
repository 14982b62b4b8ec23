"""The one canonical training/eval instance type used by everything downstream of sources.

An `Instance` is an image (or none, for text-only samples), a task name, and a conversation of
alternating user/assistant turns. The `<image>` placeholder is *not* stored inside turn text: the
image's presence is the `image` field, and exporters place the token where their format wants it
(LLaVA: at the start of the first user turn).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["user", "assistant"]
IMAGE_TOKEN = "<image>"


@dataclass(slots=True)
class Turn:
    role: Role
    text: str


@dataclass(slots=True)
class Instance:
    id: str
    image: str | None  # path relative to an image root, or None for text-only samples
    task: str
    turns: list[Turn]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.turns:
            raise ValueError(f"instance {self.id!r}: no turns")
        for i, t in enumerate(self.turns):
            expected = "user" if i % 2 == 0 else "assistant"
            if t.role != expected:
                raise ValueError(f"instance {self.id!r}: turn {i} is {t.role!r}, expected {expected!r}")

    @property
    def first_prompt(self) -> str:
        return self.turns[0].text

    def pairs(self) -> list[tuple[str, str]]:
        """(user, assistant) pairs; a trailing user turn without reply is dropped."""
        return [(self.turns[i].text, self.turns[i + 1].text) for i in range(0, len(self.turns) - 1, 2)]

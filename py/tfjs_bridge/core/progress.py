"""How library functions report progress without knowing who shows it: they
take a Progress and call it; the CLI passes a terminal progress bar (console.py),
everyone else NO_PROGRESS. Keeps click (and the terminal) out of the library."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def start(self, total: int, label: str) -> None:
        """Begin a task of `total` steps (a new task replaces any running one)."""

    def advance(self, n: int = 1) -> None: ...

    def set_label(self, label: str) -> None:
        """Say more about the running task (training: the last epoch's figures)."""

    def close(self) -> None: ...


class _NoProgress:
    def start(self, total: int, label: str) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass

    def set_label(self, label: str) -> None:
        pass

    def close(self) -> None:
        pass


NO_PROGRESS: Progress = _NoProgress()

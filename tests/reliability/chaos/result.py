"""The outcome of a chaos scenario run, and what must never show in its output."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

#: lines that must never reach a log or a user's terminal
BAD_OUTPUT = ("Traceback", "database is locked", "database is busy")
#: engine log lines that mean the engine lost track of a job or of its leases
BAD_ENGINE_LOG = (
    *BAD_OUTPUT,
    "could not record its outcome",
    "outcome not recorded",
    "could not renew leases",
)


@dataclass
class Result:
    scenario: str
    runs: int = 1
    jobs: int = 0
    lost: int = 0
    duplicated_while_running: int = 0
    stuck: int = 0
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    #: facts worth reporting that are not failures (e.g. a re-run allowed by at-least-once)
    notes: Counter[str] = field(default_factory=Counter)
    #: the engines' logs, kept when something went wrong
    logs: str = ""

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated_while_running or self.stuck or self.problems)

    def add(self, other: Result) -> None:
        self.runs += other.runs
        self.jobs += other.jobs
        self.lost += other.lost
        self.duplicated_while_running += other.duplicated_while_running
        self.stuck += other.stuck
        self.problems += other.problems
        self.seconds += other.seconds
        self.notes.update(other.notes)
        self.logs += other.logs

    def report(self) -> str:
        """For an assertion message: the summary, the notes and the engines' logs."""
        return f"{self.summary()}\nnotes: {dict(self.notes)}\n{self.logs}"

    def problem(self, text: str) -> None:
        self.problems.append(text)

    def scan(self, where: str, text: str, needles: Sequence[str]) -> None:
        """A problem for each of `needles` found in `text` (with the first line holding it)."""
        for needle in needles:
            if needle in text:
                line = next(line for line in text.splitlines() if needle in line)
                self.problem(f"{where}: {needle!r}: {line.strip()}")

    def summary(self) -> str:
        head = (
            f"{self.scenario}: runs={self.runs} jobs={self.jobs} lost={self.lost} "
            f"duplicated_while_running={self.duplicated_while_running} stuck={self.stuck} "
            f"problems={len(self.problems)}"
        )
        return "\n".join([head, *(f"  - {text}" for text in self.problems)])


def tail(text: str, lines: int) -> str:
    return "\n".join(text.splitlines()[-lines:])

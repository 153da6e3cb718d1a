"""What an enqueue of many specs must do, decided once for every backend: the ids, the specs
that repeat an earlier spec's unique key, and the parents each job waits for.

A parent (`after`) must exist when its child is enqueued: in the queue already, or earlier in
the same specs (a file's line may name an earlier line's id). So no cycle can ever form. The
stores check the parents that are not in the batch, insert the jobs (a job whose unique key a
live job holds creates nothing: its id stands in for it, here and for later lines that name
it as a parent), then record the dependencies and resolve the new jobs' states.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from queuectl.errors import BadInput
from queuectl.models import JobSpec
from queuectl.store import unique_ids


@dataclass(frozen=True, slots=True)
class Planned:
    spec: JobSpec
    id: str
    #: the place of an earlier spec of this batch with the same unique key: nothing to insert
    same_key_as: int | None


@dataclass(frozen=True, slots=True)
class Plan:
    jobs: tuple[Planned, ...]
    #: parents named that are not earlier in the batch: they must exist in the queue
    outside: frozenset[str]
    #: the ids given to specs that repeated an earlier spec's unique key -> that spec's id
    aliases: Mapping[str, str]

    @property
    def keyed(self) -> bool:
        """Whether any job has a unique key (the stores' fast path has none)."""
        return any(job.spec.unique_key is not None for job in self.jobs)

    @property
    def has_parents(self) -> bool:
        return any(job.spec.after for job in self.jobs)

    def dependencies(self, stands_for: Mapping[str, str]) -> list[tuple[str, str]]:
        """(child, parent) of the jobs that were created, with the ids of the jobs that a
        unique key made stand in for others (`stands_for`: planned id -> existing id)."""
        pairs: dict[tuple[str, str], None] = {}  # ordered, once each: two names may be one job
        for job in self.jobs:
            if job.same_key_as is None and job.id not in stands_for:
                for parent in job.spec.after:
                    parent = self.aliases.get(parent, parent)
                    pairs[(job.id, stands_for.get(parent, parent))] = None
        return list(pairs)


def plan(specs: Sequence[JobSpec]) -> Plan:
    """Raises DuplicateJobId (an id given twice) or BadInput (a job after itself), before
    anything is written."""
    from queuectl.specs import new_job_id  # specs.py: not for the commands that only read

    unique_ids(specs)
    jobs: list[Planned] = []
    earlier: set[str] = set()
    first_with_key: dict[str, int] = {}
    outside: set[str] = set()
    aliases: dict[str, str] = {}
    for place, spec in enumerate(specs):
        job_id = spec.id or new_job_id()
        if job_id in spec.after:
            raise BadInput(f"job {job_id!r} cannot run after itself; fix its 'after'")
        outside.update(parent for parent in spec.after if parent not in earlier)
        same = first_with_key.get(spec.unique_key) if spec.unique_key is not None else None
        if spec.unique_key is not None and same is None:
            first_with_key[spec.unique_key] = place
        if same is not None:
            job_id = jobs[same].id
            if spec.id is not None and spec.id != job_id:
                aliases[spec.id] = job_id
                earlier.add(spec.id)
        jobs.append(Planned(spec, job_id, same))
        earlier.add(job_id)
    return Plan(tuple(jobs), frozenset(outside), aliases)


def missing_parents(plan: Plan, existing: set[str]) -> BadInput | None:
    """The error for parents that do not exist, naming the first child that names one."""
    for job in plan.jobs:
        unknown = [parent for parent in job.spec.after if parent in plan.outside - existing]
        if unknown:
            return BadInput(
                f"job {job.id!r}: 'after' names {unknown[0]!r}, which does not exist; enqueue "
                "a parent before its children"
            )
    return None

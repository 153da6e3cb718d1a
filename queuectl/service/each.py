"""`enqueue --each`: one job per input line, in the manner of GNU parallel.

The command is a template: `{}` is replaced by the line, `{/}` by its basename, `{//}` by its
directory, `{.}` by the line without its extension, `{/.}` by the basename without it, each
shell-quoted, and `{#}` by the job's number (1, 2, ...). A template without any placeholder
gets the quoted line appended, so `--each files.txt -- gzip` gzips each file. Blank lines are
skipped. Every job gets the template's other options; all are checked before anything is
stored and then stored in one transaction, so thousands of jobs take one process start and
one commit, and a bad line stores nothing.
"""

from __future__ import annotations

import dataclasses
import os.path
import re
import shlex
from collections.abc import Callable

from queuectl.errors import BadInput
from queuectl.models import JobSpec
from queuectl.specs import JobBatch, validate_command

PLACEHOLDER = re.compile(r"\{(|/|//|\.|/\.|#)\}")


def _path(line: str) -> str:
    """The line as a path, trailing slashes dropped: `{/}` of `photos/` is `photos`."""
    return line.rstrip("/") or line


def _without_extension(path: str) -> str:
    return os.path.splitext(path)[0]


_REPLACEMENTS: dict[str, Callable[[str], str]] = {
    "": lambda line: line,
    "/": lambda line: os.path.basename(_path(line)),
    "//": lambda line: os.path.dirname(_path(line)) or ".",
    ".": lambda line: _without_extension(line),
    "/.": lambda line: _without_extension(os.path.basename(_path(line))),
}


def has_placeholder(command: str) -> bool:
    return PLACEHOLDER.search(command) is not None


def each_batch(template: JobSpec, data: bytes, source: str) -> JobBatch:
    """One spec per non-blank line of `data` (lines end at \\n; a trailing \\r is dropped)."""
    if template.id is not None:
        raise BadInput("--id names one job but --each makes one per line; leave --id out")
    pieces = PLACEHOLDER.split(template.command)
    if len(pieces) == 1:
        pieces += ["", ""]  # the quoted line appended after a space
        pieces[0] += " "
    literals, names = pieces[0::2], pieces[1::2]
    specs: list[JobSpec] = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        try:
            line = raw.removesuffix(b"\r").decode("utf-8")
        except UnicodeDecodeError:
            raise BadInput(f"{source} line {number} is not UTF-8 text") from None
        if not line.strip():
            continue
        parts = [literals[0]]
        for name, literal in zip(names, literals[1:], strict=True):
            if name == "#":
                parts.append(str(len(specs) + 1))
            else:
                parts.append(shlex.quote(_REPLACEMENTS[name](line)))
            parts.append(literal)
        try:
            command = validate_command("".join(parts))
        except BadInput as exc:
            raise BadInput(f"{source} line {number}: {exc}") from None
        specs.append(dataclasses.replace(template, command=command))
    if not specs:
        raise BadInput(f"{source} holds no lines; give one input per line")
    return JobBatch(source, specs, {})

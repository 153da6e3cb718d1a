"""`queuectl queue` and the --queue filters, through the real CLI on every backend: the table
and its JSON schema, settings that survive (they are in the database), bad input refused in
one line with nothing changed, and list/status/dlq list/purge kept to one queue."""

from __future__ import annotations

import json

import pytest
from helpers import Cli, assert_one_line_error

from queuectl.states import JobState

STATES = {state.value for state in JobState}


def queues_json(cli: Cli) -> list[dict[str, object]]:
    return list(json.loads(cli("queue", "list", "--json", check=True).stdout))


def test_list_set_pause_resume(cli: Cli) -> None:
    cli("queue", "pause", "x", check=True)
    cli("queue", "resume", "x", check=True)  # nothing held, nothing left to show
    assert "no queues" in cli("queue", "list", check=True).stdout
    cli("enqueue", "--queue", "reports", "--", "true", check=True)
    cli("enqueue", "--", "true", check=True)
    assert "at most 2" in cli("queue", "set", "reports", "--concurrency", "2", check=True).stdout
    cli("queue", "pause", "bulk", check=True)
    listed = queues_json(cli)
    assert [q["name"] for q in listed] == ["bulk", "default", "reports"]
    assert all(set(q) == {"name", "concurrency", "paused", "counts"} for q in listed)
    assert all(set(q["counts"]) == STATES for q in listed)  # type: ignore[arg-type]
    by_name = {q["name"]: q for q in listed}
    assert (by_name["reports"]["concurrency"], by_name["reports"]["paused"]) == (2, False)
    assert by_name["reports"]["counts"] == {**dict.fromkeys(STATES, 0), "pending": 1}
    assert (by_name["bulk"]["concurrency"], by_name["bulk"]["paused"]) == (None, True)
    table = cli("queue", "list", check=True).stdout
    assert table.splitlines()[0].split()[:3] == ["NAME", "LIMIT", "PAUSED"]
    assert max(len(line) for line in table.splitlines()) <= 80
    cli("queue", "resume", "bulk", check=True)
    cli("queue", "set", "reports", "--concurrency", "none", check=True)
    by_name = {q["name"]: q for q in queues_json(cli)}
    assert "bulk" not in by_name  # no jobs and nothing set: nothing to show
    assert by_name["reports"]["concurrency"] is None


def test_a_long_name_is_cut_to_fit_80_columns(cli: Cli) -> None:
    name = "n" * 64
    cli("enqueue", "--queue", name, "--", "true", check=True)
    table = cli("queue", "list", check=True).stdout
    assert max(len(line) for line in table.splitlines()) <= 80
    assert "…" in table
    assert queues_json(cli)[0]["name"] == name  # the JSON keeps it whole


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["set", "q", "--concurrency", "0"], "invalid queue concurrency 0"),
        (["set", "q", "--concurrency", "many"], "invalid queue concurrency 'many'"),
        (["set", "bad name", "--concurrency", "2"], "invalid queue name"),
        (["pause", "x" * 65], "invalid queue name"),
        (["resume", "a/b"], "invalid queue name"),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(
    cli: Cli, args: list[str], fragment: str
) -> None:
    cli("queue", "set", "q", "--concurrency", "3", check=True)
    message = assert_one_line_error(cli("queue", *args), 2)
    assert fragment in message
    assert queues_json(cli) == [
        {"name": "q", "concurrency": 3, "paused": False, "counts": dict.fromkeys(STATES, 0)}
    ]


def test_bad_queue_filters_are_refused(cli: Cli) -> None:
    cli("enqueue", "--", "true", check=True)
    for args in (["list"], ["status"], ["dlq", "list"], ["purge"]):
        assert "invalid queue name" in assert_one_line_error(cli(*args, "--queue", "a b"), 2)
    assert "invalid queue name" in assert_one_line_error(
        cli("worker", "start", "--queues", "a,,b"), 2
    )


def test_filters_keep_to_one_queue(cli: Cli) -> None:
    for queue in ("a", "b"):
        cli("enqueue", "--queue", queue, "--id", f"dead-{queue}", "--max-retries", "0", "--",
            "false", check=True)  # fmt: skip
    cli("worker", "start", "--until-idle", "-q", check=True)  # both end dead
    cli("enqueue", "--queue", "a", "--id", "a1", "--delay", "1h", "--", "true", check=True)
    cli("enqueue", "--queue", "a", "--id", "a2", "--delay", "1h", "--", "true", check=True)
    cli("enqueue", "--queue", "b", "--id", "b1", "--delay", "1h", "--", "true", check=True)
    listed = json.loads(cli("list", "--queue", "a", "--json", check=True).stdout)
    assert sorted(job["id"] for job in listed) == ["a1", "a2", "dead-a"]
    status = json.loads(cli("status", "--queue", "b", "--json", check=True).stdout)
    assert status["queue"] == "b"
    assert (status["counts"]["pending"], status["counts"]["dead"]) == (1, 1)
    assert json.loads(cli("status", "--json", check=True).stdout)["counts"]["pending"] == 3
    dead = json.loads(cli("dlq", "list", "--queue", "b", "--json", check=True).stdout)
    assert [job["id"] for job in dead] == ["dead-b"]
    purged = cli("purge", "--queue", "a", "--state", "dead", "--json", check=True).stdout
    assert json.loads(purged)["count"] == 1
    remaining = json.loads(cli("list", "--state", "dead", "--json", check=True).stdout)
    assert [job["id"] for job in remaining] == ["dead-b"]

"""`queuectl web` over HTTP (issue 12): a real server process on each backend, its pages and
its JSON API checked against the CLI's own --json, keyset paging through a batch of jobs made
in one instant, and /metrics parsed by prometheus_client's parser."""

from __future__ import annotations

import json
from urllib.parse import quote

from helpers import Backend, Cli, in_store, seed, spec
from prometheus_client.parser import text_string_to_metric_families
from web.server import serving

from queuectl.store import Store


def cli_json(cli: Cli, *args: str) -> object:
    return json.loads(cli(*args, "--json", check=True).stdout)


def test_pages_and_api_give_what_the_cli_gives(cli: Cli, backend: Backend) -> None:
    seed(backend, dead=["d1", "d2"], pending=["p1"])
    with serving(backend) as web:
        for path in ("/", "/jobs", "/jobs?state=dead&q=d", "/jobs/d1", "/dlq", "/enqueue"):
            page = web.get(path)
            assert page.status == 200, (path, page.body[:500])
            assert page.headers["Content-Type"].startswith("text/html")
        assert "d1" in web.get("/jobs?state=dead").body
        assert "p1" not in web.get("/jobs?state=dead").body

        assert web.get("/api/status").json() == cli_json(cli, "status")
        assert web.get("/api/jobs/d1").json() == cli_json(cli, "show", "d1")
        assert web.get("/api/jobs/d1/attempts").json() == cli_json(cli, "show", "d1")["history"]
        listed = web.get("/api/jobs?limit=1000").json()
        assert listed == cli_json(cli, "list")
        dead = web.get("/api/jobs?state=dead").json()
        assert sorted(job["id"] for job in dead) == ["d1", "d2"]

        missing = web.get("/api/jobs/nope")
        assert missing.status == 404 and "not found" in missing.json()["error"]
        bad = web.get("/api/jobs?state=sleeping")
        assert bad.status == 400 and "sleeping" in bad.json()["error"]
        assert web.get("/jobs/nope").status == 404


def test_the_jobs_table_pages_by_keyset_through_jobs_of_one_instant(
    cli: Cli, backend: Backend
) -> None:
    async def fill(store: Store) -> None:  # one transaction: every job has the same created_at
        await store.enqueue([spec(id=f"j{n:03d}") for n in range(120)])

    in_store(backend, fill)
    with serving(backend) as web:
        seen: list[str] = []
        path: str | None = "/api/jobs?limit=50"
        pages = 0
        while path is not None:
            reply = web.get(path)
            assert reply.status == 200, reply.body
            seen += [job["id"] for job in reply.json()]
            link = reply.headers.get("Link")
            path = link.split(">")[0].lstrip("<") if link else None
            pages += 1
        assert pages == 3
        assert seen == [job["id"] for job in cli_json(cli, "list", "--limit", "1000")]
        assert len(set(seen)) == 120

        first = web.get("/jobs?state=pending")
        assert first.body.count('name="id" value="j') == 50
        older = first.body.split('rel="next" href="')[1].split('"')[0].replace("&amp;", "&")
        second = web.get(older)
        assert second.body.count('name="id" value="j') == 50
        assert not set(seen[:50]) & {
            f"j{n:03d}" for n in range(120) if f'value="j{n:03d}"' in second.body
        }


def test_metrics_match_status_json(cli: Cli, backend: Backend) -> None:
    seed(backend, dead=["d1", "d2", "d3"], pending=["p1", "p2"])
    with serving(backend) as web:
        reply = web.get("/metrics")
        assert reply.status == 200
        families = {f.name: f for f in text_string_to_metric_families(reply.body)}
        status = cli_json(cli, "status")
        assert isinstance(status, dict)
        jobs = {s.labels["state"]: s.value for s in families["queuectl_jobs"].samples}
        assert jobs == {state: float(count) for state, count in status["counts"].items()}
        assert families["queuectl_paused"].samples[0].value == 0.0
        assert families["queuectl_oldest_pending_age_seconds"].samples[0].value >= 0.0
        finished = families["queuectl_jobs_finished"]
        assert finished.type == "counter"
        # jobs that ended before this web process started are not counted again by it
        assert all(s.value == 0.0 for s in finished.samples if s.name.endswith("_total"))
        for family in families.values():
            for sample in family.samples:
                assert not set(sample.labels) & {"id", "job", "job_id", "command", "attempt"}

        cli("pause", check=True)
        families = {f.name: f for f in text_string_to_metric_families(web.get("/metrics").body)}
        assert families["queuectl_paused"].samples[0].value == 1.0


def test_an_action_goes_through_the_service_like_the_cli(cli: Cli, backend: Backend) -> None:
    seed(backend, dead=["d1"], pending=["p1", "p2"])
    with serving(backend) as web:
        token = web.get("/jobs").csrf()
        reply = web.post("/jobs", form={"csrf": token, "action": "cancel", "id": ["p1", "p2"]})
        assert reply.status == 303, reply.body
        states = {job["id"]: job["state"] for job in cli_json(cli, "list")}  # type: ignore[union-attr]
        assert states == {"d1": "dead", "p1": "canceled", "p2": "canceled"}

        # all or nothing, as the CLI: one job that cannot be retried refuses the lot
        refused = web.post("/jobs", form={"csrf": token, "action": "restart", "id": ["p1", "zz"]})
        assert refused.status == 404 and "zz" in refused.body
        assert cli_json(cli, "show", "p1")["state"] == "canceled"  # type: ignore[index]

        assert web.post(f"/jobs/{quote('d1')}/retry", form={"csrf": token}).status == 303
        assert cli_json(cli, "show", "d1")["state"] == "pending"  # type: ignore[index]

        made = web.post(
            "/enqueue",
            form={"csrf": token, "command": "echo from the web", "id": "w1", "priority": "3"},
        )
        assert made.status == 303 and made.headers["Location"] == "/jobs/w1"
        shown = cli_json(cli, "show", "w1")
        assert isinstance(shown, dict)
        assert (shown["command"], shown["priority"], shown["state"]) == (
            "echo from the web",
            3,
            "pending",
        )
        wrong = web.post("/enqueue", form={"csrf": token, "command": "true", "timeout": "soon"})
        assert wrong.status == 400 and "soon" in wrong.body

        assert web.post("/pause", form={"csrf": token}).status == 303
        assert cli_json(cli, "status")["paused"] is True  # type: ignore[index]
        assert web.post("/resume", form={"csrf": token}).status == 303
        assert cli_json(cli, "status")["paused"] is False  # type: ignore[index]

"""GET /api/...: the pages' data as JSON, with the keys of the CLI's --json (the same functions
of queuectl/render.py make them), and GET /metrics.

- /api/status             = `queuectl status --json`
- /api/stats              the execution statistics (service/stats.py ExecStats.as_dict)
- /api/jobs               = `queuectl list --json` for one page (state, q, since, until,
                            after, limit); the next page's URL in a `Link: <...>; rel="next"`
- /api/jobs/{id}          = `queuectl show ID --json` (the job, `parents`, `children`, `history`)
- /api/jobs/{id}/attempts = that `history`: one object per attempt
Errors are {"error": "one line"} with 400 (bad input) or 404 (no such job).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from queuectl.errors import BadInput, JobNotFound, QueuectlError
from queuectl.render import attempt_dict, job_detail_dict, job_dict
from queuectl.service import dashboard
from queuectl.service import stats as stats_service
from queuectl.web import metrics
from queuectl.web.app import context

routes = web.RouteTableDef()

MAX_LIMIT = 1000


def _json(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(value, status=status, headers=headers)


def _error(exc: QueuectlError) -> web.Response:
    status = 404 if isinstance(exc, JobNotFound) else 400 if isinstance(exc, BadInput) else 500
    return _json({"error": str(exc)}, status=status)


@routes.get("/api/status")
async def status(request: web.Request) -> web.StreamResponse:
    state = context(request)
    return _json((await dashboard.queue_status(state.queue, state.reads)).as_dict())


@routes.get("/api/stats")
async def stats(request: web.Request) -> web.StreamResponse:
    found = await stats_service.read(context(request).reads)
    return _json(found.as_dict())


def _limit(text: str | None) -> int:
    if text is None:
        return dashboard.PAGE_SIZE
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise BadInput(f"limit {text!r} is not a number from 1 to {MAX_LIMIT}")
    return int(text)


@routes.get("/api/jobs")
async def jobs(request: web.Request) -> web.StreamResponse:
    query = request.query
    try:
        wanted = dashboard.parse_filter(
            query.getall("state", []), query.get("q"), query.get("since"), query.get("until")
        )
        after = query.get("after")
        cursor = dashboard.Cursor.parse(after) if after else None
        page = await dashboard.jobs_page(
            context(request).reads, wanted, cursor, _limit(query.get("limit"))
        )
    except QueuectlError as exc:
        return _error(exc)
    headers = {}
    if page.next is not None:
        kept = [(k, v) for k, v in query.items() if k != "after"]
        link = f"/api/jobs?{urlencode([*kept, ('after', page.next.token())])}"
        headers["Link"] = f'<{link}>; rel="next"'
    return _json([job_dict(job) for job in page.jobs], headers=headers)


@routes.get("/api/jobs/{id}")
async def job(request: web.Request) -> web.StreamResponse:
    store = context(request).reads
    job_id = request.match_info["id"]
    try:
        found, attempts = await store.get(job_id), await store.attempts(job_id)
        parents, children = await store.relatives(job_id)
    except QueuectlError as exc:
        return _error(exc)
    return _json(job_detail_dict(found, attempts, parents, children))


@routes.get("/api/jobs/{id}/attempts")
async def attempts(request: web.Request) -> web.StreamResponse:
    try:
        found = await context(request).reads.attempts(request.match_info["id"])
    except QueuectlError as exc:
        return _error(exc)
    return _json([attempt_dict(a) for a in found])


@routes.get("/metrics")
async def metrics_page(request: web.Request) -> web.StreamResponse:
    state = context(request)
    async with state.metrics_lock:  # one scrape at a time moves the tracker
        status_now = await dashboard.queue_status(state.queue, state.reads)
        oldest = await dashboard.oldest_pending_age(state.reads)
        finished = await state.reads.finished_since(state.tracker.since, metrics.READ_LIMIT)
        state.tracker.add(finished)
        body = metrics.exposition(metrics.Snapshot(status_now, oldest, state.tracker))
    return web.Response(
        body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
    )

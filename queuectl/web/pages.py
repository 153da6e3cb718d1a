"""The dashboard's pages (GET): overview, jobs, job detail, DLQ, enqueue form, login, and the
live streams that make them update. Each parses its query, reads through
service/dashboard.py and renders a template; every page is complete HTML without JavaScript.
"""

from __future__ import annotations

import os
import time
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from queuectl.errors import BadInput, JobNotFound, QueuectlError
from queuectl.service import dashboard
from queuectl.states import CANCELABLE, RESTARTABLE, RETRYABLE, JobState, at_rest
from queuectl.store import JobFilter
from queuectl.web import live, sse
from queuectl.web.app import Web, context
from queuectl.web.text import cleaned

routes = web.RouteTableDef()

FLASH = "queuectl_flash"


def render(request: web.Request, name: str, status: int = 200, **values: Any) -> web.Response:
    state = context(request)
    flash = request.cookies.get(FLASH)
    html = state.templates.get_template(name).render(
        csrf=state.guard.csrf_token(request),
        flash=None if flash is None else unquote(flash)[:300],
        path=request.path_qs,
        login=state.guard.token is not None,
        **values,
    )
    response = web.Response(text=html, status=status, content_type="text/html")
    if flash is not None:
        response.del_cookie(FLASH, path="/")
    return response


def error_page(request: web.Request, exc: QueuectlError) -> web.Response:
    status = 404 if isinstance(exc, JobNotFound) else 400 if isinstance(exc, BadInput) else 500
    return render(request, "error.html", status=status, message=str(exc))


async def login_page(request: web.Request) -> web.StreamResponse:
    return render(request, "login.html", failed=False)


@routes.get("/login")
async def login(request: web.Request) -> web.StreamResponse:
    return await login_page(request)


# --- overview ---------------------------------------------------------------------------------


def _fragments(state: Web, view: dashboard.Overview) -> dict[str, str]:
    def part(name: str) -> str:
        return state.templates.get_template(f"_{name}.html").render(view=view, now=time.time())

    return {name: part(name) for name in ("counts", "stats", "chart", "engines", "feed")}


async def overview_fragments(state: Web) -> dict[str, str]:
    """The overview's live parts, rendered once for every client of the broadcaster."""
    return _fragments(state, await dashboard.overview(state.queue, state.reads))


@routes.get("/")
async def overview(request: web.Request) -> web.StreamResponse:
    state = context(request)
    view = await dashboard.overview(state.queue, state.reads)
    return render(request, "overview.html", view=view, parts=_fragments(state, view))


@routes.get("/events")
async def overview_events(request: web.Request) -> web.StreamResponse:
    broadcaster = context(request).broadcaster
    assert broadcaster is not None
    return await sse.serve(request, broadcaster)


# --- jobs -------------------------------------------------------------------------------------


def filter_of(request: web.Request) -> tuple[JobFilter, dict[str, Any]]:
    """The jobs form's filter, and its values to show again in the form."""
    query = request.query
    states = [s for s in query.getall("state", []) if s]
    text, since, until = query.get("q", ""), query.get("since", ""), query.get("until", "")
    wanted = dashboard.parse_filter(states, text, since, until)
    return wanted, {"state": states, "q": text, "since": since, "until": until}


@routes.get("/jobs")
async def jobs(request: web.Request) -> web.StreamResponse:
    state = context(request)
    try:
        wanted, form = filter_of(request)
        after = request.query.get("after")
        cursor = dashboard.Cursor.parse(after) if after else None
        page = await dashboard.jobs_page(state.reads, wanted, cursor)
    except QueuectlError as exc:
        return error_page(request, exc)
    base = [(k, v) for k, v in request.query.items() if k != "after"]
    return render(request, "jobs.html", page=page, form=form, base=base, first=cursor is None)


@routes.get("/jobs/{id}")
async def job(request: web.Request) -> web.StreamResponse:
    state = context(request)
    job_id = request.match_info["id"]
    try:
        found = await state.reads.get(job_id)
        attempts = await state.reads.attempts(job_id)
    except QueuectlError as exc:
        return error_page(request, exc)
    chosen = request.query.get("attempt", "")
    shown = next((a for a in attempts if str(a.run) == chosen), attempts[-1] if attempts else None)
    output = cleaned(shown.chunks()) if shown is not None else []
    running = found.state in (JobState.PROCESSING, JobState.PENDING, JobState.FAILED)
    allowed = {
        "retry": found.state in RETRYABLE,
        "restart": found.state in RESTARTABLE,
        "cancel": found.state in CANCELABLE or found.state is JobState.PROCESSING,
        "delete": at_rest(found.state),
    }
    return render(
        request,
        "job.html",
        job=found,
        attempts=attempts,
        shown=shown,
        output=output,
        live=running,
        allowed=[action for action, ok in allowed.items() if ok],
    )


@routes.get("/jobs/{id}/live")
async def job_live(request: web.Request) -> web.StreamResponse:
    state = context(request)
    job_id = request.match_info["id"]
    try:
        await state.reads.get(job_id)
    except QueuectlError as exc:
        return web.Response(status=404, text=f"{exc}\n")
    return await live.stream(request, state.queue, job_id)


# --- DLQ, enqueue -----------------------------------------------------------------------------


@routes.get("/dlq")
async def dlq(request: web.Request) -> web.StreamResponse:
    letters = await dashboard.dead_letters(context(request).reads)
    return render(request, "dlq.html", letters=letters)


@routes.get("/enqueue")
async def enqueue_form(request: web.Request) -> web.StreamResponse:
    return render(request, "enqueue.html", cwd=os.getcwd(), values={})

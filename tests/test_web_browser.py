"""The dashboard in a real browser (issue 12): headless Chromium (Debian's /usr/bin/chromium,
driven by Playwright) on a real `queuectl web`, with real engines and the real CLI.

- the overview's counts follow a job enqueued from the CLI within 2 s, without a reload;
- a running job's output appears on its page as the job prints it;
- retry from the DLQ page and cancel from a job's page change the job (seen through the CLI);
- a screenshot of each page is saved in the test's tmp_path.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_process import StartEngine
from helpers import Backend, Cli, seed, wait_for
from web.server import off_loop, serving

CHROMIUM = "/usr/bin/chromium"

if not os.access(CHROMIUM, os.X_OK):
    pytest.skip(f"no {CHROMIUM} (apt-get install chromium)", allow_module_level=True)

from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    opened.on(
        "console",
        lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    try:
        yield opened
    finally:
        context.close()
    assert not errors, errors  # no script error, nothing the CSP had to block


def show(cli: Cli, job_id: str) -> dict[str, object]:
    found = json.loads(cli("show", job_id, "--json", check=True).stdout)
    assert isinstance(found, dict)
    return found


def test_the_overview_counts_follow_a_cli_enqueue_without_a_reload(
    cli: Cli, backend: Backend, page: Page, tmp_path: Path
) -> None:
    off_loop(seed, backend, pending=["p1"])
    with serving(backend) as web:
        page.goto(web.url + "/")
        pending = page.locator('#counts td[data-state="pending"]')
        expect(pending).to_have_text("1")
        page.evaluate("window.notReloaded = true")
        page.wait_for_function("document.querySelector('[sse-connect]') !== null")
        cli("enqueue", "--id", "p2", "--", "true", check=True)
        expect(pending).to_have_text("2", timeout=2000)
        cli("enqueue", "--id", "p3", "--", "true", check=True)
        expect(pending).to_have_text("3", timeout=2000)
        assert page.evaluate("window.notReloaded") is True
        page.screenshot(path=tmp_path / "overview.png", full_page=True)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_running_jobs_output_appears_live_on_its_page(
    cli: Cli, engines: StartEngine, page: Page, tmp_path: Path
) -> None:
    engine = engines("--concurrency", "2")
    wait_for(engine.started)
    script = "for i in 1 2 3 4 5 6 7 8 9 10; do echo line-$i; echo oops-$i >&2; sleep 0.4; done"
    cli("enqueue", "--id", "live", "--", script, check=True)
    wait_for(lambda: show(cli, "live")["state"] == "processing")
    with serving(engine.backend) as web:
        page.goto(f"{web.url}/jobs/live")
        output = page.locator("#live-output")
        expect(output).to_contain_text("line-2", timeout=5000)
        expect(output.locator("span.stderr").first).to_contain_text("oops-")
        assert show(cli, "live")["state"] == "processing"  # live: the job still runs
        expect(output).to_contain_text("line-10", timeout=10000)
        expect(page.locator("#live-state")).to_contain_text("completed", timeout=10000)
        text = output.inner_text()
        assert text.index("line-1\n") < text.index("line-2") < text.index("line-10")
        page.screenshot(path=tmp_path / "job-live.png", full_page=True)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_dlq_retry_and_job_page_cancel_change_the_jobs(
    cli: Cli, backend: Backend, engines: StartEngine, page: Page, tmp_path: Path
) -> None:
    off_loop(seed, backend, dead=["d1", "d2", "d3"])
    with serving(backend) as web:
        page.goto(f"{web.url}/dlq")
        page.screenshot(path=tmp_path / "dlq.png", full_page=True)
        expect(page.locator(".group")).to_have_count(1)  # one error: one group
        page.click('button.retry-one[data-job="d1"]')
        expect(page.locator(".flash")).to_contain_text("retried 1 job")
        assert show(cli, "d1")["state"] == "pending"
        assert show(cli, "d2")["state"] == "dead"
        page.click("button.retry-group")
        expect(page.locator(".flash")).to_contain_text("retried 2 jobs")
        assert {show(cli, j)["state"] for j in ("d2", "d3")} == {"pending"}

        for path, name in (("/jobs", "jobs"), ("/enqueue", "enqueue"), ("/jobs/d1", "job")):
            page.goto(web.url + path)
            page.screenshot(path=tmp_path / f"{name}.png", full_page=True)

        engine = engines("--concurrency", "1")
        wait_for(engine.started)
        cli("enqueue", "--id", "long", "--priority", "9", "--", "sleep 60", check=True)
        wait_for(lambda: show(cli, "long")["state"] == "processing")
        page.goto(f"{web.url}/jobs/long")
        page.click("#action-cancel")
        expect(page.locator(".flash")).to_contain_text("canceled long", timeout=15000)
        assert show(cli, "long")["state"] == "canceled"
        page.screenshot(path=tmp_path / "job-canceled.png", full_page=True)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_the_pages_work_without_javascript(
    cli: Cli, backend: Backend, browser: Browser, tmp_path: Path
) -> None:
    off_loop(seed, backend, dead=["d1"], pending=["p1"])
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        with serving(backend) as web:
            page.goto(f"{web.url}/jobs")
            page.check('input[name="id"][value="p1"]')
            page.click('button[name="action"][value="cancel"]')
            expect(page.locator(".flash")).to_contain_text("cancel: 1 job")
            assert show(cli, "p1")["state"] == "canceled"
            page.goto(f"{web.url}/enqueue")
            page.fill('textarea[name="command"]', "echo typed")
            page.fill('input[name="id"]', "typed")
            page.click("form.enqueue button")
            expect(page.locator("h1")).to_contain_text("typed")
            assert show(cli, "typed")["command"] == "echo typed"
            page.goto(f"{web.url}/")
            expect(page.locator('#counts td[data-state="pending"]')).to_have_text("1")
            page.screenshot(path=tmp_path / "overview-no-js.png", full_page=True)
    finally:
        context.close()

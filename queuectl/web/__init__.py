"""The web dashboard (`queuectl web`): live pages, a JSON API and Prometheus metrics.

app.py builds the aiohttp application; pages.py, actions.py and api.py handle requests thinly
(parse, call queuectl/service, render); security.py guards every request; sse.py and live.py
stream updates; metrics.py lays out /metrics. Templates (Jinja2, autoescaped) are in
templates/, the vendored htmx and its SSE extension (with their licences) in static/.
"""

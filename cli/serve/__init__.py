"""`lbsearch serve`: a warm local search service (JSON API) and a web page to browse media.

command.py  the Typer command: options, binding rules, start and stop
service.py  the library opened for reading, its engine and encoders, reloads after index commits
app.py      the Starlette app: routes, static page, body limits, one log line per request
api.py      the JSON handlers; forms.py request fields -> the core's Query; content.py ranges
security.py host, origin and token checks; embedding.py /api/embed
base.py     the limits and the JSON error shape every part shares; examples.py the engine with
            uploaded examples; uploads.py uploads streamed under the cap, decoded in the pool
clips.py    GET /api/files/{id}/clip: a moment cut in the shared decode pool
local_socket.py  the owner-only socket that answers `lbsearch query` from the warm engine
protocol.py uvicorn's HTTP protocol with a deadline on each request's head
static/     the page (plain HTML, CSS and JavaScript; no build step)
"""

from .command import serve

__all__ = ["serve"]

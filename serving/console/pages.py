"""The console's routes: server-rendered pages over the registry, and the live page over the engine."""

from __future__ import annotations

import datetime as dt
import json
import logging
import mimetypes
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import parse_qs, quote, urlencode

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape

from loradock.registry import Registry, RegistryError, parse_ref

from ..statuses import LORADOCK_ERRORS, status_for
from . import views
from .live import LiveSampler
from .security import (
    CSRF_COOKIE,
    SECURITY_HEADERS,
    SESSION_COOKIE,
    AccessPolicy,
    ConsoleAuthError,
    LoginRequired,
)

if TYPE_CHECKING:
    from ..engine import ServingEngine

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
MAX_FORM_BYTES = 16 * 1024
STALE_FORM = "The form's CSRF token is missing or stale; reload the page and try again."
CROSS_ORIGIN = (
    "This form was posted from another site or port; the console accepts forms from its own "
    "pages only. Open the console at its own address and try again."
)
LIVE_REFRESH_S = 2


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(HERE / "templates")),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
    env.filters["num"] = _num
    env.filters["when"] = _when
    env.filters["clock"] = lambda t: _when(t)[11:] if isinstance(t, (int, float)) else "—"
    env.filters["size"] = _size
    env.filters["js"] = lambda v: (
        json.dumps(v, indent=2, sort_keys=True, default=str) if isinstance(v, (dict, list)) else v
    )
    return env


def _num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return str(value) if isinstance(value, int) else f"{value:.{digits}f}"


def _when(value: Any) -> str:
    if isinstance(value, (int, float)):
        return dt.datetime.fromtimestamp(value, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    try:
        return dt.datetime.fromisoformat(str(value)).strftime("%Y-%m-%d %H:%M:%S UTC")
    except ValueError:
        return str(value)


def _size(value: Any) -> str:
    if not isinstance(value, (int, float)):
        return "—"
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(value)


class Console:
    """One console over one registry (and optionally one engine), mounted under `prefix`."""

    def __init__(self, registry: Registry, engine: ServingEngine | None, policy: AccessPolicy, prefix: str) -> None:
        self.registry = registry
        self.engine = engine
        self.policy = policy
        self.prefix = prefix.rstrip("/")
        self.env = _environment()
        # The live page needs the engine's snapshot() (contract 6); an engine without one gets none.
        self.sampler = LiveSampler(engine, registry) if engine is not None and hasattr(engine, "snapshot") else None

    # -- rendering -------------------------------------------------------------

    def url(self, *parts: Any, **query: Any) -> str:
        path = "/".join(quote(str(p), safe="@") for p in parts)
        q = {k: v for k, v in query.items() if v is not None}
        return f"{self.prefix}/{path}" + (f"?{urlencode(q)}" if q else "")

    def render(self, request: Request, template: str, status: int = 200, **context: Any) -> Response:
        html = self.env.get_template(template).render(
            request=request,
            prefix=self.prefix,
            url=self.url,
            live=self.sampler is not None,
            writable=self.policy.writable,
            protected=self.policy.key is not None,
            csrf=self.policy.csrf_token(request),
            refresh_s=LIVE_REFRESH_S,
            **context,
        )
        return self.finish(request, HTMLResponse(html, status_code=status))

    def finish(self, request: Request, response: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        new = getattr(request.state, "csrf_new", None)
        if new:
            response.set_cookie(
                CSRF_COOKIE,
                new,
                path=self.prefix or "/",
                httponly=True,
                samesite="strict",
                secure=request.url.scheme == "https",
            )
        return response

    def error(self, request: Request, status: int, message: str) -> Response:
        return self.render(request, "error.html", status=status, status_code=status, message=message)

    def refused(self, request: Request, exc: Exception) -> Response:
        """A loradock error as an error page, at the status the API gives it (serving/statuses.py)."""
        return self.error(request, status_for(exc), str(exc))

    def page(self, request: Request, template: str, **context: Any) -> Response:
        """`render`, with a registry refusal met while rendering shown as its error page."""
        try:
            return self.render(request, template, **context)
        except LORADOCK_ERRORS as exc:
            return self.refused(request, exc)

    # -- guards ----------------------------------------------------------------

    def check_host(self, request: Request) -> None:
        if not self.policy.check_host(request):
            raise ConsoleAuthError("This console answers only to localhost names; open it at http://127.0.0.1.")

    def guard(self, request: Request) -> None:
        self.check_host(request)
        if not self.policy.authenticated(request):
            raise LoginRequired("Sign in with the server's bearer token.")

    async def form(self, request: Request) -> dict[str, str]:
        """A small url-encoded form (no multipart dependency); larger bodies are refused unread."""
        length = request.headers.get("content-length")
        if length is None or not length.isdigit() or int(length) > MAX_FORM_BYTES:
            raise ConsoleAuthError("Form too large or without Content-Length.")
        body = (await request.body())[:MAX_FORM_BYTES].decode("utf-8", "replace")
        return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}


def _install_handlers(app: FastAPI, console: Console) -> None:
    @app.exception_handler(ConsoleAuthError)
    async def auth_failed(request: Request, exc: ConsoleAuthError) -> Response:
        if isinstance(exc, LoginRequired) and request.method == "GET":
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return console.finish(request, RedirectResponse(console.url("login", next=target), status_code=303))
        return console.error(request, 403 if not isinstance(exc, LoginRequired) else 401, str(exc))


# -- dependencies: the console build_router binds, typed ------------------------------
# async: a plain def would cost every request a hop to the thread pool.


async def _console(request: Request) -> Console:
    console: Console = request.state.console
    return console


async def _same_origin_posts(request: Request, console: Annotated[Console, Depends(_console)]) -> None:
    """Every POST, before its handler: refused when the browser says it comes from another origin."""
    if request.method == "POST" and not console.policy.same_origin(request):
        raise ConsoleAuthError(CROSS_ORIGIN)


async def _signed_in(request: Request, console: Annotated[Console, Depends(_console)]) -> Console:
    console.guard(request)  # before any body is read
    return console


async def _on_localhost(request: Request, console: Annotated[Console, Depends(_console)]) -> Console:
    console.check_host(request)
    return console


ConsoleDep = Annotated[Console, Depends(_console)]
SignedIn = Annotated[Console, Depends(_signed_in)]
OnLocalhost = Annotated[Console, Depends(_on_localhost)]

# Mounted under the console's prefix by build_router; `live` only where the engine has a snapshot.
pages = APIRouter()
live = APIRouter()


# -- reads ----------------------------------------------------------------------------


@pages.get("/", response_class=HTMLResponse)
def domains(request: Request, console: SignedIn) -> Response:
    return console.page(request, "domains.html", rows=views.overview(console.registry))


@pages.get("/domains/{name}", response_class=HTMLResponse)
def domain(request: Request, name: str, console: SignedIn) -> Response:
    try:
        data = views.domain_page(console.registry, name)
    except LORADOCK_ERRORS as exc:
        return console.refused(request, exc)
    notice = views.move_notice(console.registry, name, request.query_params.get("moved"))
    return console.page(request, "domain.html", notice=notice, **data)


@pages.get("/versions/{domain}/{ref}", response_class=HTMLResponse)
def version(request: Request, domain: str, ref: str, console: SignedIn) -> Response:
    try:
        data = views.version_page(console.registry, f"{domain}@{ref}")
    except LORADOCK_ERRORS as exc:
        return console.refused(request, exc)
    return console.page(request, "version.html", **data)


def _blob(console: Console, request: Request, name: str, files: dict[str, dict[str, Any]]) -> Response:
    entry = files.get(name)
    if entry is None:
        return console.error(request, 404, f"No file {name!r} here; the files are: {', '.join(sorted(files))}.")
    problem = console.registry.blobs.check(entry["sha256"])
    if problem:
        return console.error(request, 500, f"The stored bytes of {name!r} are {problem}; run 'adapters verify'.")
    media = mimetypes.guess_type(name)[0] or "application/octet-stream"
    inline = views.is_image(name) and request.query_params.get("download") is None
    response = FileResponse(
        console.registry.blobs.path(entry["sha256"]),
        media_type=media,
        filename=Path(name).name,
        content_disposition_type="inline" if inline else "attachment",
    )
    response.headers["X-Content-Sha256"] = entry["sha256"]
    return console.finish(request, response)


@pages.get("/versions/{domain}/{ref}/files/{name:path}")
def version_file(request: Request, domain: str, ref: str, name: str, console: SignedIn) -> Response:
    try:
        files = console.registry.resolve(f"{domain}@{ref}").files
    except LORADOCK_ERRORS as exc:
        return console.refused(request, exc)
    return _blob(console, request, name, files)


@pages.get("/artifacts/{artifact_id}/{name:path}")
def artifact_file(request: Request, artifact_id: int, name: str, console: SignedIn) -> Response:
    try:
        files = console.registry.artifact(artifact_id).files
    except RegistryError as exc:  # the registry's "No artifact with id N" is a plain ArtifactError
        return console.error(request, 404, str(exc))
    return _blob(console, request, name, files)


@pages.get("/compare", response_class=HTMLResponse)
def compare(request: Request, console: SignedIn, a: str | None = None, b: str | None = None) -> Response:
    refs = views.all_refs(console.registry)
    if not a or not b:
        a = a or (refs[-2] if len(refs) > 1 else None)
        b = b or (refs[-1] if refs else None)
        return console.page(request, "compare.html", refs=refs, sel_a=a, sel_b=b, cmp=None)
    try:
        data = views.compare(console.registry, a, b)
    except LORADOCK_ERRORS as exc:
        return console.refused(request, exc)
    return console.page(request, "compare.html", refs=refs, sel_a=a, sel_b=b, cmp=data)


def _sample(console: Console) -> dict[str, Any]:
    assert console.sampler is not None  # `live` is mounted only with a sampler
    return console.sampler.sample()


@live.get("/live", response_class=HTMLResponse)
def live_page(request: Request, console: SignedIn) -> Response:
    return console.page(request, "live.html", data=_sample(console))


@live.get("/live.json")
def live_json(request: Request, console: SignedIn) -> Response:
    return console.finish(request, JSONResponse(_sample(console)))


# -- writes: alias moves only ----------------------------------------------------------


def _write_refused(console: Console, request: Request) -> Response | None:
    if not console.policy.writable:
        return console.error(
            request,
            403,
            "This console is read-only: start it with --api-key-env VAR "
            "(the server's bearer token) to move aliases from here.",
        )
    return None


@pages.get("/alias/{domain}", response_class=HTMLResponse)
def alias_confirm(request: Request, domain: str, console: SignedIn, alias: str = "", to: str = "") -> Response:
    refused = _write_refused(console, request)
    if refused:
        return refused
    registry = console.registry
    try:
        target = registry.resolve(f"{domain}@{to}")
        parse_ref(f"{domain}@{alias}")  # a malformed alias name is refused before the confirmation
        current = next((a["number"] for a in registry.aliases(domain) if a["name"] == alias), None)
    except LORADOCK_ERRORS as exc:
        return console.refused(request, exc)
    context = {"domain": domain, "alias": alias, "target": target, "current": current, "gate": views.gate_of(target)}
    return console.page(request, "confirm.html", **context)


def _poll_now(request: Request) -> None:
    """A served alias swaps now instead of at the next poll."""
    watcher = getattr(request.app.state, "watcher", None)
    if watcher is None:  # the standalone console serves nothing
        return
    try:
        watcher.poll()
    except Exception:  # the watcher's own loop will retry
        log.exception("immediate reload after the console's alias move failed")


@pages.post("/alias/{domain}")
async def alias_move(request: Request, domain: str, console: SignedIn) -> Response:
    refused = _write_refused(console, request)
    if refused:
        return refused
    form = await console.form(request)
    if not console.policy.csrf_ok(request, form.get("csrf", "")):
        return console.error(request, 403, STALE_FORM)
    if form.get("confirm") != "yes":
        return console.error(request, 400, "Alias moves need the confirmation step; use the Review button first.")
    alias, to = form.get("alias", ""), form.get("to", "")
    try:
        moved = console.registry.set_alias(domain, alias, to)
    except LORADOCK_ERRORS as exc:
        return console.refused(request, exc)
    log.info("console moved %s@%s to %s", domain, alias, moved.ref)
    _poll_now(request)
    # The notice names the move's event id; the page reads what happened from the log (issue 22, 7).
    event = console.registry.alias_history(domain, alias)[-1]
    return console.finish(request, RedirectResponse(console.url("domains", domain, moved=event.id), status_code=303))


# -- sign-in (only when a key is configured) ---------------------------------------------


@pages.get("/login", response_class=HTMLResponse)
def login_form(request: Request, console: OnLocalhost, next: str = "") -> Response:
    if console.policy.key is None:  # nothing to sign in to: the console is open and read-only
        return console.finish(request, RedirectResponse(console.url(""), status_code=303))
    return console.render(request, "login.html", next=next, failed=False)


@pages.post("/login")
async def login(request: Request, console: OnLocalhost) -> Response:
    form = await console.form(request)
    nxt = form.get("next", "")
    if not nxt.startswith(console.prefix + "/") or nxt.startswith("//"):
        nxt = console.url("")
    if not console.policy.csrf_ok(request, form.get("csrf", "")):
        return console.error(request, 403, STALE_FORM)
    if not console.policy.token_ok(form.get("token", "")):
        return console.render(request, "login.html", status=401, next=nxt, failed=True)
    response = RedirectResponse(nxt, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        console.policy.new_session(),
        path=console.prefix or "/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return console.finish(request, response)


@pages.post("/logout")
async def logout(request: Request, console: ConsoleDep) -> Response:
    form = await console.form(request)
    if not console.policy.csrf_ok(request, form.get("csrf", "")):
        return console.error(request, 403, STALE_FORM)
    response = RedirectResponse(console.url("login"), status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=console.prefix or "/")
    return console.finish(request, response)


# -- mounting -----------------------------------------------------------------------------


def build_router(console: Console) -> APIRouter:
    """The console's routes under `console.prefix`, each handed `console` through its dependencies."""

    async def bind(request: Request) -> None:  # first, so every dependency after it finds the console
        request.state.console = console

    router = APIRouter(
        prefix=console.prefix, include_in_schema=False, dependencies=[Depends(bind), Depends(_same_origin_posts)]
    )
    router.include_router(pages)
    if console.sampler is not None:
        router.include_router(live)
    return router


def mount(
    app: FastAPI, registry: Registry, engine: ServingEngine | None, policy: AccessPolicy, prefix: str = "/ui"
) -> Console:
    console = Console(registry, engine, policy, prefix)
    _install_handlers(app, console)
    app.include_router(build_router(console))
    app.mount(f"{console.prefix}/static", StaticFiles(directory=str(HERE / "static")), name="console-static")
    return console

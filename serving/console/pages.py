"""The console's routes: server-rendered pages over the registry, and the live page over the engine."""

from __future__ import annotations

import datetime as dt
import json
import logging
import mimetypes
from pathlib import Path
from typing import TYPE_CHECKING, Any
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


def build_router(console: Console) -> APIRouter:
    def same_origin_posts(request: Request) -> None:
        """Every POST, before its handler: refused when the browser says it comes from another origin."""
        if request.method == "POST" and not console.policy.same_origin(request):
            raise ConsoleAuthError(CROSS_ORIGIN)

    router = APIRouter(prefix=console.prefix, include_in_schema=False, dependencies=[Depends(same_origin_posts)])
    registry = console.registry

    def page(request: Request, template: str, **context: Any) -> Response:
        try:
            return console.render(request, template, **context)
        except LORADOCK_ERRORS as exc:
            return console.error(request, status_for(exc), str(exc))

    @router.get("/", response_class=HTMLResponse)
    def domains(request: Request) -> Response:
        console.guard(request)
        return page(request, "domains.html", rows=views.overview(registry))

    @router.get("/domains/{name}", response_class=HTMLResponse)
    def domain(request: Request, name: str) -> Response:
        console.guard(request)
        try:
            data = views.domain_page(registry, name)
        except LORADOCK_ERRORS as exc:
            return console.error(request, status_for(exc), str(exc))
        notice = views.move_notice(registry, name, request.query_params.get("moved"))
        return page(request, "domain.html", notice=notice, **data)

    @router.get("/versions/{domain}/{ref}", response_class=HTMLResponse)
    def version(request: Request, domain: str, ref: str) -> Response:
        console.guard(request)
        try:
            data = views.version_page(registry, f"{domain}@{ref}")
        except LORADOCK_ERRORS as exc:
            return console.error(request, status_for(exc), str(exc))
        return page(request, "version.html", **data)

    def _blob(request: Request, name: str, files: dict[str, dict[str, Any]]) -> Response:
        entry = files.get(name)
        if entry is None:
            return console.error(request, 404, f"No file {name!r} here; the files are: {', '.join(sorted(files))}.")
        problem = registry.blobs.check(entry["sha256"])
        if problem:
            return console.error(request, 500, f"The stored bytes of {name!r} are {problem}; run 'adapters verify'.")
        media = mimetypes.guess_type(name)[0] or "application/octet-stream"
        inline = views.is_image(name) and request.query_params.get("download") is None
        response = FileResponse(
            registry.blobs.path(entry["sha256"]),
            media_type=media,
            filename=Path(name).name,
            content_disposition_type="inline" if inline else "attachment",
        )
        response.headers["X-Content-Sha256"] = entry["sha256"]
        return console.finish(request, response)

    @router.get("/versions/{domain}/{ref}/files/{name:path}")
    def version_file(request: Request, domain: str, ref: str, name: str) -> Response:
        console.guard(request)
        try:
            files = registry.resolve(f"{domain}@{ref}").files
        except LORADOCK_ERRORS as exc:
            return console.error(request, status_for(exc), str(exc))
        return _blob(request, name, files)

    @router.get("/artifacts/{artifact_id}/{name:path}")
    def artifact_file(request: Request, artifact_id: int, name: str) -> Response:
        console.guard(request)
        try:
            files = registry.artifact(artifact_id).files
        except RegistryError as exc:  # the registry's "No artifact with id N" is a plain ArtifactError
            return console.error(request, 404, str(exc))
        return _blob(request, name, files)

    @router.get("/compare", response_class=HTMLResponse)
    def compare(request: Request, a: str | None = None, b: str | None = None) -> Response:
        console.guard(request)
        refs = views.all_refs(registry)
        if not a or not b:
            a = a or (refs[-2] if len(refs) > 1 else None)
            b = b or (refs[-1] if refs else None)
            return page(request, "compare.html", refs=refs, sel_a=a, sel_b=b, cmp=None)
        try:
            data = views.compare(registry, a, b)
        except LORADOCK_ERRORS as exc:
            return console.error(request, status_for(exc), str(exc))
        return page(request, "compare.html", refs=refs, sel_a=a, sel_b=b, cmp=data)

    if console.sampler is not None:

        @router.get("/live", response_class=HTMLResponse)
        def live(request: Request) -> Response:
            console.guard(request)
            assert console.sampler is not None
            return page(request, "live.html", data=console.sampler.sample())

        @router.get("/live.json")
        def live_json(request: Request) -> Response:
            console.guard(request)
            assert console.sampler is not None
            return console.finish(request, JSONResponse(console.sampler.sample()))

    # -- writes: alias moves only ----------------------------------------------

    def _write_refused(request: Request) -> Response | None:
        if not console.policy.writable:
            return console.error(
                request,
                403,
                "This console is read-only: start it with --api-key-env VAR "
                "(the server's bearer token) to move aliases from here.",
            )
        return None

    @router.get("/alias/{domain}", response_class=HTMLResponse)
    def alias_confirm(request: Request, domain: str, alias: str = "", to: str = "") -> Response:
        console.guard(request)
        refused = _write_refused(request)
        if refused:
            return refused
        try:
            target = registry.resolve(f"{domain}@{to}")
            parse_ref(f"{domain}@{alias}")  # a malformed alias name is refused before the confirmation
            current = next((a["number"] for a in registry.aliases(domain) if a["name"] == alias), None)
        except LORADOCK_ERRORS as exc:
            return console.error(request, status_for(exc), str(exc))
        return page(
            request,
            "confirm.html",
            domain=domain,
            alias=alias,
            target=target,
            current=current,
            gate=views.gate_of(target),
        )

    @router.post("/alias/{domain}")
    async def alias_move(request: Request, domain: str) -> Response:
        console.guard(request)  # before the body is read
        refused = _write_refused(request)
        if refused:
            return refused
        form = await console.form(request)
        if not console.policy.csrf_ok(request, form.get("csrf", "")):
            return console.error(request, 403, STALE_FORM)
        if form.get("confirm") != "yes":
            return console.error(request, 400, "Alias moves need the confirmation step; use the Review button first.")
        alias, to = form.get("alias", ""), form.get("to", "")
        try:
            moved = registry.set_alias(domain, alias, to)
        except LORADOCK_ERRORS as exc:
            return console.error(request, status_for(exc), str(exc))
        log.info("console moved %s@%s to %s", domain, alias, moved.ref)
        watcher = getattr(request.app.state, "watcher", None)
        if watcher is not None:  # a served alias swaps now instead of at the next poll
            try:
                watcher.poll()
            except Exception:  # the watcher's own loop will retry
                log.exception("immediate reload after the console's alias move failed")
        # The notice names the move's event id; the page reads what happened from the log (issue 22, 7).
        event = registry.alias_history(domain, alias)[-1]
        return console.finish(
            request, RedirectResponse(console.url("domains", domain, moved=event.id), status_code=303)
        )

    # -- sign-in (only when a key is configured) ---------------------------------

    @router.get("/login", response_class=HTMLResponse)
    def login_form(request: Request, next: str = "") -> Response:
        console.check_host(request)
        if console.policy.key is None:  # nothing to sign in to: the console is open and read-only
            return console.finish(request, RedirectResponse(console.url(""), status_code=303))
        return console.render(request, "login.html", next=next, failed=False)

    @router.post("/login")
    async def login(request: Request) -> Response:
        console.check_host(request)
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

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        form = await console.form(request)
        if not console.policy.csrf_ok(request, form.get("csrf", "")):
            return console.error(request, 403, STALE_FORM)
        response = RedirectResponse(console.url("login"), status_code=303)
        response.delete_cookie(SESSION_COOKIE, path=console.prefix or "/")
        return console.finish(request, response)

    return router


def mount(
    app: FastAPI, registry: Registry, engine: ServingEngine | None, policy: AccessPolicy, prefix: str = "/ui"
) -> Console:
    console = Console(registry, engine, policy, prefix)
    _install_handlers(app, console)
    app.include_router(build_router(console))
    app.mount(f"{console.prefix}/static", StaticFiles(directory=str(HERE / "static")), name="console-static")
    return console

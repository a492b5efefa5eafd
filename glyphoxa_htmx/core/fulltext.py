"""Search hits highlighted in Python the way PostgreSQL's ``ts_headline`` marks them (issue 18).

``ts_headline('english', text, query, 'HighlightAll=true')`` parses and stems every word of every
hit again (~13 µs a line): on the search page that was ~0.35-0.45 ms of database CPU a request, a
third of what the page cost the one PostgreSQL every app instance shares. For the lines where the
answer is certain, the same marks are made here, in the app's horizontally scaled workers:

* **Plain lines only.** A line is plain when it holds nothing but ASCII letters, ASCII whitespace and
  ``, . ! ? ; : ' " ( )``, no ``.`` directly before a non-space (``e.g`` and ``a.b`` are file and
  host tokens to PostgreSQL's parser) and no word of 200 letters or more. PostgreSQL's default parser
  splits such a line into ``asciiword`` tokens (runs of letters) and blanks, nothing else; every
  other line gets PostgreSQL's own headline (``plain``, ``PLAIN_SQL``: the search asks
  ``ts_headline`` only for the hits that aren't plain).
* **The same lexemes.** A word is marked when its lexeme is one of the query's: lowercased, not one
  of the ``english`` configuration's stop words (PostgreSQL's ``english.stop``, below), stemmed by
  Snowball's English stemmer at the version PostgreSQL 15 ships (PyStemmer 2.2.0.3, Snowball 2.2.0:
  identical to ``ts_lexize('english_stem', w)`` on 188,000 distinct words; newer Snowball stems a
  few dozen of them differently, "added" or "international"). The query's lexemes are
  PostgreSQL's own: ``websearch_to_tsquery('english', q)::text``, folded to a constant when the
  statement is planned. With ``HighlightAll`` PostgreSQL marks every word matching any operand, a
  negated one or one of a phrase included, wherever it stands; so does ``mark``.
* **Fail closed.** Once per process, ``agrees`` compares these lexemes and marks with PostgreSQL's
  for a probe text (stop words, and words whose stems changed between Snowball versions); where
  the database's ``english`` configuration is another (an altered stop list, a newer stemmer, a
  different parser), every hit keeps PostgreSQL's headline.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from typing import Any

import Stemmer
from markupsafe import Markup

from glyphoxa_htmx.core.markup import escape, trusted
from glyphoxa_htmx.core.memo import Memo

log = logging.getLogger(__name__)

CONFIG = "english"

# PostgreSQL 15's tsearch_data/english.stop, the stop list of the ``english_stem`` dictionary.
STOP_WORDS = frozenset(
    (
        "i me my myself we our ours ourselves you your yours yourself yourselves he him his himself "
        "she her hers herself it its itself they them their theirs themselves what which who whom "
        "this that these those am is are was were be been being have has had having do does did "
        "doing a an the and but if or because as until while of at by for with about against between "
        "into through during before after above below to from up down in out on off over under again "
        "further then once here there when where why how all any both each few more most other some "
        "such no nor not only own same so than too very s t can will just don should now"
    ).split()
)

# Private-use characters as ts_headline markers: stripped from the text first, then turned into
# <mark> only after the text was HTML-escaped (``from_headline``).
START, STOP = "\ue000", "\ue001"
HEADLINE_OPTS = f'StartSel="{START}", StopSel="{STOP}", HighlightAll=true'


def from_headline(marked: str) -> Markup:
    """PostgreSQL's headline as HTML: escaped, then the markers turned into <mark> (never |safe
    on database text)."""
    escaped = str(escape(marked))
    return Markup(escaped.replace(START, "<mark>").replace(STOP, "</mark>"))


# A line PostgreSQL's parser splits into asciiword tokens and blanks only: a line in which this
# regular expression finds something is not plain and gets ts_headline. The same text is a POSIX
# regular expression for PostgreSQL (the probe, and the tests that hold ``plain`` to PostgreSQL's
# reading of it) and a Python one (``plain``).
# ASCII whitespace only: ``[:space:]`` follows the database's locale, and a non-ASCII space is the
# parser's to judge.
NOT_PLAIN_CHAR_SQL = r"[^A-Za-z \t\n\r\f\v,.!?;:'\"()]"
DOT_BEFORE_WORD_SQL = r"[.][^ \t\n\r\f\v]"
SHORT_NOT_PLAIN_SQL = f"{NOT_PLAIN_CHAR_SQL}|{DOT_BEFORE_WORD_SQL}"
LONG_WORD = 200
LONG_WORD_SQL = f"[A-Za-z]{{{LONG_WORD}}}"
PLAIN_SQL = f"{SHORT_NOT_PLAIN_SQL}|{LONG_WORD_SQL}"

# In Python each branch on its own: a pattern that begins with a character set (or a literal) is
# scanned in C without trying the other branch at every position (~2.4x faster, issue 18).
_NOT_PLAIN_CHAR = re.compile(NOT_PLAIN_CHAR_SQL)
_DOT_BEFORE_WORD = re.compile(DOT_BEFORE_WORD_SQL)
_LONG_WORD = re.compile(LONG_WORD_SQL)


def plain(text: str) -> bool:
    """Whether ``text`` is a plain line (``PLAIN_SQL`` finds nothing in it): the word of 200 letters
    is looked for only in lines at least that long. The hits' statement used to ask this of
    PostgreSQL, as a ``CASE`` around ``ts_headline``; parsing, planning and running that expression
    in a statement planned on every search was ~25 % of its database CPU (issue 18), and asked here
    it is ~1 µs a hit in the app's scaled-out workers. The lines found not plain get
    PostgreSQL's headline from the hits' sessions' statement (``services/transcripts.py``)."""
    return (
        _NOT_PLAIN_CHAR.search(text) is None
        and _DOT_BEFORE_WORD.search(text) is None
        and (len(text) < LONG_WORD or _LONG_WORD.search(text) is None)
    )


_SPLIT = re.compile(r"([A-Za-z]+)")  # a plain line's words at the odd places of its split
_LEXEME = re.compile(r"'((?:[^']|'')*)'")

_stemmer = Stemmer.Stemmer("english")
_stem_lock = threading.Lock()  # a PyStemmer object is not safe to share between threads
MAX_LEXEMES = 50_000  # distinct words of hits shown, per process (~0.2 KB an entry)
_lexemes: Memo[str, str | None] = Memo(MAX_LEXEMES)


def lexeme(word: str) -> str | None:
    """The ``english`` configuration's lexeme of one ASCII word, None for a stop word."""
    found = _lexemes.get(word, "")
    if found != "":
        return found
    lower = word.lower()
    if lower in STOP_WORDS:
        value = None
    else:
        with _stem_lock:
            value = _stemmer.stemWord(lower)
    return _lexemes.keep(word, value)


def query_lexemes(tsquery: str) -> frozenset[str]:
    """The lexemes of a tsquery as PostgreSQL writes it (``'chapel' & !'bell'``)."""
    return frozenset(m.replace("''", "'") for m in _LEXEME.findall(tsquery or ""))


def mark(text: str, lexemes: frozenset[str]) -> Markup:
    """A plain line, escaped as ``from_headline`` escapes PostgreSQL's headline, with each word whose
    lexeme is one of ``lexemes`` in ``<mark>``. Escaping a plain line adds only ``&#39;`` and
    ``&#34;``, no letters, so its words are the same before and after.

    Only words that begin with the first letter of one of the lexemes are looked up (``_marker``):
    Snowball's English stemmer never changes a word's first letter (it works on suffixes; its
    exceptions, "dying" -> "die", keep it too; ``tests/test_fulltext.py`` checks 1.4 million
    words), so no other word can be marked. The regular expression finds those few in C; the
    lookup of every word was ~60 % of a line's ~6 µs (issue 18)."""
    return marker(lexemes)(text)


def marker(lexemes: frozenset[str]) -> Callable[[str], Markup]:
    """``mark`` with ``lexemes`` bound, for the lines of one search: the query's pattern is looked
    up once, not once a line."""
    pattern, one = _marker(lexemes)
    if pattern is None:
        return escape
    sub = pattern.sub

    def marked(text: str) -> Markup:
        return trusted(sub(one, escape(text)))

    return marked


MAX_MARKERS = 4096  # distinct queries' lexeme sets, per process (~1 KB an entry)
_markers: Memo[frozenset[str], tuple[re.Pattern[str] | None, Callable[[re.Match[str]], str]]] = Memo(MAX_MARKERS)


def _marker(lexemes: frozenset[str]) -> tuple[re.Pattern[str] | None, Callable[[re.Match[str]], str]]:
    """For one query's lexemes: the words of a plain line that may be marked (a run of ASCII
    letters, as ``_SPLIT`` finds them, beginning with a lexeme's first letter in either case;
    None when no lexeme begins with an ASCII letter) and what each becomes."""
    found = _markers.get(lexemes)
    if found is not None:
        return found
    firsts = "".join(c + c.upper() for c in sorted({lx[0] for lx in lexemes if lx and "a" <= lx[0] <= "z"}))
    # The first letter before the look-behind: a pattern that begins with a character set lets the
    # regular expression engine skip ahead to those letters in C (one that begins with a
    # look-behind tries every position; the scan was most of ``mark``'s time, issue 18).
    pattern = re.compile(f"[{firsts}](?<![A-Za-z][{firsts}])[A-Za-z]*") if firsts else None
    known = _lexemes.get

    def one(match: re.Match[str]) -> str:
        word = match.group()
        found = known(word, "")  # (lexeme()'s own first step, inline)
        if found == "":
            found = lexeme(word)
        return f"<mark>{word}</mark>" if found in lexemes else word  # letters only: nothing to escape

    return _markers.keep(lexemes, (pattern, one))


# The probe: stop words, words Snowball 2.2 and 3.x stem differently, apostrophes and capitals.
# (Snowball 3 stems each of the second sentence's words differently from PostgreSQL 15's 2.2.)
PROBE_TEXT = (
    "The dragon's evening Bells were ADDED at the international chapel's emergency; "
    "o'clock intervals, organic organizations (lateral biologists) and: running ran runs! "
    "Adding ebbed effed erring emergence emergent internal internally organize organizer orred "
    "paste pasting technologist universal universality university meteorologist interfering. "
    + " ".join(sorted(STOP_WORDS))
)
PROBE_QUERY = "evening | bell | added | international | emergency | interval | organization | run | dragon"
_agrees: bool | None = None


PROBE_SQL = (
    "SELECT to_tsvector(CAST(:c AS regconfig), CAST(:t AS text))::text AS vector, "
    "ts_headline(CAST(:c AS regconfig), CAST(:t AS text), to_tsquery(CAST(:c AS regconfig), CAST(:q AS text)), "
    "CAST(:opts AS text)) AS headline, to_tsquery(CAST(:c AS regconfig), CAST(:q AS text))::text AS tsq, "
    "CAST(:t AS text) ~ CAST(:plain AS text) AS not_plain"
)


def probe_params(config: str = CONFIG) -> dict[str, str]:
    return {"c": config, "t": PROBE_TEXT, "q": PROBE_QUERY, "opts": HEADLINE_OPTS, "plain": PLAIN_SQL}


def agrees(row: Any) -> bool:
    """Whether the database split, stemmed, stopped and marked the probe (``row``: PROBE_SQL's
    answer) as this module does."""
    words = [lexeme(w) for w in _SPLIT.split(PROBE_TEXT)[1::2]]
    ours = " ".join(sorted({f"'{w}'" for w in words if w is not None}))
    theirs = " ".join(sorted(part.split(":")[0] for part in row.vector.split(" ") if part))
    marked = from_headline(row.headline)
    return (
        not row.not_plain
        and ours == theirs
        and "<mark>" in marked
        and mark(PROBE_TEXT, query_lexemes(row.tsq)) == marked
    )


def enabled(fetch: Callable[[str, dict[str, str]], Any]) -> bool:
    """``agrees`` for ``english``, asked on the first search of the process (``fetch(sql, params)``
    runs the probe and answers its row). Fail closed: a probe that fails is a no."""
    global _agrees
    if _agrees is None:
        try:
            _agrees = agrees(fetch(PROBE_SQL, probe_params()))
        except Exception:  # noqa: BLE001 - any failure: PostgreSQL keeps highlighting
            log.warning("full-text probe failed; search hits keep PostgreSQL's headlines", exc_info=True)
            _agrees = False
        else:
            if not _agrees:
                log.warning("the database's %r text search differs from ours; hits keep ts_headline", CONFIG)
    return _agrees

"""Search hits marked in Python (core/fulltext.py) against PostgreSQL's own ts_headline."""

from __future__ import annotations

import random
import re

import psycopg
import pytest

from glyphoxa_htmx.core import fulltext
from tests.support.ws_server import sql
from tests.test_transcripts import add_line, seeded  # noqa: F401 - the fixture

# Words whose stems differ between Snowball 2.2 (PostgreSQL 15) and later Snowball, stop words,
# capitals, apostrophes, and lines PostgreSQL's parser reads as more than words and blanks.
PLAIN_WORDS = (
    "chapel chapels Chapel CHAPEL bell Bells belling dragon dragon's o'clock can't evening added adding "
    "international organization organizations emergency emergencies interval lateral organic running ran "
    "runs the and of The Whom ours yourselves s t don will Will lantern salt road strahd quokka"
).split()
PUNCTUATION = [" ", " ", " ", ", ", ". ", "! ", "? ", "; ", ": ", ' "', '" ', " (", ") ", "\n", "\t"]
NOT_PLAIN = [
    "half-elf",
    "e.g.",
    "foo.bar",
    "3",
    "2.5",
    "v1.2.3",
    "Ölweg",
    "über",
    "café",
    "http://chapel.example/bell",
    "bell@chapel.example",
    "<b>chapel</b>",
    "&amp;",
    "snake_case",
    "/chapel/bell",
    "chapel..bell",
    "c" * 250,
    "naïve",
    "#chapel",
    "chapel\u00a0bell",  # a no-break space: the database's locale may call it a space, we don't
]
QUERIES = [
    "chapel",
    "Bells",
    "dragon",
    "evening",
    "added",
    "international organization",
    "chapel or bell",
    "chapel -bell",
    "chapel or -bell",
    '"dark chapel"',
    '"chapel bell"',
    "the chapel",
    "running",
    "emergency interval",
    "half-elf",
    "dragon's",
    "über",
    "café chapel",
    "o'clock",
    "will",
    "strahd or quokka or lantern",
]


def _lines(rng: random.Random, n: int) -> list[str]:
    out = []
    for i in range(n):
        words = [rng.choice(PLAIN_WORDS) for _ in range(rng.randint(3, 14))]
        if i % 4 == 0:  # a quarter of the lines: something the parser reads as more than words
            words.insert(rng.randrange(len(words)), rng.choice(NOT_PLAIN))
        text = "".join(w + rng.choice(PUNCTUATION) for w in words).strip()
        out.append(text[0].upper() + text[1:] + rng.choice(["", ".", "!", "..."]))
    return out


def test_python_marks_are_postgresql_headlines_on_every_plain_line(database_url):
    """Every line the search leaves to Python (``plain``: not matching PLAIN_SQL) gets exactly the marks
    ts_headline gives it, for 900 lines × 21 queries (phrases, OR, negation, stop words, stems
    that changed in later Snowball, capitals, apostrophes, punctuation); and the lines that aren't
    plain (hyphens, numbers, dots inside words, non-ASCII, URLs, tags, a 250-letter word) are the
    ones PLAIN_SQL sends to PostgreSQL."""
    lines = _lines(random.Random(18), 900)
    rows = sql(
        database_url,
        "SELECT t, q, to_tsvector('english', t) @@ websearch_to_tsquery('english', q), t ~ %s, "
        "ts_headline('english', t, websearch_to_tsquery('english', q), %s), websearch_to_tsquery('english', q)::text "
        "FROM unnest(%s::text[]) t, unnest(%s::text[]) q",
        (fulltext.PLAIN_SQL, fulltext.HEADLINE_OPTS, lines, QUERIES),
    )
    compared = set()
    unplain = set()
    for text, q, matched, not_plain, headline, tsq in rows:
        assert fulltext.plain(text) is not not_plain, text  # what the search asks, in Python
        if not_plain:
            unplain.add(text)
            continue
        # Lines without a match too: HighlightAll marks the same words whether or not it matched.
        assert fulltext.mark(text, fulltext.query_lexemes(tsq)) == fulltext.from_headline(headline), (text, q)
        if matched:
            compared.add((text, q))
    # (all but half-elf, über, café chapel, "dark chapel" and the stop word alone match plain lines)
    assert len(compared) > 2000 and len({q for _t, q in compared}) == 16
    # Exactly the lines holding something from NOT_PLAIN, or a dot before anything but a space
    # ("..." and ".!" too: more than the parser needs, never less), were left to PostgreSQL.
    assert unplain == {t for t in lines if any(bad.lower() in t.lower() for bad in NOT_PLAIN) or re.search(r"\.\S", t)}
    assert 150 < len(unplain) < 500


def test_the_stemmer_never_changes_a_words_first_letter():
    """What ``mark`` relies on to look up only the words that begin with a lexeme's first letter:
    every word of 1-4 letters, and every stem of 1-3 letters with each suffix and replacement of
    Snowball's English steps (and its exceptions: dying, skies, idly...), keeps its first letter."""
    import itertools
    import string

    suffixes = (
        "s es ies ied ed ing ingly edly ly y ness ational tional ization ation ator alism aliti iviti "
        "biliti fulness ousness iveness ogi li al ance ence er ic able ible ant ement ment ent ism ate "
        "iti ous ive ize e l eed eedly sses us ss ying ie"
    ).split()
    letters = string.ascii_lowercase
    words = ["".join(t) for n in range(1, 5) for t in itertools.product(letters, repeat=n)]
    stems = ["".join(t) for n in range(1, 4) for t in itertools.product(letters, repeat=n)]
    words += [stem + suffix for stem in stems for suffix in suffixes]
    words += "dying lying tying skies skis idly gently ugly early only singly news howe".split()
    stemmer = fulltext._stemmer
    changed = [w for w in words if not stemmer.stemWord(w).startswith(w[0])]
    assert len(words) > 1_400_000 and changed == []


def test_marks_look_up_only_the_words_a_lexeme_could_be(monkeypatch):
    """The words ``mark`` stems are the ones that begin with a lexeme's first letter (either case);
    a query whose lexemes begin with no ASCII letter marks nothing and looks nothing up."""
    looked: list[str] = []
    real = fulltext.lexeme
    monkeypatch.setattr(fulltext, "lexeme", lambda w: looked.append(w) or real(w))
    fulltext._lexemes.clear()
    line = 'Chapels, bells and the chapel\'s Candles: COLD charity, "Cheers" (chaplain)'
    marked = fulltext.mark(line, frozenset({"chapel", "bell"}))
    assert marked == (
        "<mark>Chapels</mark>, <mark>bells</mark> and the <mark>chapel</mark>&#39;s Candles: COLD charity, "
        "&#34;Cheers&#34; (chaplain)"
    )
    assert sorted(looked) == sorted(["Chapels", "bells", "chapel", "Candles", "COLD", "charity", "Cheers", "chaplain"])
    looked.clear()
    assert fulltext.mark("Über 42 cafés", frozenset({"42", "über"})) == "Über 42 cafés"
    assert fulltext.mark("Plain words only", frozenset({"42"})) == "Plain words only" and looked == []


def test_plain_answers_as_postgresql_reads_plain_sql(database_url):
    """``plain`` (Python, what the search asks of each hit) answers as PostgreSQL's ``t ~ PLAIN_SQL``
    does: words of 199, 200 and 250 letters alone, inside prose, after something not plain, long
    plain prose of short words, each of NOT_PLAIN alone and inside prose, ASCII controls and
    whitespace, and the random lines."""
    edge = [
        "a" * 199,
        "b" * 200,
        "C" * 250,
        "Chapel " + "x" * 199 + " bells.",
        "Chapel " + "x" * 200 + " bells.",
        "half-elf " + "y" * 150,
        "The chapel bells rang, and rang again. " * 8,  # 312 characters of plain prose
        "z" * 100 + " " + "z" * 100,
        "",
        "tab\tand\nnew\rline\fform\vvertical",
        "bell\x01chapel",
        "the end.",
        "the end. Next",
        "the end.Next",
        "...",
        'He said "chapel" (twice); then: bells!',
    ]
    edge += NOT_PLAIN + [f"The {bad} chapel." for bad in NOT_PLAIN]
    lines = edge + _lines(random.Random(7), 300)
    assert [not not_plain for not_plain in _not_plain(database_url, lines)] == [fulltext.plain(t) for t in lines]
    assert [fulltext.plain(t) for t in edge[:9]] == [True, False, False, True, False, False, True, True, True]
    assert not any(fulltext.plain(t) for t in NOT_PLAIN)


def test_the_probe_agrees_with_english_and_refuses_any_other_text_search(database_url, monkeypatch):
    """``agrees`` holds for the database's ``english`` configuration and fails for another
    parser's dictionaries (``simple``), a copy of ``english`` whose words go to another dictionary,
    and a stop list that differs from ours; ``enabled`` fails closed when the probe can't run."""
    from types import SimpleNamespace

    def probe(config: str) -> SimpleNamespace:
        with psycopg.connect(database_url, autocommit=True) as conn:
            statement = re.sub(r"(?<!:):(\w+)", r"%(\1)s", fulltext.PROBE_SQL)  # psycopg's placeholders
            cur = conn.execute(statement, fulltext.probe_params(config))
            return SimpleNamespace(**dict(zip([d.name for d in cur.description], cur.fetchone(), strict=True)))

    assert fulltext.agrees(probe("english"))
    assert not fulltext.agrees(probe("simple"))
    sql(database_url, "DROP TEXT SEARCH CONFIGURATION IF EXISTS public.gx_probe_test")
    sql(database_url, "CREATE TEXT SEARCH CONFIGURATION public.gx_probe_test (COPY = english)")
    try:
        assert fulltext.agrees(probe("public.gx_probe_test"))  # the same as english
        sql(
            database_url, "ALTER TEXT SEARCH CONFIGURATION public.gx_probe_test ALTER MAPPING FOR asciiword WITH simple"
        )
        assert not fulltext.agrees(probe("public.gx_probe_test"))
    finally:
        sql(database_url, "DROP TEXT SEARCH CONFIGURATION IF EXISTS public.gx_probe_test")
    monkeypatch.setattr(fulltext, "STOP_WORDS", fulltext.STOP_WORDS - {"will"})
    monkeypatch.setattr(fulltext, "_lexemes", type(fulltext._lexemes)(fulltext.MAX_LEXEMES))
    assert not fulltext.agrees(probe("english"))

    monkeypatch.setattr(fulltext, "_agrees", None)

    def broken(_sql, _params):
        raise RuntimeError("no database")

    assert fulltext.enabled(broken) is False
    assert fulltext.enabled(lambda *_a: pytest.fail("asked again")) is False  # once per process


@pytest.mark.parametrize("agreeing", [True, False])
def test_search_hits_read_the_same_whoever_marks_them(app, seeded, database_url, monkeypatch, agreeing):  # noqa: F811
    """The search results are the same with marks made in Python (plain lines) and with every
    headline from PostgreSQL (a database whose text search isn't ours): lines of the gateway's with
    numbers, hyphens, accents and markup next to plain ones, phrases and negations. With the probe
    agreeing, the plain lines were marked in Python; without, none was."""
    from glyphoxa_htmx.services import transcripts

    texts = [
        "The Chapel bells rang at evening, the dragon's chapel.",
        "Half-elf priests in the chapel at 3 o'clock (v1.2) <b>chapel</b> & more",
        "Über die Kapelle: chapel café, e.g. the chapel.bell",
        "They added a chapel; organizations added bells!",
        'A "chapel" (old) and the lantern',
        "chapel " + "x" * 250,
    ]
    for text in texts:
        add_line(database_url, seeded.tenant, seeded.sid, text, seeded.campaign)
    queries = ["chapel", "chapel or bell", "chapel -lantern", '"chapel bells"', "add", "the chapel", "half-elf"]

    def results() -> list[list[tuple[str, str]]]:
        with app.test_request_context():
            return [
                [(h.line.text, str(h.highlight)) for g in transcripts.search(seeded.actor, q).groups for h in g.hits]
                for q in queries
            ]

    monkeypatch.setattr(fulltext, "_agrees", False)
    from_postgresql = results()
    calls = []
    real_marker = fulltext.marker  # (what the search and ``mark`` mark lines with)

    def recording(lexemes):
        mark = real_marker(lexemes)
        return lambda text: calls.append(text) or mark(text)

    monkeypatch.setattr(fulltext, "marker", recording)
    monkeypatch.setattr(fulltext, "_agrees", None if agreeing else False)
    assert results() == from_postgresql
    assert sum(len(r) for r in from_postgresql) > 12 and "<mark>" in str(from_postgresql)
    shown = sorted({t for r in from_postgresql for t, _h in r})
    plain = {t for t, not_plain in zip(shown, _not_plain(database_url, shown), strict=True) if not not_plain}
    assert texts[0] in plain and texts[1] not in plain and texts[2] not in plain and texts[5] not in plain
    # (the probe marks its own text once, on the first search after _agrees was reset)
    assert (fulltext.PROBE_TEXT in calls) is agreeing
    assert set(calls) - {fulltext.PROBE_TEXT} == (plain if agreeing else set())


def _not_plain(database_url, texts):
    return [r[0] for r in sql(database_url, "SELECT t ~ %s FROM unnest(%s::text[]) t", (fulltext.PLAIN_SQL, texts))]


def test_a_block_of_hits_none_plain_from_a_session_nobody_registered_gets_postgresqls_marks(
    app,
    seeded,  # noqa: F811
    database_url,
):
    """The search results block (no campaign filter asked) whose hits are all not plain (hyphens,
    digits, accents, a dot inside a word) and whose session id the gateway wrote without a
    ``public.sessions`` row: each hit reads as ts_headline marks it, in the order found (newest
    first: each headline goes back to its own hit), with the query parsed by PostgreSQL (a phrase,
    a hyphenated word, OR)."""
    import uuid

    from glyphoxa_htmx.services import transcripts

    stray = str(uuid.uuid4())
    texts = ["Half-elf at 3 o'clock: the chapel-bell rang", "Über die Kapelle, 2 chapels", "chapel 1.5 bells, e.g."]
    for text in texts:
        add_line(database_url, seeded.tenant, stray, text, seeded.campaign)
    for q in ("chapel", '"chapel bell"', "half-elf or kapelle"):
        expected = sql(
            database_url,
            "SELECT ts_headline('english', t, websearch_to_tsquery('english', %s), %s) FROM unnest(%s::text[]) "
            "WITH ORDINALITY u(t, i) WHERE to_tsvector('english', t) @@ websearch_to_tsquery('english', %s) "
            "ORDER BY i DESC",
            (q, fulltext.HEADLINE_OPTS, texts, q),
        )
        with app.test_request_context():
            result = transcripts.search(seeded.actor, q)
        stray_hits = [h for g in result.groups if g.session_id == stray for h in g.hits]
        assert [g.session for g in result.groups if g.session_id == stray] == [None]
        assert [str(h.highlight) for h in stray_hits] == [str(fulltext.from_headline(e)) for (e,) in expected], q
        assert expected and all("<mark>" in str(h.highlight) for h in stray_hits)

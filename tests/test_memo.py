"""core/memo.py: the one bounded per-process memo every cache of issue 18 uses."""

import threading

import pytest

from glyphoxa_htmx.core.memo import Memo


def test_a_memo_is_emptied_when_full_then_keeps_the_new_entry():
    m: Memo[str, int] = Memo(3)
    for i, k in enumerate("abc"):
        assert m.keep(k, i) == i
    assert dict(m) == {"a": 0, "b": 1, "c": 2} and m.used == 3
    assert m.keep("d", 3) == 3
    assert dict(m) == {"d": 3} and m.used == 1  # emptied, then kept: never past the limit


def test_a_key_kept_again_replaces_its_value_and_counts_once():
    m: Memo[str, float] = Memo(2)
    m.keep("a", 1.0)
    for t in range(10):  # an entry renewed (a sign-in resolved again, a table seen again)
        m.keep("a", float(t))
    m.keep("b", 0.5)
    assert dict(m) == {"a": 9.0, "b": 0.5} and m.used == 2


def test_weighted_entries_count_their_size_and_one_larger_than_the_limit_is_not_kept():
    m: Memo[str, str] = Memo(10)
    m.keep("x", "four", size=4)
    m.keep("y", "five!", size=5)
    assert set(m) == {"x", "y"} and m.used == 9
    m.keep("z", "two", size=2)  # 9 + 2 > 10: emptied first
    assert dict(m) == {"z": "two"} and m.used == 2
    assert m.keep("big", "b" * 11, size=11) == "b" * 11
    assert "big" not in m and dict(m) == {"z": "two"}


def test_clear_and_removal_keep_the_count_safe():
    m: Memo[int, int] = Memo(4)
    for i in range(3):
        m.keep(i, i)
    m.pop(0)  # removing one doesn't lower the count: emptied early, never late
    m.keep(3, 3)
    m.keep(4, 4)
    assert len(m) <= 4 and m.used <= 4
    m.clear()
    assert not m and m.used == 0
    with pytest.raises(ValueError):
        Memo(0)


def test_hits_are_plain_dict_lookups():
    """A hit is what a memo is for: no Python-level method between the caller and the dict."""
    for name in ("get", "__getitem__", "__contains__", "pop"):
        assert getattr(Memo, name) is getattr(dict, name)


def test_threads_keeping_at_once_never_pass_the_limit():
    m: Memo[tuple[int, int], int] = Memo(500)
    seen_over: list[int] = []

    def work(t: int) -> None:
        for i in range(2000):
            m.keep((t, i), i)
            if len(m) > m.limit:
                seen_over.append(len(m))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not seen_over and len(m) == m.used <= 500


def test_the_process_caches_use_it():
    """One policy: the memos of issue 18 are Memos (a plain dict that someone forgot to bound
    grows with every tenant)."""
    from glyphoxa_htmx.core import cookies, dbconn, fulltext, i18n
    from glyphoxa_htmx.services import campaigns, signin_cache, transcripts, voice
    from glyphoxa_htmx.web import campaigns as web_campaigns
    from glyphoxa_htmx.web import sessions as web_sessions

    for memo in (
        i18n._formatted,
        i18n._browser_choices,
        i18n._zone_names,
        dbconn._plans,
        cookies._signed_tokens,
        campaigns._last_sync,
        signin_cache._entries,
        transcripts._present,
        transcripts._absent,
        transcripts._settled,
        voice._voice_lists,
        fulltext._lexemes,
        fulltext._markers,
        web_campaigns._rendered,
        web_sessions._ended_rows,
        web_sessions._rendered_deliveries,
    ):
        assert isinstance(memo, Memo) and memo.limit > 0

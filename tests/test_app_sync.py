"""app.App.ensure_sync answers once per plain function (issue 18) and otherwise as Flask does."""

from __future__ import annotations

import functools

import pytest
from flask import Flask


def test_ensure_sync_is_flasks_answer_kept_only_for_plain_functions(app):
    def view():
        return "ok"

    async def coroutine_view():
        return "ok"

    assert app.ensure_sync(view) is view
    assert app._sync[view] is view  # kept: a def stays a def
    bound = app.make_response  # a bound method: made anew on each access, so never kept
    assert app.ensure_sync(bound) == bound and bound not in app._sync
    partial = functools.partial(view)
    assert app.ensure_sync(partial) is partial and partial not in app._sync
    try:  # whatever Flask itself does with a coroutine (wrap it, or refuse without asgiref)
        flasks = Flask.ensure_sync(app, coroutine_view)
    except RuntimeError:
        with pytest.raises(RuntimeError):
            app.ensure_sync(coroutine_view)
    else:
        ours = app.ensure_sync(coroutine_view)
        assert ours is not coroutine_view and type(ours) is type(flasks)
        assert app.ensure_sync(coroutine_view) is ours

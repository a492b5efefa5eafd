"""NPC rows written by other tooling survive the editor: a save writes only the columns and JSON
keys the form changed, keys the form doesn't know and every JSON value's type stay exactly as
they were, and an unchanged form writes nothing at all.

Property-style: a seeded generator builds many row shapes (unknown voice keys, attribute values
of every JSON type, exact decimals, non-string list items, values our own rules would refuse),
writes them with plain SQL as other tooling would, loads the edit form like a browser, submits
it unchanged and with one field changed, and compares the row key by key and type by type."""

from __future__ import annotations

import json
import random
import uuid

import psycopg
import pytest

from tests.conftest import soup
from tests.test_campaigns import audit_rows, new_campaign
from tests.test_npcs import editor_form

SEED = 20261202
ROWS = 30

WORDS = ["Greta", "salt", "Mere", "dock", "ember", "ωmega", "naïve", "x", "smuggler", "dwarf", "🐉", "rope"]
# Exact JSON number texts: PostgreSQL keeps their digits; a round trip through a Python float would not.
NUMBERS = ["52", "0", "-3", "1.10", "2.50", "12345678901234567890", "3.141592653589793238462643", "1e3", "-0.5", "7"]


def _text(rng: random.Random, spaces: bool = True) -> str:
    out = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 4)))
    if spaces and rng.random() < 0.2:
        out = " " + out + "  "
    return out


def _value(rng: random.Random, depth: int = 0) -> str:
    """A JSON value as text, of a random type."""
    kind = rng.choice(["str", "str", "num", "bool", "null", "array", "object"] if depth < 2 else ["str", "num"])
    if kind == "str":
        return json.dumps(rng.choice(["", _text(rng), "42", "true", "null", '["not", "a list"]']), ensure_ascii=False)
    if kind == "num":
        return rng.choice(NUMBERS)
    if kind == "bool":
        return rng.choice(["true", "false"])
    if kind == "null":
        return "null"
    if kind == "array":
        return "[" + ", ".join(_value(rng, depth + 1) for _ in range(rng.randint(0, 3))) + "]"
    return (
        "{"
        + ", ".join(f'"{k}": {_value(rng, depth + 1)}' for k in rng.sample(["a", "b", "deep", "n"], rng.randint(0, 3)))
        + "}"
    )


def _object(pairs: list[tuple[str, str]]) -> str:
    return "{" + ", ".join(f"{json.dumps(k, ensure_ascii=False)}: {v}" for k, v in pairs) + "}"


def random_row(rng: random.Random, n: int) -> dict:
    """Column values as SQL text (JSON columns as JSON text) for one npc_definitions row."""
    voice = []
    for key, gen in (
        ("provider", lambda: json.dumps(rng.choice(["elevenlabs", "espeak", "ElevenLabs", "azure"]))),
        ("voice_id", lambda: json.dumps(rng.choice(["en-gb", "21m00Tcm4TlvDq8ikWAM", ""]))),
        ("pitch_shift", lambda: rng.choice(["0", "-2.5", "3", "1.10", "42", '"2"'])),
        ("speed_factor", lambda: rng.choice(["0", "1", "1.25", "0.50", "9"])),
    ):
        if rng.random() < 0.6:
            voice.append((key, gen()))
    for key in rng.sample(
        ["model", "stability", "similarity_boost", "style", "use_speaker_boost", "extra"], rng.randint(0, 4)
    ):
        voice.append((key, _value(rng)))
    attributes = [
        (k, _value(rng))
        for k in rng.sample(
            ["race", "age", "alive", "hp", "tags", "stats", "notes", " spaced key", "ünïcode", "empty", "nothing"],
            rng.randint(0, 8),
        )
    ]
    lists = {}
    for col in ("knowledge_scope", "secret_knowledge", "behavior_rules", "tools"):
        items = [json.dumps(_text(rng, spaces=False), ensure_ascii=False) for _ in range(rng.randint(0, 3))]
        if col != "tools" and rng.random() < 0.15:
            items.append(rng.choice(NUMBERS))  # other tooling stored a number in a string list
        lists[col] = "[" + ", ".join(items) + "]"
    return {
        "name": f"{_text(rng, spaces=False)} {n}",
        "personality": rng.choice(["", "Gruff.", "Line one.\nLine two.", "  Spaced  ", "Kind.\r\nOld line ending."]),
        "engine": rng.choice(["cascaded", "s2s", "sentence_cascade", "legacy_engine"]),
        "budget_tier": rng.choice(["fast", "standard", "deep", "premium"]),
        "voice": _object(voice),
        **lists,
        "gm_helper": n == 0 and rng.random() < 0.5,
        "address_only": rng.random() < 0.5,
        "attributes": _object(attributes),
    }


JSON_COLS = ("voice", "knowledge_scope", "secret_knowledge", "behavior_rules", "tools", "attributes")
ALL_COLS = (
    "id",
    "tenant_id",
    "campaign_id",
    "name",
    "personality",
    "engine",
    "budget_tier",
    "gm_helper",
    "address_only",
    "created_at",
    "updated_at",
    *JSON_COLS,
)


def insert_row(database_url, tenant_id, campaign_id, values: dict) -> str:
    """INSERT as the gateway's tooling would: plain SQL, its own id, JSON given as text."""
    npc_id = "npc-" + uuid.uuid4().hex[:12]  # not a UUID: an id we didn't mint
    cols = ["id", "tenant_id", "campaign_id", *values]
    casts = ["%s", "%s", "%s"] + [("%s::jsonb" if c in JSON_COLS else "%s") for c in values]
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            f"INSERT INTO public.npc_definitions ({', '.join(cols)}) VALUES ({', '.join(casts)})",
            [npc_id, tenant_id, campaign_id, *values.values()],
        )
    return npc_id


def raw_row(database_url, npc_id) -> dict:
    """Every column as PostgreSQL prints it (JSON columns as jsonb text), so the comparison is exact."""
    cols = ", ".join(f"{c}::text" for c in ALL_COLS)
    with psycopg.connect(database_url) as conn:
        return dict(
            zip(
                ALL_COLS,
                conn.execute(f"SELECT {cols} FROM public.npc_definitions WHERE id = %s", (npc_id,)).fetchone(),
                strict=True,
            )
        )


def json_keys(database_url, npc_id, col) -> dict:
    """{key: (json type, exact value text)} of an object column."""
    with psycopg.connect(database_url) as conn:
        return {
            k: (t, v)
            for k, t, v in conn.execute(
                f"SELECT key, jsonb_typeof(value), value::text FROM public.npc_definitions, jsonb_each({col}) "
                "WHERE id = %s",
                (npc_id,),
            )
        }


def _npcs(app, as_role, database_url, count=ROWS, seed=SEED):
    b = as_role("dm")
    cid = new_campaign(app, b.user)
    rng = random.Random(seed)
    ids = [insert_row(database_url, b.user.tenant_id, cid, random_row(rng, n)) for n in range(count)]
    return b, cid, rng, ids


# ---- unchanged form: nothing written -----------------------------------------------------------------


def test_unchanged_form_writes_nothing_for_any_row_shape(app, as_role, database_url):
    b, _, _, ids = _npcs(app, as_role, database_url)
    for i, npc_id in enumerate(ids):
        before = raw_row(database_url, npc_id)
        form = editor_form(b, npc_id)
        htmx = i % 2 == 1
        resp = b.post(f"/npcs/{npc_id}", form, htmx=htmx)
        assert resp.status_code == (200 if htmx else 303), (before, resp.get_data(as_text=True)[:2000])
        if htmx:
            assert "Nothing changed" in resp.headers["HX-Trigger"]
        else:
            assert "Nothing changed" in b.get(resp.headers["Location"]).get_data(as_text=True)
        assert raw_row(database_url, npc_id) == before, before  # updated_at included
    assert audit_rows(app, "npc.update") == []


def test_empty_voice_stays_empty_and_types_show_in_the_editor(app, as_role, database_url):
    b = as_role("dm")
    cid = new_campaign(app, b.user)
    npc_id = insert_row(
        database_url,
        b.user.tenant_id,
        cid,
        {
            "name": "Greta",
            "voice": "{}",
            "attributes": '{"age": 52, "alive": true, "tags": ["a", "b"], "race": "dwarf", "gone": null}',
        },
    )
    page = soup(b.get(f"/npcs/{npc_id}"))
    rows = {r.select_one("input[name=attr_key]")["value"]: r for r in page.select(".kv-row")}
    assert rows["age"].select_one("input[name=attr_value]")["value"] == "52"
    assert rows["age"].select_one(".kv-type").text == "number"
    assert rows["alive"].select_one(".kv-type").text == "true or false"
    assert rows["tags"].select_one("input[name=attr_value]")["value"] == '["a", "b"]'
    assert rows["tags"].select_one(".kv-type").text == "JSON list"
    assert rows["race"].select_one(".kv-type") is None  # text needs no hint
    assert (
        rows["age"].select_one("input[name=attr_value]")["aria-describedby"]
        == "attr-type-" + rows["age"].select_one(".kv-type")["id"].rsplit("-", 1)[1]
    )
    before = raw_row(database_url, npc_id)
    resp = b.post(f"/npcs/{npc_id}", {**editor_form(b, npc_id), "personality": "Gruff."})
    assert resp.status_code == 303
    after = raw_row(database_url, npc_id)
    assert after["voice"] == "{}"  # not four default keys
    assert after["attributes"] == before["attributes"]
    assert after["personality"] == "Gruff." and after["updated_at"] != before["updated_at"]


# ---- one field changed: only that column / key written ---------------------------------------------------


def _change(rng: random.Random, form: dict, stored_attrs: dict) -> tuple[str, str | None, object]:
    """Change one field of the form; returns (column, json key or None, expectation)."""
    choice = rng.choice(
        [
            "personality",
            "name",
            "voice_id",
            "pitch_shift",
            "provider",
            "attr_text",
            "attr_typed",
            "attr_remove",
            "attr_add",
            "list",
            "address_only",
        ]
    )
    if choice == "personality":
        form["personality"] = "Changed personality."
        return "personality", None, "Changed personality."
    if choice == "name":
        form["name"] = form["name"].strip() + " the Second"
        return "name", None, form["name"]
    if choice == "voice_id":
        form["voice_id"] = "changed-voice"
        return "voice", "voice_id", ("string", '"changed-voice"')
    if choice == "pitch_shift":
        form["pitch_shift"] = "-7.5"
        return "voice", "pitch_shift", ("number", "-7.5")
    if choice == "provider":
        form["voice_provider"] = "espeak" if form["voice_provider"].lower() != "espeak" else "elevenlabs"
        return "voice", "provider", ("string", json.dumps(form["voice_provider"]))
    if choice == "list":
        form["behavior_rules"] = "never lies"
        return "behavior_rules", None, '["never lies"]'
    if choice == "address_only":
        if form.get("address_only"):
            del form["address_only"]
            return "address_only", None, "false"
        form["address_only"] = "on"
        return "address_only", None, "true"
    keys = [k for k in form["attr_key"] if k]
    typed = [i for i, t in enumerate(form["attr_type"]) if t == "number"]
    if choice == "attr_typed" and typed:
        i = rng.choice(typed)
        form["attr_value"][i] = "99"
        return "attributes", form["attr_key"][i], ("number", "99")
    if choice == "attr_text" and "" in form["attr_type"][: len(keys)]:
        i = form["attr_type"].index("")
        form["attr_value"][i] = "changed text"
        return "attributes", form["attr_key"][i], ("string", '"changed text"')
    if choice == "attr_remove" and keys:
        i = rng.randrange(len(keys))
        key = form["attr_key"][i]
        form["attr_key"][i] = form["attr_value"][i] = ""
        return "attributes", key, None
    # add a new attribute in the first blank row
    i = form["attr_key"].index("")
    form["attr_key"][i], form["attr_value"][i] = "added", "new value"
    return "attributes", "added", ("string", '"new value"')


def test_one_changed_field_writes_only_that_field(app, as_role, database_url):
    b, _, rng, ids = _npcs(app, as_role, database_url)
    for npc_id in ids:
        before = raw_row(database_url, npc_id)
        keys_before = {c: json_keys(database_url, npc_id, c) for c in ("voice", "attributes")}
        form = editor_form(b, npc_id)
        column, key, expected = _change(rng, form, keys_before["attributes"])
        resp = b.post(f"/npcs/{npc_id}", form)
        assert resp.status_code == 303, (column, key, before, resp.get_data(as_text=True)[:3000])
        after = raw_row(database_url, npc_id)
        context = (column, key, before)
        for col in ALL_COLS:
            if col in (column, "updated_at"):
                continue
            assert after[col] == before[col], (col, context)
        assert after["updated_at"] > before["updated_at"], context
        if key is None:
            assert after[column] == expected, context
            continue
        keys_after = json_keys(database_url, npc_id, column)
        for k, typed_value in keys_before[column].items():
            if k != key:
                assert keys_after[k] == typed_value, (k, context)  # same JSON type, same exact text
        if expected is None:
            assert key not in keys_after, context
            assert set(keys_after) == set(keys_before[column]) - {key}, context
        else:
            assert keys_after[key] == expected, context
            assert set(keys_after) == set(keys_before[column]) | {key}, context
    changes = [details["changes"] for _, details, _ in audit_rows(app, "npc.update")]
    assert len(changes) == len(ids) and all(len(c) == 1 for c in changes)  # one column each


def test_typed_attribute_needs_a_value_of_its_type(app, as_role, database_url):
    b = as_role("dm")
    cid = new_campaign(app, b.user)
    npc_id = insert_row(
        database_url,
        b.user.tenant_id,
        cid,
        {"name": "Greta", "attributes": '{"age": 52, "alive": true, "tags": ["a"], "stats": {"str": 18}}'},
    )
    before = raw_row(database_url, npc_id)
    form = editor_form(b, npc_id)
    i = form["attr_key"].index("age")
    form["attr_value"][i] = "fifty-two"
    resp = b.post(f"/npcs/{npc_id}", form, htmx=True)
    assert resp.status_code == 422
    assert "“age” holds a number" in soup(resp).text
    # The re-rendered form keeps what was typed and the type hint.
    row = [r for r in soup(resp).select(".kv-row") if r.select_one("input[name=attr_key]")["value"] == "age"][0]
    assert row.select_one("input[name=attr_value]")["value"] == "fifty-two" and row.select_one(".kv-type")
    assert raw_row(database_url, npc_id) == before
    # Each type takes a value of its own kind, and keeps that kind.
    form = editor_form(b, npc_id)
    for key, text in (("age", "53"), ("alive", "false"), ("tags", '["a", 2]'), ("stats", '{"str": 19.5}')):
        form["attr_value"][form["attr_key"].index(key)] = text
    assert b.post(f"/npcs/{npc_id}", form).status_code == 303
    assert json_keys(database_url, npc_id, "attributes") == {
        "age": ("number", "53"),
        "alive": ("boolean", "false"),
        "tags": ("array", '["a", 2]'),
        "stats": ("object", '{"str": 19.5}'),
    }
    # A list can't become an object by accident.
    form = editor_form(b, npc_id)
    form["attr_value"][form["attr_key"].index("tags")] = '{"a": 1}'
    assert b.post(f"/npcs/{npc_id}", form).status_code == 422


def test_renamed_key_keeps_its_type_and_values_we_would_refuse_survive(app, as_role, database_url):
    b = as_role("dm")
    cid = new_campaign(app, b.user)
    npc_id = insert_row(
        database_url,
        b.user.tenant_id,
        cid,
        {
            "name": "Greta",
            "engine": "legacy_engine",
            "budget_tier": "premium",
            "voice": '{"provider": "ElevenLabs", "pitch_shift": 42, "model": "eleven_v2", "stability": 0.50}',
            "attributes": '{"age": 52}',
        },
    )
    page = soup(b.get(f"/npcs/{npc_id}"))
    assert page.select_one("#engine option[selected]")["value"] == "legacy_engine"
    assert page.select_one("#budget_tier option[selected]")["value"] == "premium"
    form = editor_form(b, npc_id)
    form["attr_key"][form["attr_key"].index("age")] = "years"
    form["personality"] = "Edited."
    assert b.post(f"/npcs/{npc_id}", form).status_code == 303  # pitch 42 and the engine are not re-validated
    row = raw_row(database_url, npc_id)
    assert row["engine"] == "legacy_engine" and row["budget_tier"] == "premium"
    assert json_keys(database_url, npc_id, "attributes") == {"years": ("number", "52")}
    assert json_keys(database_url, npc_id, "voice") == {
        "provider": ("string", '"ElevenLabs"'),
        "pitch_shift": ("number", "42"),
        "model": ("string", '"eleven_v2"'),
        "stability": ("number", "0.50"),
    }
    # Changing the refused value itself is validated.
    form = editor_form(b, npc_id)
    form["pitch_shift"] = "43"
    resp = b.post(f"/npcs/{npc_id}", form, htmx=True)
    assert resp.status_code == 422 and "Pitch shift must be" in soup(resp).select_one("#pitch_shift-error").text


# ---- stale saves -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tooling_sql",
    [
        # the gateway's tooling bumps updated_at ...
        'UPDATE public.npc_definitions SET voice = voice || \'{"model": "v3"}\', updated_at = now() WHERE id = %s',
        # ... or doesn't: the token's content digest still notices
        "UPDATE public.npc_definitions SET attributes = attributes || '{\"hp\": 7}' WHERE id = %s",
    ],
)
def test_change_by_other_tooling_makes_an_open_form_stale(app, as_role, database_url, tooling_sql):
    b = as_role("dm")
    cid = new_campaign(app, b.user)
    npc_id = insert_row(
        database_url,
        b.user.tenant_id,
        cid,
        {"name": "Greta", "voice": '{"voice_id": "en"}', "attributes": '{"age": 52}'},
    )
    form = editor_form(b, npc_id)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(tooling_sql, (npc_id,))
    theirs = raw_row(database_url, npc_id)
    for sent in (form, {**form, "personality": "Mine."}):  # unchanged or not, a stale form writes nothing
        resp = b.post(f"/npcs/{npc_id}", sent, htmx=True)
        assert resp.status_code == 409 and "Someone else changed this NPC" in resp.get_data(as_text=True)
        assert raw_row(database_url, npc_id) == theirs
    fresh = editor_form(b, npc_id)
    assert b.post(f"/npcs/{npc_id}", {**fresh, "personality": "Mine."}).status_code == 303
    row = raw_row(database_url, npc_id)
    assert row["personality"] == "Mine."
    assert row["voice"] == theirs["voice"] and row["attributes"] == theirs["attributes"]

"""The NPC editor: every npc_definitions column written with the gateway's rules enforced at the
field, gm_helper and name uniqueness under concurrency, last-writer detection, ordering by drag and
by keyboard, duplicate/delete, isolation, and a simulated session that speaks with the cast."""

from __future__ import annotations

import threading
import time
import uuid

import psycopg
import pytest

from tests.conftest import make_settings, soup
from tests.test_campaigns import actor_for, audit_rows, count_queries, db_rows, new_campaign, new_npc

FULL_FORM = {
    "name": "Greta Ironbraid",
    "personality": "Gruff dwarven smith of Saltmere.\r\nFair prices, no patience for haggling.",
    "engine": "sentence_cascade",
    "budget_tier": "standard",
    "voice_provider": "elevenlabs",
    "voice_id": "21m00Tcm4TlvDq8ikWAM",
    "pitch_shift": "-2.5",
    "speed_factor": "1.1",
    "knowledge_scope": "smithing\n Saltmere gossip \n\n",
    "secret_knowledge": "the smuggler is her brother",
    "behavior_rules": "never haggles\nalways mentions the weather",
    "tools": "dice_roll\nlookup_price",
    "address_only": "on",
    "attr_key": ["race", "age", ""],
    "attr_value": ["dwarf", "142", ""],
}


def npc_row(database_url, npc_id):
    with psycopg.connect(database_url) as conn:
        conn.row_factory = psycopg.rows.dict_row
        return conn.execute("SELECT * FROM public.npc_definitions WHERE id = %s", (npc_id,)).fetchone()


def cast_names(resp):
    return [li.select_one("h3").text.strip() for li in soup(resp).select("ol.cast > li")]


def editor_form(b, npc_id):
    doc = soup(b.get(f"/npcs/{npc_id}"))
    form = doc.select_one("#npc-form form")
    data = {i["name"]: i.get("value", "") for i in form.select("input[name]") if i.get("type") != "checkbox"}
    data.update({t["name"]: t.text for t in form.select("textarea[name]")})
    data.update({s["name"]: s.select_one("option[selected]")["value"] for s in form.select("select[name]")})
    data.update({c["name"]: "on" for c in form.select("input[type=checkbox][checked]")})
    for name in ("attr_key", "attr_value", "attr_type", "attr_orig"):
        data[name] = [i.get("value", "") for i in form.select(f"input[name={name}]")]
    data.pop("csrf_token", None)
    return data


# ---- create: every column, always tenant_id ------------------------------------------------------------


def test_create_writes_every_contract_column(app, as_role, database_url):
    b = as_role("dm")
    cid = new_campaign(app, b.user)
    resp = b.post(f"/campaigns/{cid}/npcs", FULL_FORM)
    assert resp.status_code == 303, resp.get_data(as_text=True)
    (npc_id,) = [r[0] for r in db_rows(database_url, "SELECT id FROM public.npc_definitions")]
    assert resp.headers["Location"] == f"/campaigns/{cid}#npc-{npc_id}"
    row = npc_row(database_url, npc_id)
    assert uuid.UUID(row["id"])
    assert row["tenant_id"] == b.user.tenant_id and row["campaign_id"] == cid
    assert row["name"] == "Greta Ironbraid"
    assert row["personality"] == "Gruff dwarven smith of Saltmere.\nFair prices, no patience for haggling."
    assert row["engine"] == "sentence_cascade" and row["budget_tier"] == "standard"
    assert row["voice"] == {
        "provider": "elevenlabs",
        "voice_id": "21m00Tcm4TlvDq8ikWAM",
        "pitch_shift": -2.5,
        "speed_factor": 1.1,
    }
    assert row["knowledge_scope"] == ["smithing", "Saltmere gossip"]
    assert row["secret_knowledge"] == ["the smuggler is her brother"]
    assert row["behavior_rules"] == ["never haggles", "always mentions the weather"]
    assert row["tools"] == ["dice_roll", "lookup_price"]
    assert row["gm_helper"] is False and row["address_only"] is True
    assert row["attributes"] == {"race": "dwarf", "age": "142"}
    assert db_rows(database_url, "SELECT npc_id, tenant_id, campaign_id, position FROM web.npc_positions") == [
        (npc_id, b.user.tenant_id, cid, 0)
    ]
    ((rid, details, _),) = audit_rows(app, "npc.create")
    assert rid == npc_id and details["changes"]["voice"]["after"]["voice_id"] == "21m00Tcm4TlvDq8ikWAM"


def test_editor_round_trips_and_marks_what_reaches_the_npc(app, as_role, database_url):
    b = as_role("dm")
    cid = new_campaign(app, b.user)
    b.post(f"/campaigns/{cid}/npcs", FULL_FORM)
    (npc_id,) = [r[0] for r in db_rows(database_url, "SELECT id FROM public.npc_definitions")]
    page = soup(b.get(f"/npcs/{npc_id}"))
    assert page.select_one("#name")["value"] == "Greta Ironbraid"
    assert page.select_one("textarea#knowledge_scope").text == "smithing\nSaltmere gossip"
    assert page.select_one("#voice_provider option[selected]")["value"] == "elevenlabs"
    assert page.select_one("#pitch_shift")["value"] == "-2.5"
    reach = {lbl["for"]: lbl.select_one(".reach").text for lbl in page.select("label[for]") if lbl.select_one(".reach")}
    assert reach["name"] == reach["personality"] == reach["voice_id"] == reach["knowledge_scope"] == "Sent to the NPC"
    assert reach["engine"] == reach["budget_tier"] == "Sent to the NPC"
    assert reach["secret_knowledge"] == reach["behavior_rules"] == reach["tools"] == "Stored only"
    assert reach["voice_provider"] == reach["pitch_shift"] == reach["speed_factor"] == "Stored only"
    assert page.select_one("[data-voice-preview] [data-preview-play]")["formaction"] == f"/npcs/{npc_id}/voice-preview"
    assert page.select_one("textarea#personality")["maxlength"] == "8000"
    scripts = [s["src"].split("?")[0] for s in page.select("script[src]")]
    assert "/static/js/npc-editor.js" in scripts and "/static/js/voice-preview.js" in scripts
    assert not page.select("script:not([src])")
    # Saving the untouched form changes nothing and is not audited as a change.
    assert b.post(f"/npcs/{npc_id}", editor_form(b, npc_id)).status_code == 303
    assert audit_rows(app, "npc.update") == []


def test_new_npc_form_and_campaign_cast_empty_state(app, as_role):
    b = as_role("dm")
    cid = new_campaign(app, b.user)
    empty = soup(b.get(f"/campaigns/{cid}")).select_one("#cast .empty")
    assert "No NPCs yet" in empty.text and empty.select_one("a")["href"] == f"/campaigns/{cid}/npcs/new"
    form = soup(b.get(f"/campaigns/{cid}/npcs/new"))
    assert form.select_one("#npc-form form")["action"] == f"/campaigns/{cid}/npcs"
    assert form.select_one("#engine option[selected]")["value"] == "cascaded"
    assert "Save the NPC to hear" in form.get_text()


# ---- validation at the field ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field, value, error_id, message",
    [
        ("name", "  ", "name", "Give the NPC a name"),
        ("name", "x" * 121, "name", "120 characters"),
        ("personality", "x" * 8001, "personality", "8,000"),
        ("engine", "gpt", "engine", "cascaded"),
        ("budget_tier", "infinite", "budget_tier", "fast, standard, deep"),
        ("pitch_shift", "10.5", "pitch_shift", "−10 to 10"),
        ("pitch_shift", "loud", "pitch_shift", "−10 to 10"),
        ("speed_factor", "0.3", "speed_factor", "0 (the engine's default) or from 0.5 to 2.0"),
        ("speed_factor", "2.5", "speed_factor", "0.5 to 2.0"),
        ("speed_factor", "nan", "speed_factor", "0.5 to 2.0"),
        ("voice_id", "two words", "voice_id", "without spaces"),
        ("voice_provider", "Eleven Labs!", "voice_provider", "provider"),
        ("tools", "roll the dice", "tools", "isn't a tool name"),
        ("knowledge_scope", "ok\n" + "y" * 501, "knowledge_scope", "Entry 2"),
    ],
)
def test_invalid_field_is_422_with_the_error_next_to_it(app, as_role, database_url, field, value, error_id, message):
    b = as_role("dm")
    cid = new_campaign(app, b.user)
    resp = b.post(f"/campaigns/{cid}/npcs", {**FULL_FORM, field: value}, htmx=True)
    assert resp.status_code == 422
    doc = soup(resp)
    assert "<html" not in resp.get_data(as_text=True)
    error = doc.select_one(f"#{error_id}-error")
    assert error is not None and message in error.text, doc.select(".error")
    assert doc.select_one(f"#{error_id}")["aria-invalid"] == "true"
    assert doc.select_one(f"#{error_id}")["aria-describedby"] == f"{error_id}-error"
    assert db_rows(database_url, "SELECT count(*) FROM public.npc_definitions") == [(0,)]  # no partial write


@pytest.mark.parametrize(
    "keys, values, message",
    [
        (["", "age"], ["dwarf", "142"], "needs a key"),
        (["race", "race"], ["dwarf", "elf"], "appears twice"),
    ],
)
def test_attribute_errors(app, as_role, keys, values, message):
    b = as_role("dm")
    cid = new_campaign(app, b.user)
    resp = b.post(f"/campaigns/{cid}/npcs", {**FULL_FORM, "attr_key": keys, "attr_value": values})
    assert resp.status_code == 422 and message in soup(resp).select_one("#attributes-error").text
    assert [i["value"] for i in soup(resp).select("input[name=attr_value]")][:2] == values  # input kept


def test_speed_zero_means_engine_default(app, as_role, database_url):
    b = as_role("dm")
    cid = new_campaign(app, b.user)
    assert b.post(f"/campaigns/{cid}/npcs", {**FULL_FORM, "speed_factor": "0", "pitch_shift": ""}).status_code == 303
    (voice,) = [r[0] for r in db_rows(database_url, "SELECT voice FROM public.npc_definitions")]
    assert voice["speed_factor"] == 0 and voice["pitch_shift"] == 0


def test_names_are_unique_within_a_campaign_only(app, as_role):
    b = as_role("dm")
    crown, other = new_campaign(app, b.user, "Crown"), new_campaign(app, b.user, "Other")
    new_npc(app, b.user, crown, "Greta Ironbraid")
    resp = b.post(f"/campaigns/{crown}/npcs", {**FULL_FORM, "name": "greta ironbraid"})
    assert resp.status_code == 422
    assert "already has an NPC called “Greta Ironbraid”" in soup(resp).select_one("#name-error").text
    assert b.post(f"/campaigns/{other}/npcs", {**FULL_FORM, "name": "Greta Ironbraid"}).status_code == 303


# ---- gm_helper: at most one per campaign ---------------------------------------------------------------------


def test_second_gm_helper_is_refused_naming_the_current_one(app, as_role, database_url):
    b = as_role("dm")
    cid = new_campaign(app, b.user)
    new_npc(app, b.user, cid, "The Narrator", gm_helper=True)
    resp = b.post(f"/campaigns/{cid}/npcs", {**FULL_FORM, "gm_helper": "on"}, htmx=True)
    assert resp.status_code == 422
    assert "“The Narrator” is already this campaign's GM helper" in soup(resp).select_one("#gm_helper-error").text
    other = new_npc(app, b.user, cid, "Pip")
    form = editor_form(b, other)
    resp = b.post(f"/npcs/{other}", {**form, "gm_helper": "on"})
    assert resp.status_code == 422 and "The Narrator" in soup(resp).select_one("#gm_helper-error").text
    assert db_rows(database_url, "SELECT name FROM public.npc_definitions WHERE gm_helper") == [("The Narrator",)]
    other_campaign = new_campaign(app, b.user, "Elsewhere")
    assert b.post(f"/campaigns/{other_campaign}/npcs", {**FULL_FORM, "gm_helper": "on"}).status_code == 303


def test_concurrent_gm_helpers_cannot_both_win(app, as_role, database_url):
    from glyphoxa_htmx.core.errors import ValidationError
    from glyphoxa_htmx.services import npcs

    b = as_role("dm")
    cid = new_campaign(app, b.user)
    actor = actor_for(b.user)
    start = threading.Barrier(4)
    outcomes = []

    def create(name):
        with app.app_context():
            start.wait()
            try:
                npcs.create(actor, cid, {"name": name, "gm_helper": True})
                outcomes.append("ok")
            except ValidationError as exc:
                outcomes.append(exc.errors.get("gm_helper", ""))

    threads = [threading.Thread(target=create, args=(f"Helper {i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert outcomes.count("ok") == 1 and all("already this campaign's GM helper" in o for o in outcomes if o != "ok")
    assert db_rows(database_url, "SELECT count(*) FROM public.npc_definitions WHERE gm_helper") == [(1,)]


# ---- last-writer detection ----------------------------------------------------------------------------------


def test_stale_save_is_refused_with_a_reload_message(app, as_role, database_url):
    b = as_role("dm")
    cid = new_campaign(app, b.user)
    npc_id = new_npc(app, b.user, cid, "Greta", personality="Gruff.")
    mine = editor_form(b, npc_id)
    theirs_browser = as_role("dm", tenant_id=b.user.tenant_id)
    theirs = editor_form(theirs_browser, npc_id)
    assert theirs_browser.post(f"/npcs/{npc_id}", {**theirs, "personality": "Kind now."}).status_code == 303
    stale = b.post(f"/npcs/{npc_id}", {**mine, "personality": "Grumpier."}, htmx=True)
    assert stale.status_code == 409
    doc = soup(stale)
    notice = doc.select_one(".notice-error")
    assert "Someone else changed this NPC" in notice.text and notice.a["href"] == f"/npcs/{npc_id}"
    assert doc.select_one("textarea#personality").text == "Grumpier."  # the user's text survives
    assert npc_row(database_url, npc_id)["personality"] == "Kind now."
    # After reloading, the save goes through.
    fresh = editor_form(b, npc_id)
    resp = b.post(f"/npcs/{npc_id}", {**fresh, "personality": "Grumpier."}, htmx=True)
    assert resp.status_code == 200 and "Saved Greta" in resp.headers["HX-Trigger"]
    assert soup(resp).select_one("input[name=updated_at]")["value"] != fresh["updated_at"]
    assert npc_row(database_url, npc_id)["personality"] == "Grumpier."
    (_, (_, details, _)) = audit_rows(app, "npc.update")
    assert details["changes"]["personality"] == {"before": "Kind now.", "after": "Grumpier."}


def test_save_without_token_is_refused(app, as_role):
    b = as_role("dm")
    cid = new_campaign(app, b.user)
    npc_id = new_npc(app, b.user, cid, "Greta")
    assert b.post(f"/npcs/{npc_id}", {**FULL_FORM}).status_code == 409


# ---- ordering: drag and keyboard ----------------------------------------------------------------------------


def _cast(app, user, names, cid=None):
    cid = cid or new_campaign(app, user)
    return cid, [new_npc(app, user, cid, n) for n in names]


def test_drag_order_persists_without_touching_gateway_rows(app, as_role, database_url):
    b = as_role("dm")
    cid, (a, c, d) = _cast(app, b.user, ["Aldric", "Cora", "Dorn"])
    before = db_rows(database_url, "SELECT id, updated_at FROM public.npc_definitions ORDER BY id")
    page = soup(b.get(f"/campaigns/{cid}"))
    lst = page.select_one("ol.cast[data-sortable]")
    assert lst["data-order-url"] == f"/campaigns/{cid}/npcs/order"
    assert [li["data-id"] for li in lst.select("li")] == [a, c, d]
    resp = b.post(f"/campaigns/{cid}/npcs/order", {"ids": f"{d},{a},{c}"}, htmx=True)
    assert resp.status_code == 200 and cast_names(resp) == ["Dorn", "Aldric", "Cora"]
    assert cast_names(b.get(f"/campaigns/{cid}")) == ["Dorn", "Aldric", "Cora"]  # survives a reload
    assert db_rows(database_url, "SELECT id, updated_at FROM public.npc_definitions ORDER BY id") == before
    ((_, details, _),) = audit_rows(app, "npc.reorder")
    assert details["changes"]["order"] == {"before": [a, c, d], "after": [d, a, c]}
    bad = b.post(f"/campaigns/{cid}/npcs/order", {"ids": f"{d},{a},nope"}, htmx=True)
    assert bad.status_code == 422 and cast_names(b.get(f"/campaigns/{cid}")) == ["Dorn", "Aldric", "Cora"]


def test_reordering_a_filtered_list_keeps_the_others_in_place(app, as_role):
    b = as_role("dm")
    cid, (a, b1, c, b2) = _cast(app, b.user, ["Alpha", "Bram", "Cora", "Brin"])
    assert cast_names(b.get(f"/campaigns/{cid}/npcs?q=br", htmx=True)) == ["Bram", "Brin"]
    b.post(f"/campaigns/{cid}/npcs/order", {"ids": f"{b2},{b1}", "q": "br"}, htmx=True)
    assert cast_names(b.get(f"/campaigns/{cid}")) == ["Alpha", "Brin", "Cora", "Bram"]


def test_keyboard_move_up_and_down_without_js(app, as_role):
    b = as_role("dm")
    cid, (a, c, d) = _cast(app, b.user, ["Aldric", "Cora", "Dorn"])
    page = soup(b.get(f"/campaigns/{cid}"))
    first = page.select_one(f"#npc-{a}")
    assert first.select_one("button[value=up]").has_attr("disabled")
    assert first.select_one("button[value=down]")["aria-label"] == "Move Aldric down"
    move = first.select_one("form.move")
    assert move["method"] == "post" and move["action"] == f"/npcs/{a}/move" and move.select_one("[name=csrf_token]")
    resp = b.post(f"/npcs/{a}/move", {"direction": "down"})
    assert resp.status_code == 303 and resp.headers["Location"] == f"/campaigns/{cid}#npc-{a}"
    assert cast_names(b.get(f"/campaigns/{cid}")) == ["Cora", "Aldric", "Dorn"]
    resp = b.post(f"/npcs/{d}/move", {"direction": "up"}, htmx=True)
    assert resp.status_code == 200 and cast_names(resp) == ["Cora", "Dorn", "Aldric"]
    assert b.post(f"/npcs/{c}/move", {"direction": "up"}).status_code == 303  # already first: no change
    assert cast_names(b.get(f"/campaigns/{cid}")) == ["Cora", "Dorn", "Aldric"]
    assert b.post(f"/npcs/{c}/move", {"direction": "sideways"}, htmx=True).status_code == 422


def test_rows_without_positions_are_listed_and_ordered(app, as_role, database_url):
    b = as_role("dm")
    cid, (a,) = _cast(app, b.user, ["Aldric"])
    with psycopg.connect(database_url, autocommit=True) as conn:  # e.g. written by the gateway's own tooling
        conn.execute(
            "INSERT INTO public.npc_definitions (id, tenant_id, campaign_id, name) VALUES ('legacy', %s, %s, 'Zed')",
            (b.user.tenant_id, cid),
        )
    assert cast_names(b.get(f"/campaigns/{cid}")) == ["Aldric", "Zed"]
    b.post("/npcs/legacy/move", {"direction": "up"})
    assert cast_names(b.get(f"/campaigns/{cid}")) == ["Zed", "Aldric"]


def test_a_voice_stored_as_something_other_than_an_object_shows_the_npc_without_a_voice_badge(
    app, as_role, database_url
):
    """The gateway's tools may store ``voice`` as a bare string, a list or a number: the cast still
    shows (the template's ``voice.get`` failed the whole page), with a voice badge only for an object."""
    b = as_role("dm")
    cid, (a,) = _cast(app, b.user, ["Aldric"])
    with psycopg.connect(database_url, autocommit=True) as conn:
        for npc_id, voice in [("v-str", '"alloy"'), ("v-list", "[1, 2]"), ("v-num", "5"), ("v-obj", '{"voice_id": 9}')]:
            conn.execute(
                "INSERT INTO public.npc_definitions (id, tenant_id, campaign_id, name, voice) "
                "VALUES (%s, %s, %s, %s, %s::jsonb)",
                (npc_id, b.user.tenant_id, cid, npc_id.upper(), voice),
            )
    resp = b.get(f"/campaigns/{cid}")
    assert resp.status_code == 200
    assert cast_names(resp) == ["Aldric", "V-STR", "V-LIST", "V-NUM", "V-OBJ"]
    page = soup(resp)
    badges = {
        li["data-id"]: [s.get_text() for s in li.select(".badge[title=Voice]")] for li in page.select("ol.cast > li")
    }
    assert badges["v-str"] == badges["v-list"] == badges["v-num"] == [] and badges["v-obj"] == ["9"]


def test_cast_search_and_pagination(app, as_role):
    b = as_role("dm")
    cid = new_campaign(app, b.user)
    for i in range(52):
        new_npc(app, b.user, cid, f"Npc {i:02d}", personality="smuggler" if i == 7 else "")
    page1 = soup(b.get(f"/campaigns/{cid}"))
    assert len(page1.select("ol.cast > li")) == 50
    assert page1.select_one("#cast .pager a[rel=next]")["href"] == f"/campaigns/{cid}/npcs?page=2"
    page2 = b.get(f"/campaigns/{cid}/npcs?page=2", htmx=True)
    assert cast_names(page2) == ["Npc 50", "Npc 51"]
    assert [s.text for s in soup(page2).select(".pos")] == ["51", "52"]
    past = b.get(f"/campaigns/{cid}/npcs?page=9", htmx=True)  # past the end: the last page
    assert cast_names(past) == ["Npc 50", "Npc 51"] and soup(past).select_one(".pager a[rel=prev]") is not None
    assert cast_names(b.get(f"/campaigns/{cid}/npcs?q=nobody&page=3", htmx=True)) == []
    found = b.get(f"/campaigns/{cid}/npcs?q=SMUGGLER", htmx=True)
    assert cast_names(found) == ["Npc 07"] and soup(found).select_one(".pos").text == "8"
    assert "No NPCs match" in soup(b.get(f"/campaigns/{cid}/npcs?q=nobody", htmx=True)).get_text()
    full = soup(b.get(f"/campaigns/{cid}/npcs"))
    assert full.select_one("nav#nav") and full.select_one("#cast-q")["name"] == "q"
    assert "input changed delay:300ms" in full.select_one("form[role=search]")["hx-trigger"]


def test_cast_page_query_count_is_independent_of_cast_size(app, as_role):
    b = as_role("dm")
    small, _ = _cast(app, b.user, [f"S{i}" for i in range(3)])
    big, _ = _cast(app, b.user, [f"B{i}" for i in range(30)])
    b.get(f"/campaigns/{small}")  # warm up
    with count_queries(app) as q_small:
        assert len(cast_names(b.get(f"/campaigns/{small}"))) == 3
    with count_queries(app) as q_big:
        assert len(cast_names(b.get(f"/campaigns/{big}"))) == 30
    assert len(q_small) == len(q_big) <= 6, q_big
    assert sum("count(*) AS count_1" in q for q in q_big) == 0, q_big  # the page carries its count
    with count_queries(app) as q_block:
        b.get(f"/campaigns/{big}/npcs", htmx=True)
    assert len(q_block) <= 5


# ---- duplicate and delete -----------------------------------------------------------------------------------


def test_duplicate_goes_right_after_and_is_never_a_second_helper(app, as_role, database_url):
    b = as_role("dm")
    cid = new_campaign(app, b.user)
    narrator = new_npc(app, b.user, cid, "Narrator", gm_helper=True, knowledge_scope=["rules"])
    new_npc(app, b.user, cid, "Zed")
    resp = b.post(f"/npcs/{narrator}/duplicate")
    assert resp.status_code == 303
    copy_id = resp.headers["Location"].rsplit("/", 1)[1]
    copy = npc_row(database_url, copy_id)
    assert copy["name"] == "Narrator (copy)" and copy["gm_helper"] is False
    assert copy["knowledge_scope"] == ["rules"] and copy["tenant_id"] == b.user.tenant_id
    assert cast_names(b.get(f"/campaigns/{cid}")) == ["Narrator", "Narrator (copy)", "Zed"]
    b.post(f"/npcs/{narrator}/duplicate")
    assert "Narrator (copy 2)" in cast_names(b.get(f"/campaigns/{cid}"))


def test_delete_asks_then_removes_row_and_position(app, as_role, database_url):
    b = as_role("dm")
    cid, (a, c) = _cast(app, b.user, ["Aldric", "Cora"])
    confirm = soup(b.get(f"/npcs/{a}/delete"))
    form = confirm.select_one(".danger-zone form")
    assert form["action"] == f"/npcs/{a}/delete" and "can't be undone" in confirm.select_one(".danger-zone").text
    resp = b.post(f"/npcs/{a}/delete")
    assert resp.status_code == 303 and resp.headers["Location"] == f"/campaigns/{cid}#cast"
    assert npc_row(database_url, a) is None
    assert db_rows(database_url, "SELECT npc_id FROM web.npc_positions") == [(c,)]
    ((rid, details, _),) = audit_rows(app, "npc.delete")
    assert rid == a and details["changes"]["name"] == {"before": "Aldric", "after": None}


# ---- roles and isolation ---------------------------------------------------------------------------------------

NPC_GETS = ["/npcs/{npc}", "/npcs/{npc}/delete"]
NPC_POSTS = [
    "/npcs/{npc}",
    "/npcs/{npc}/duplicate",
    "/npcs/{npc}/delete",
    "/npcs/{npc}/move",
    "/npcs/{npc}/voice-preview",
]


@pytest.mark.parametrize("url", NPC_GETS)
def test_other_tenants_npc_is_404_on_pages(app, as_role, url):
    owner = as_role("dm")
    npc_id = new_npc(app, owner.user, new_campaign(app, owner.user), "Secret Sam")
    resp = as_role("tenant_owner").get(url.format(npc=npc_id))
    assert resp.status_code == 404 and "Secret Sam" not in resp.get_data(as_text=True)


@pytest.mark.parametrize("url", NPC_POSTS)
def test_other_tenants_npc_is_404_on_writes(app, as_role, database_url, url):
    owner = as_role("dm")
    npc_id = new_npc(app, owner.user, new_campaign(app, owner.user), "Secret Sam")
    resp = as_role("tenant_owner").post(url.format(npc=npc_id), {**FULL_FORM, "direction": "down"}, htmx=True)
    assert resp.status_code == 404
    assert npc_row(database_url, npc_id)["name"] == "Secret Sam"
    assert db_rows(database_url, "SELECT count(*) FROM public.npc_definitions") == [(1,)]


def test_rows_without_tenant_are_never_shown(app, as_role, database_url):
    b = as_role("dm")
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO public.npc_definitions (id, campaign_id, name) VALUES ('old', 'x', 'Old')")
    assert b.get("/npcs/old").status_code == 404


@pytest.mark.parametrize("url", [u for u in NPC_POSTS if "voice-preview" not in u])
def test_viewer_gets_403_on_npc_writes(app, as_role, database_url, url):
    owner = as_role("dm")
    npc_id = new_npc(app, owner.user, new_campaign(app, owner.user), "Greta")
    viewer = as_role("viewer", tenant_id=owner.user.tenant_id)
    assert viewer.post(url.format(npc=npc_id), {**FULL_FORM, "direction": "down"}).status_code == 403
    assert npc_row(database_url, npc_id)["name"] == "Greta"


def test_viewer_sees_a_read_only_editor(app, as_role):
    owner = as_role("dm")
    npc_id = new_npc(app, owner.user, new_campaign(app, owner.user), "Greta", personality="Gruff.")
    page = soup(as_role("viewer", tenant_id=owner.user.tenant_id).get(f"/npcs/{npc_id}"))
    assert page.select_one("#npc-form fieldset.plain").has_attr("disabled")
    assert page.select_one("textarea#personality").text == "Gruff."
    assert not page.select("#npc-form button[type=submit]") and not page.select("[data-voice-preview]")
    assert not page.select("form[action$='/duplicate']")


# ---- startup check of the gateway's table ----------------------------------------------------------------------


def test_startup_refuses_an_npc_table_without_tenant_id(app, database_url):
    from glyphoxa_htmx import embedded
    from glyphoxa_htmx.app import create_app
    from glyphoxa_htmx.bootstrap import check_gateway_tables

    url = embedded.recreate_database(
        embedded.with_database(database_url, "postgres"), f"gx_npccheck_{uuid.uuid4().hex[:8]}"
    )
    try:
        with psycopg.connect(url, autocommit=True) as conn:  # the gateway's older npcstore [7441977d]
            conn.execute(
                "CREATE TABLE public.npc_definitions (id TEXT PRIMARY KEY, campaign_id TEXT NOT NULL DEFAULT '', "
                "name TEXT NOT NULL, personality TEXT NOT NULL DEFAULT '', engine TEXT NOT NULL DEFAULT "
                "'cascaded', voice JSONB NOT NULL DEFAULT '{}', knowledge_scope JSONB NOT NULL DEFAULT '[]', "
                "secret_knowledge JSONB NOT NULL DEFAULT '[]', behavior_rules JSONB NOT NULL DEFAULT '[]', "
                "tools JSONB NOT NULL DEFAULT '[]', budget_tier TEXT NOT NULL DEFAULT 'fast', gm_helper "
                "BOOLEAN NOT NULL DEFAULT false, address_only BOOLEAN NOT NULL DEFAULT false, attributes "
                "JSONB NOT NULL DEFAULT '{}')"
            )
        old = create_app(make_settings(url, metrics_enabled=False))
        with pytest.raises(RuntimeError) as exc:
            check_gateway_tables(old)
        assert "missing column(s) tenant_id" in str(exc.value)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ALTER TABLE public.npc_definitions ADD COLUMN tenant_id TEXT")
        check_gateway_tables(old)  # the tenant-scoped shape passes
        with old.app_context():
            from glyphoxa_htmx.extensions import db

            db.session.remove()
            db.engine.dispose()
    finally:
        with psycopg.connect(embedded.with_database(database_url, "postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


# ---- done when: a simulated session speaks with the campaign's NPCs ------------------------------------------------


def test_session_started_through_the_gateway_uses_the_campaign_npcs(app, as_role, database_url, simulator):
    from glyphoxa_htmx.core.deps import gateway

    b = as_role("tenant_owner")
    tenant = b.user.tenant_id
    with app.app_context():
        gateway().create_tenant(tenant, guild_ids=["424242424242424242"])
    resp = b.post("/campaigns", {"name": "Saltmere", "game_system": "D&D 5e"})
    cid = resp.headers["Location"].rsplit("/", 1)[1]
    for name in ("Greta Ironbraid", "Brother Aldric"):
        assert b.post(f"/campaigns/{cid}/npcs", {**FULL_FORM, "name": name}).status_code == 303
    assert b.post(f"/campaigns/{cid}/activate").status_code == 303
    with app.app_context():
        session_id = gateway().start_web_session(tenant, "424242424242424242", "555", cid)
    try:
        deadline = time.monotonic() + 60
        speakers: set[str] = set()
        while time.monotonic() < deadline and not {"Greta Ironbraid", "Brother Aldric"} <= speakers:
            time.sleep(0.2)
            try:
                speakers = {
                    r[0]
                    for r in db_rows(
                        database_url,
                        f'SELECT DISTINCT speaker_name FROM "tenant_{tenant}".session_entries '
                        "WHERE session_id = %s AND npc_id <> ''",
                        session_id,
                    )
                }
            except psycopg.errors.UndefinedTable:
                continue
        assert {"Greta Ironbraid", "Brother Aldric"} <= speakers, speakers
        assert speakers <= {"Greta Ironbraid", "Brother Aldric"}  # not the simulator's default cast
    finally:
        with app.app_context():
            gateway().stop_web_session(session_id)

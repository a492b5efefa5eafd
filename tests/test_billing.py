"""Billing: the tier table applied to the gateway, Stripe Checkout/Portal against a local double
that follows Stripe's API shapes, and the webhook with real signatures (replay, reorder, forged,
stale, unknown type, failure -> 5xx), the 7-day grace and downgrades; the self-hosted mode."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from glyphoxa_htmx.config import ConfigError
from tests.conftest import GATEWAY_SECRET, ROOT, Browser, make_settings, soup
from tests.support.fake_stripe import PRICES, PRICES_SETTING, SECRET_KEY, WEBHOOK_SECRET, FakeStripe, sign
from tests.support.ws_server import gateway_tenant, make_campaign, sql, stop_live_sessions

HOOK = "/api/v1/billing/webhook"
MAIL_DIR = ROOT / "instance" / "test-billing" / "mail"


@pytest.fixture(scope="module")
def stripe_api():
    fake = FakeStripe().start()
    yield fake
    fake.stop()


def make_billing_app(database_url, simulator, stripe_api, **extra):
    """An app on the same database and simulator as `app`, with GLYPHOXA_BILLING=stripe against the
    Stripe double; ``extra`` settings on top (e.g. SMTP for the billing mails)."""
    from glyphoxa_htmx.app import create_app

    application = create_app(
        make_settings(
            database_url,
            gateway_grpc_addr=simulator.address,
            gateway_secret=GATEWAY_SECRET,
            gateway_timeout=3.0,
            billing="stripe",
            stripe_secret_key=SECRET_KEY,
            stripe_webhook_secret=WEBHOOK_SECRET,
            stripe_api_base=stripe_api.base,
            stripe_prices=PRICES_SETTING,
            instance_dir=str(ROOT / "instance" / "test-billing"),
            **extra,
        )
    )
    application.config["TESTING"] = True
    return application


def dispose(application) -> None:
    from glyphoxa_htmx.extensions import db

    with application.app_context():
        db.engine.dispose()  # give its connections back (the machine's PostgreSQL is shared)


@pytest.fixture(scope="module")
def billing_app(app, database_url, simulator, stripe_api):
    """The same database and simulator as `app`, with GLYPHOXA_BILLING=stripe."""
    application = make_billing_app(database_url, simulator, stripe_api)
    yield application
    dispose(application)


@pytest.fixture
def owner(billing_app, make_user, database_url):
    user = make_user("tenant_owner")
    sql(database_url, "UPDATE web.users SET email = %s WHERE id = %s", (f"{user.id}@example.test", user.id))
    gateway_tenant(billing_app, user.tenant_id)
    b = Browser(billing_app).login(user)
    b.user = user
    yield b
    stop_live_sessions(billing_app, database_url, user.tenant_id)


def deliver(billing_app, body: str, signature: str | None = None):
    return billing_app.test_client().post(
        HOOK,
        data=body,
        headers={
            "Content-Type": "application/json",
            "Stripe-Signature": signature if signature is not None else sign(body),
        },
    )


def gateway_row(database_url, tenant):
    (row,) = sql(
        database_url, "SELECT monthly_session_hours, license_tier FROM public.tenants WHERE id = %s", (tenant,)
    )
    return float(row[0]), row[1]


def metric(name, **labels):
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


def subscribe(billing_app, stripe_api, owner, tier="dungeon_master", interval="month") -> str:
    """Checkout through our page, Stripe completes it, the webhook arrives. Returns the sub id."""
    resp = owner.post("/billing/checkout", {"tier": tier, "interval": interval})
    assert resp.status_code == 303 and resp.headers["Location"].startswith("https://checkout.stripe.com/")
    session_id = resp.headers["Location"].rsplit("/", 1)[1]
    session = stripe_api.complete_checkout(session_id)
    assert deliver(billing_app, FakeStripe.event("checkout.session.completed", session)).status_code == 200
    return session["subscription"]


# ---- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        ({"billing": "enabled"}, "GLYPHOXA_BILLING must be one of disabled, stripe"),
        ({"billing": "Stripe"}, "GLYPHOXA_BILLING must be one of"),
        ({"billing": "stripe"}, "STRIPE_SECRET_KEY"),
        ({"billing": "stripe", "stripe_secret_key": "sk", "stripe_webhook_secret": "wh"}, "STRIPE_PRICES"),
    ],
)
def test_unknown_or_incomplete_billing_refuses_to_start(database_url, overrides, fragment):
    from glyphoxa_htmx.app import create_app

    with pytest.raises(ConfigError) as info:
        create_app(make_settings(database_url, **overrides))
    assert fragment in str(info.value)


# ---- self-hosted mode --------------------------------------------------------------------------


def test_billing_disabled_is_unlimited_and_never_calls_stripe(app, as_role, stripe_api, database_url):
    from glyphoxa_htmx.services import plans

    calls = len(stripe_api.requests)
    b = as_role("tenant_owner")
    page = soup(b.get("/billing"))
    assert "Self-hosted mode" in page.select_one("#self-hosted").text
    assert not page.select("form[action='/billing/checkout']")
    resp = b.post("/billing/checkout", {"tier": "guild", "interval": "month"})
    assert resp.status_code == 422 and "self-hosted" in soup(resp).select_one(".notice-error").text
    body = FakeStripe.event("customer.subscription.deleted", {"id": "sub_x"})
    assert app.test_client().post(HOOK, data=body, headers={"Stripe-Signature": sign(body)}).status_code == 404
    with app.app_context():
        assert plans.current(b.user.tenant_id) is plans.UNLIMITED
    # NPCs beyond any paid limit are fine.
    campaign = make_campaign(app, b.user.tenant_id)
    for n in range(3):
        assert b.post(f"/campaigns/{campaign}/npcs", {"name": f"Npc {n}", "personality": "x"}).status_code == 303
    assert len(stripe_api.requests) == calls  # not one call to Stripe


# ---- checkout, webhook, page --------------------------------------------------------------------


def test_upgrade_through_checkout_applies_the_tier(billing_app, stripe_api, owner, database_url):
    tenant = owner.user.tenant_id
    page = soup(owner.get("/billing"))
    assert page.select_one("#current-tier").text == "Apprentice"
    before = metric("glyphoxa_web_subscription_changes_total", from_tier="apprentice", to_tier="dungeon_master")

    sub_id = subscribe(billing_app, stripe_api, owner, "dungeon_master", "month")

    sent = [r for r in stripe_api.requests if r["path"] == "/v1/checkout/sessions"][-1]["form"]
    assert sent["mode"] == "subscription" and sent["client_reference_id"] == tenant
    assert sent["line_items"]["0"]["price"] == PRICES["dungeon_master_month"]
    assert sent["subscription_data"]["metadata"]["tenant_id"] == tenant
    assert sent["success_url"].endswith("/billing/success?session_id={CHECKOUT_SESSION_ID}")
    assert gateway_row(database_url, tenant) == (0.0, "dedicated")  # unlimited hours, 3 concurrent sessions
    (row,) = sql(
        database_url,
        "SELECT tier, status, stripe_subscription_id, applied_tier FROM web.subscriptions WHERE tenant_id = %s",
        (tenant,),
    )
    assert row == ("dungeon_master", "active", sub_id, "dungeon_master")
    audits = sql(
        database_url,
        "SELECT details FROM web.audit_log WHERE tenant_id = %s AND action = 'tenant.plan_apply'",
        (tenant,),
    )
    assert [a[0]["tier"] for a in audits] == ["dungeon_master"]
    assert (
        metric("glyphoxa_web_subscription_changes_total", from_tier="apprentice", to_tier="dungeon_master")
        == before + 1
    )
    metrics_text = billing_app.test_client().get("/metrics").get_data(as_text=True)
    assert 'glyphoxa_web_subscription_changes_total{from_tier="apprentice",to_tier="dungeon_master"}' in metrics_text

    page = soup(owner.get("/billing"))
    assert page.select_one("#current-tier").text == "Dungeon Master"
    assert page.select_one("#sub-status").text == "active"
    assert not page.select("form[action='/billing/checkout']")  # changes go through the portal now
    assert "Thank you" in owner.get("/billing/success?session_id=cs_x").get_data(as_text=True)
    assert "Nothing was charged" in owner.get("/billing/cancel").get_data(as_text=True)

    portal = owner.post("/billing/portal")
    assert portal.status_code == 303 and portal.headers["Location"].startswith("https://billing.stripe.com/")
    sent = [r for r in stripe_api.requests if r["path"] == "/v1/billing_portal/sessions"][-1]["form"]
    assert sent["customer"] == stripe_api.subscriptions[sub_id]["customer"]
    assert sent["return_url"].endswith("/billing")
    again = owner.post("/billing/checkout", {"tier": "guild", "interval": "year"})
    assert again.status_code == 422 and "billing portal" in soup(again).select_one(".notice-error").text


def test_replay_is_a_no_op(billing_app, stripe_api, owner, database_url):
    sub_id = subscribe(billing_app, stripe_api, owner, "adventurer")
    stripe_api.update_subscription(sub_id, price=PRICES["guild_month"])
    body = FakeStripe.event("customer.subscription.updated", stripe_api.subscriptions[sub_id])
    first = deliver(billing_app, body)
    assert first.status_code == 200 and first.get_json()["outcome"] == "applied"
    count = sql(database_url, "SELECT count(*) FROM web.audit_log WHERE tenant_id = %s", (owner.user.tenant_id,))[0][0]
    replay = deliver(billing_app, body)  # Stripe retries the same event (fresh signature, same id)
    assert replay.status_code == 200 and replay.get_json()["outcome"] == "replay"
    assert (
        sql(database_url, "SELECT count(*) FROM web.audit_log WHERE tenant_id = %s", (owner.user.tenant_id,))[0][0]
        == count
    )
    assert gateway_row(database_url, owner.user.tenant_id) == (0.0, "dedicated")


def test_out_of_order_delivery_converges_to_stripes_current_state(billing_app, stripe_api, owner, database_url):
    tenant = owner.user.tenant_id
    sub_id = subscribe(billing_app, stripe_api, owner, "adventurer")
    assert gateway_row(database_url, tenant) == (32.0, "shared")
    old = stripe_api.update_subscription(sub_id, price=PRICES["guild_month"])  # t1: upgrade to Guild
    old_event = FakeStripe.event("customer.subscription.updated", old, created=int(time.time()) - 60)
    new = stripe_api.update_subscription(sub_id, price=PRICES["dungeon_master_month"])  # t2: then to DM
    new_event = FakeStripe.event("customer.subscription.updated", new)
    assert deliver(billing_app, new_event).status_code == 200
    assert deliver(billing_app, old_event).status_code == 200  # the older event arrives last
    (tier,) = sql(database_url, "SELECT tier FROM web.subscriptions WHERE tenant_id = %s", (tenant,))[0]
    assert tier == "dungeon_master"
    assert gateway_row(database_url, tenant) == (0.0, "dedicated")
    # A late "created"-era event after the deletion doesn't resurrect the plan.
    stale_active = json.loads(new_event)["data"]["object"]
    stripe_api.update_subscription(sub_id, status="canceled", canceled_at=int(time.time()))
    assert (
        deliver(
            billing_app, FakeStripe.event("customer.subscription.deleted", stripe_api.subscriptions[sub_id])
        ).status_code
        == 200
    )
    assert deliver(billing_app, FakeStripe.event("customer.subscription.updated", stale_active)).status_code == 200
    assert gateway_row(database_url, tenant) == (8.0, "shared")
    # The end is dated for churn (the dashboard's "canceled in the last 30 days").
    ((status, canceled_at),) = sql(
        database_url, "SELECT status, canceled_at FROM web.subscriptions WHERE tenant_id = %s", (tenant,)
    )
    assert status == "canceled" and datetime.now(UTC) - canceled_at < timedelta(minutes=5)


@pytest.mark.parametrize("how", ["wrong_secret", "stale", "missing", "tampered"])
def test_forged_or_stale_signatures_are_refused(billing_app, stripe_api, owner, database_url, how):
    body = FakeStripe.event(
        "checkout.session.completed",
        {
            "id": "cs_forged",
            "mode": "subscription",
            "subscription": "sub_forged",
            "client_reference_id": owner.user.tenant_id,
        },
    )
    signature = {
        "wrong_secret": sign(body, secret="whsec_attacker"),
        "stale": sign(body, timestamp=int(time.time()) - 600),  # outside the 5-minute tolerance
        "missing": "",
        "tampered": sign(body.replace("cs_forged", "cs_other")),
    }[how]
    resp = deliver(billing_app, body, signature)
    assert resp.status_code == 400
    assert sql(database_url, "SELECT count(*) FROM web.billing_events")[0][0] == 0
    assert not sql(database_url, "SELECT 1 FROM web.subscriptions WHERE tenant_id = %s", (owner.user.tenant_id,))


def test_unknown_event_type_is_acknowledged_and_recorded(billing_app, database_url):
    body = FakeStripe.event("customer.tax_id.created", {"id": "txi_1", "object": "tax_id", "brand_new_field": [1]})
    resp = deliver(billing_app, body)
    assert resp.status_code == 200 and resp.get_json()["outcome"] == "ignored"
    assert sql(database_url, "SELECT type, outcome FROM web.billing_events") == [("customer.tax_id.created", "ignored")]


def test_failure_answers_5xx_and_applies_nothing_then_the_retry_works(billing_app, stripe_api, owner, database_url):
    tenant = owner.user.tenant_id
    resp = owner.post("/billing/checkout", {"tier": "guild", "interval": "month"})
    session = stripe_api.complete_checkout(resp.headers["Location"].rsplit("/", 1)[1])
    body = FakeStripe.event("checkout.session.completed", session)
    stripe_api.fail_next = 5  # Stripe's API is down while we fetch the subscription
    failed = deliver(billing_app, body)
    stripe_api.fail_next = 0
    assert failed.status_code == 500
    assert sql(database_url, "SELECT count(*) FROM web.billing_events")[0][0] == 0
    assert not sql(database_url, "SELECT 1 FROM web.subscriptions WHERE tenant_id = %s", (tenant,))
    assert gateway_row(database_url, tenant) == (0.0, "shared")  # untouched
    retry = deliver(billing_app, body)
    assert retry.status_code == 200 and retry.get_json()["outcome"] == "applied"
    assert gateway_row(database_url, tenant) == (0.0, "dedicated")


def test_failed_payment_grace_banner_mail_then_downgrade(billing_app, stripe_api, owner, database_url):
    from glyphoxa_htmx.services import billing

    tenant = owner.user.tenant_id
    sub_id = subscribe(billing_app, stripe_api, owner, "dungeon_master")
    before_mails = set(MAIL_DIR.glob("*.eml")) if MAIL_DIR.exists() else set()
    stripe_api.update_subscription(sub_id, status="past_due")
    invoice = stripe_api.invoice(sub_id, "open", amount=1900)
    assert deliver(billing_app, FakeStripe.event("invoice.payment_failed", invoice)).status_code == 200

    page = soup(owner.get("/billing"))
    banner = page.select_one("#past-due-banner")
    assert banner is not None and "7 more days" in banner.text
    assert page.select_one("#current-tier").text == "Dungeon Master"  # still served during the grace
    assert gateway_row(database_url, tenant) == (0.0, "dedicated")
    assert invoice["number"] in page.select_one("#invoices").text
    mails = set(MAIL_DIR.glob("*.eml")) - before_mails
    assert len(mails) == 1
    text = mails.pop().read_text()
    assert f"To: {owner.user.id}@example.test" in text and "19.00 USD" in text and invoice["hosted_invoice_url"] in text

    with billing_app.app_context():
        assert billing.sweep(datetime.now(UTC) + timedelta(days=6)) == []
        assert billing.sweep(datetime.now(UTC) + timedelta(days=7, minutes=1)) == [
            (tenant, "dungeon_master", "apprentice")
        ]
    assert gateway_row(database_url, tenant) == (8.0, "shared")
    page = soup(owner.get("/billing"))  # the page reads the same clock the sweep used: grace is still on here
    assert page.select_one("#past-due-banner") is not None

    # The customer fixes the card: invoice.paid, the subscription is active again.
    stripe_api.update_subscription(sub_id, status="active")
    paid = stripe_api.invoice(sub_id, "paid", amount=1900, id=invoice["id"])
    assert deliver(billing_app, FakeStripe.event("invoice.paid", paid)).status_code == 200
    assert gateway_row(database_url, tenant) == (0.0, "dedicated")
    # The late "open" state of the same invoice doesn't overwrite "paid".
    assert deliver(billing_app, FakeStripe.event("invoice.payment_failed", invoice)).status_code == 200
    assert sql(database_url, "SELECT status FROM web.invoices WHERE id = %s", (invoice["id"],)) == [("paid",)]


def test_cancellation_downgrades_and_keeps_npcs_over_the_limit(billing_app, stripe_api, owner, database_url):
    tenant = owner.user.tenant_id
    sub_id = subscribe(billing_app, stripe_api, owner, "dungeon_master")
    campaign = make_campaign(billing_app, tenant)
    for n in range(3):
        assert owner.post(f"/campaigns/{campaign}/npcs", {"name": f"Npc {n}", "personality": "x"}).status_code == 303
    stripe_api.update_subscription(sub_id, status="canceled", canceled_at=int(time.time()))
    assert (
        deliver(
            billing_app, FakeStripe.event("customer.subscription.deleted", stripe_api.subscriptions[sub_id])
        ).status_code
        == 200
    )
    assert gateway_row(database_url, tenant) == (8.0, "shared")
    assert sql(database_url, "SELECT count(*) FROM public.npc_definitions WHERE tenant_id = %s", (tenant,))[0][0] == 3
    resp = owner.post(f"/campaigns/{campaign}/npcs", {"name": "One too many", "personality": "x"}, htmx=True)
    assert resp.status_code == 422
    notice = soup(resp).select_one(".notice-error")
    assert "Apprentice plan allows 2 NPCs" in notice.text and notice.select_one("a[href='/billing']")
    assert sql(database_url, "SELECT count(*) FROM public.npc_definitions WHERE tenant_id = %s", (tenant,))[0][0] == 3
    assert soup(owner.get("/billing")).select_one("#current-tier").text == "Apprentice"


def test_concurrent_sessions_are_limited_by_the_plan(billing_app, make_user, database_url):
    user = make_user("dm")
    guild = gateway_tenant(billing_app, user.tenant_id)[0]
    dm = Browser(billing_app).login(user)
    campaign_a, campaign_b = make_campaign(billing_app, user.tenant_id), make_campaign(billing_app, user.tenant_id, "B")
    form = {
        "campaign_id": campaign_a,
        "guild_id": guild,
        "channel_id": "987654321098765432",
        "empty_cast_ok": "1",
    }  # these campaigns have no NPCs: confirm starting without any
    try:
        assert dm.post("/sessions/new", form).status_code == 303
        resp = dm.post("/sessions/new", {**form, "campaign_id": campaign_b}, htmx=True)
        assert resp.status_code == 422
        text = soup(resp).select_one(".notice-error").text
        assert "Apprentice plan allows 1 voice session at a time" in text and "upgrade" in text
    finally:
        stop_live_sessions(billing_app, database_url, user.tenant_id)


def test_billing_is_for_owners_only(billing_app, make_user):
    for role in ("dm", "viewer"):
        b = Browser(billing_app).login(make_user(role))
        assert b.get("/billing").status_code == 403
        assert b.post("/billing/checkout", {"tier": "guild", "interval": "month"}).status_code == 403
        assert b.post("/billing/portal").status_code == 403


def test_invoices_belong_to_their_tenant(billing_app, stripe_api, owner, make_user, database_url):
    sub_id = subscribe(billing_app, stripe_api, owner, "adventurer")
    inv = stripe_api.invoice(sub_id, "paid")
    assert deliver(billing_app, FakeStripe.event("invoice.paid", inv)).status_code == 200
    assert inv["number"] in soup(owner.get("/billing")).select_one("#invoices").text
    other = Browser(billing_app).login(make_user("tenant_owner"))
    page = other.get("/billing").get_data(as_text=True)
    assert inv["number"] not in page and "No invoices yet" in page
    assert other.post("/billing/portal").status_code == 422  # no customer of theirs to open


def test_signup_with_billing_starts_on_apprentice(billing_app, database_url):
    from tests.test_business_metrics import scrape

    before = scrape(billing_app, "glyphoxa_web_signups_total", tier="apprentice")
    resp = Browser(billing_app).post("/auth/dev", {"name": "Fresh Fenna", "role": "tenant_owner"})
    assert resp.status_code in (302, 303)
    (tenant,) = sql(database_url, "SELECT tenant_id FROM web.users WHERE name = 'Fresh Fenna'")[0]
    assert gateway_row(database_url, tenant) == (8.0, "shared")
    assert scrape(billing_app, "glyphoxa_web_signups_total", tier="apprentice") == before + 1


def test_billing_sweep_command_ends_an_expired_grace(
    billing_app, stripe_api, owner, database_url, simulator, monkeypatch
):
    from click.testing import CliRunner

    from glyphoxa_htmx.cli import main

    tenant = owner.user.tenant_id
    sub_id = subscribe(billing_app, stripe_api, owner, "guild")
    stripe_api.update_subscription(sub_id, status="past_due")
    assert (
        deliver(billing_app, FakeStripe.event("invoice.payment_failed", stripe_api.invoice(sub_id, "open"))).status_code
        == 200
    )
    sql(
        database_url,
        "UPDATE web.subscriptions SET past_due_since = now() - interval '8 days' WHERE tenant_id = %s",
        (tenant,),
    )
    for key, value in {
        "DATABASE_URL": database_url,
        "LOG_JSON": "0",
        "GLYPHOXA_BILLING": "stripe",
        "STRIPE_SECRET_KEY": SECRET_KEY,
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "STRIPE_PRICES": PRICES_SETTING,
        "GATEWAY_GRPC_ADDR": simulator.address,
        "GATEWAY_SECRET": GATEWAY_SECRET,
    }.items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(main, ["billing-sweep"])
    assert result.exit_code == 0, result.output
    assert f"{tenant}: guild -> apprentice" in result.output
    assert gateway_row(database_url, tenant) == (8.0, "shared")
    assert "grace period is over" in soup(owner.get("/billing")).select_one("#past-due-banner").text
    again = CliRunner().invoke(main, ["billing-sweep"])
    assert "0 table(s) changed" in again.output


def test_concurrent_duplicate_deliveries_apply_once(billing_app, stripe_api, owner, database_url):
    import threading

    tenant = owner.user.tenant_id
    resp = owner.post("/billing/checkout", {"tier": "adventurer", "interval": "year"})
    session = stripe_api.complete_checkout(resp.headers["Location"].rsplit("/", 1)[1])
    body = FakeStripe.event("checkout.session.completed", session)
    barrier, results = threading.Barrier(3), []

    def post():
        barrier.wait()
        r = deliver(billing_app, body)
        results.append((r.status_code, r.get_json()["outcome"]))

    threads = [threading.Thread(target=post) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert sorted(results) == [(200, "applied"), (200, "replay"), (200, "replay")]
    assert (
        sql(
            database_url,
            "SELECT count(*) FROM web.audit_log WHERE tenant_id = %s AND action = 'tenant.plan_apply'",
            (tenant,),
        )[0][0]
        == 1
    )
    assert sql(database_url, "SELECT tier, interval FROM web.subscriptions WHERE tenant_id = %s", (tenant,)) == [
        ("adventurer", "year")
    ]
    assert gateway_row(database_url, tenant) == (32.0, "shared")


def test_newer_api_shapes_are_understood(billing_app, stripe_api, owner, database_url):
    """Since API version 2025-03-31 the period lives on subscription items and an invoice names its
    subscription under parent.subscription_details; both shapes are read."""
    tenant = owner.user.tenant_id
    sub_id = subscribe(billing_app, stripe_api, owner, "adventurer")
    inv = stripe_api.invoice(sub_id, "paid")
    sub = stripe_api.subscriptions[sub_id]
    end = sub.pop("current_period_end") + 86400  # renewed: the new end is only on the item
    sub["items"]["data"][0].update(current_period_start=sub.pop("current_period_start"), current_period_end=end)
    del inv["subscription"]
    inv["parent"] = {"type": "subscription_details", "subscription_details": {"subscription": sub_id, "metadata": {}}}
    assert deliver(billing_app, FakeStripe.event("invoice.paid", inv)).status_code == 200
    (period_end,) = sql(
        database_url,
        "SELECT extract(epoch FROM current_period_end)::bigint FROM web.subscriptions WHERE tenant_id = %s",
        (tenant,),
    )[0]
    assert period_end == end
    assert sql(database_url, "SELECT tenant_id, status FROM web.invoices WHERE id = %s", (inv["id"],)) == [
        (tenant, "paid")
    ]


def test_dm_seats_follow_the_plan(billing_app, stripe_api, owner, make_user, database_url):
    tenant = owner.user.tenant_id
    players = [make_user("viewer", tenant_id=tenant) for _ in range(5)]
    resp = owner.post(f"/team/{players[0].id}/role", {"role": "dm"}, htmx=True)
    assert resp.status_code == 422
    assert "Apprentice plan has 1 DM seat" in soup(resp).select_one("#role-error").text
    assert sql(database_url, "SELECT role FROM web.users WHERE id = %s", (players[0].id,)) == [("viewer",)]
    subscribe(billing_app, stripe_api, owner, "guild")
    for p in players[:4]:  # the owner plus four DMs: five seats
        assert owner.post(f"/team/{p.id}/role", {"role": "dm"}).status_code == 303
    resp = owner.post(f"/team/{players[4].id}/role", {"role": "dm"}, htmx=True)
    assert resp.status_code == 422 and "Guild plan has 5 DM seats" in soup(resp).select_one("#role-error").text

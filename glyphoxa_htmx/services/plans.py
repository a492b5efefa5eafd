"""The plans: the one tier table (plan §10) and everything that reads it.

* ``TIERS`` holds each tier's prices and limits; every check in the code reads it from here.
* ``current(tenant_id)`` is the tier a tenant is served at right now: with billing disabled
  (self-hosted, the embedded default) every tenant is ``UNLIMITED``; otherwise it follows the
  tenant's subscription row (past_due keeps the tier for ``GRACE`` days, then Apprentice).
* ``apply_tier`` pushes a tier to the gateway: ``monthly_session_hours`` by a direct, audited
  ``UPDATE public.tenants`` (the gateway has no API for it, contract §5) and ``license_tier``
  through UpdateTenant (``shared`` allows one live session per tenant, ``dedicated`` more).
* ``check_npc_limit`` / ``check_concurrent_sessions`` enforce what the gateway can't, with an
  upgrade prompt (``errors["_upgrade"]`` makes the form link to the billing page).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from flask_babel import format_currency, format_decimal, get_locale
from sqlalchemy import func, select, text

from glyphoxa_htmx.core import audit
from glyphoxa_htmx.core.authz import Actor
from glyphoxa_htmx.core.deps import gateway, settings
from glyphoxa_htmx.core.errors import ValidationError
from glyphoxa_htmx.core.i18n import _, lazy_gettext, ngettext
from glyphoxa_htmx.extensions import db

GRACE = timedelta(days=7)


@dataclass(frozen=True)
class Tier:
    key: str
    name: str  # shown to people: a lazy translation (the key is what code and the database use)
    monthly_cents: int
    annual_cents: int
    session_hours: Decimal  # public.tenants.monthly_session_hours; 0 = unlimited (the gateway's rule)
    max_npcs: int | None  # None = unlimited
    max_concurrent: int
    seats: int | None  # None = no seat limit
    voices: str  # shown to people: a lazy translation
    model: str

    @property
    def license_tier(self) -> str:
        """The gateway knows only `shared` (one live session per tenant) and `dedicated`."""
        return "shared" if self.max_concurrent <= 1 else "dedicated"

    @property
    def paid(self) -> bool:
        return self.monthly_cents > 0

    def price(self, interval: str) -> str:
        """E.g. "$9/mo" / "9 $/Monat": whole dollars in the language's currency layout."""
        cents = self.annual_cents if interval == "year" else self.monthly_cents
        locale = get_locale()
        pattern = locale.currency_formats["standard"].pattern.replace(".00", "") if locale else "¤#,##0"
        amount = format_currency(cents // 100, "USD", format=pattern, currency_digits=False)
        return _("%(price)s/yr", price=amount) if interval == "year" else _("%(price)s/mo", price=amount)


APPRENTICE = Tier(
    "apprentice", lazy_gettext("Apprentice"), 0, 0, Decimal(8), 2, 1, 1, lazy_gettext("Basic"), "Gemini Flash"
)
ADVENTURER = Tier(
    "adventurer",
    lazy_gettext("Adventurer"),
    900,
    9000,
    Decimal(32),
    10,
    1,
    1,
    lazy_gettext("Standard (ElevenLabs)"),
    "GPT-4o-mini",
)
DUNGEON_MASTER = Tier(
    "dungeon_master",
    lazy_gettext("Dungeon Master"),
    1900,
    19000,
    Decimal(0),
    None,
    3,
    1,
    lazy_gettext("Premium"),
    "GPT-4o",
)
GUILD = Tier(
    "guild",
    lazy_gettext("Guild"),
    2900,
    29000,
    Decimal(0),
    None,
    5,
    5,
    lazy_gettext("Premium + custom training"),
    "GPT-4o",
)
# Self-hosted (GLYPHOXA_BILLING=disabled): no limits at all; the operator brings their own keys.
UNLIMITED = Tier(
    "self_hosted",
    lazy_gettext("Self-hosted"),
    0,
    0,
    Decimal(0),
    None,
    1_000_000,
    None,
    lazy_gettext("Your own providers"),
    "Your own providers",
)

TIERS: dict[str, Tier] = {t.key: t for t in (APPRENTICE, ADVENTURER, DUNGEON_MASTER, GUILD)}
PAID = [ADVENTURER, DUNGEON_MASTER, GUILD]
INTERVALS = ("month", "year")
SERVED_STATUSES = {"active", "trialing"}


def billing_enabled() -> bool:
    return settings().billing == "stripe"


def served_tier(
    tier_key: str | None, status: str | None, past_due_since: datetime | None, now: datetime | None = None
) -> Tier:
    """The tier a subscription in this state is served at (billing enabled)."""
    tier = TIERS.get(tier_key or "", APPRENTICE)
    if status in SERVED_STATUSES:
        return tier
    if status == "past_due":
        now = now or datetime.now(UTC)
        if past_due_since is not None and now < past_due_since + GRACE:
            return tier
    return APPRENTICE


def grace_days_left(past_due_since: datetime | None, now: datetime | None = None) -> int:
    if past_due_since is None:
        return 0
    now = now or datetime.now(UTC)
    left = (past_due_since + GRACE) - now
    return max(0, -(-int(left.total_seconds()) // 86400))  # whole days, rounded up


def current(tenant_id: str, now: datetime | None = None) -> Tier:
    """The tier the tenant is served at right now (one query when billing is enabled)."""
    if not billing_enabled():
        return UNLIMITED
    from glyphoxa_htmx.models import Subscription

    row = db.session.execute(
        select(Subscription.tier, Subscription.status, Subscription.past_due_since).where(
            Subscription.tenant_id == tenant_id
        )
    ).one_or_none()
    if row is None:
        return APPRENTICE
    return served_tier(row.tier, row.status, row.past_due_since, now)


def apply_tier(tenant_id: str, tier: Tier, *, reason: str, actor: Actor | None = None) -> None:
    """Set the gateway's view of the tenant to ``tier`` (inside the caller's transaction).

    A gateway failure raises, so the caller's transaction (e.g. a webhook event) rolls back and is
    retried."""
    push_gateway_tier(
        tenant_id,
        tier.license_tier,
        tier.session_hours,
        action="tenant.plan_apply",
        details={"tier": tier.key, "reason": reason},
        actor=actor,
    )


def push_gateway_tier(
    tenant_id: str,
    license_tier: str,
    session_hours: Decimal,
    *,
    action: str,
    details: dict[str, Any],
    actor: Actor | None = None,
    require_gateway_tenant: bool = False,
) -> None:
    """The one writer of a tenant's tier on the gateway (inside the caller's transaction).

    monthly_session_hours: direct SQL, the only way (contract §5); license_tier: UpdateTenant when
    it differs. Audited as ``action`` with before/after. ``require_gateway_tenant``: a tenant the
    gateway doesn't have is an error (an operator's change) instead of nothing to change there (a
    subscription that arrives before the gateway registered the tenant)."""
    from glyphoxa_htmx.adapters.gateway.errors import NotFound as GatewayNotFound

    exists = db.session.execute(text("SELECT to_regclass('public.tenants') IS NOT NULL")).scalar()
    before = None
    if exists:
        before = db.session.execute(
            text("SELECT monthly_session_hours, license_tier FROM public.tenants WHERE id = :id"), {"id": tenant_id}
        ).one_or_none()
    if require_gateway_tenant and before is None:
        raise ValidationError(
            {"license_tier": _("The voice service doesn't know this table, so it has no tier to change.")}
        )
    # UpdateTenant first, while we hold no lock on the row: the gateway locks and rewrites it
    # (hours included, with the value it read), so our UPDATE must come after, or we'd deadlock
    # with it. If our transaction fails afterwards, the retry applies both again (idempotent).
    client = gateway()
    if client is not None and (before is None or before.license_tier != license_tier):
        try:
            client.update_tenant(tenant_id, license_tier=license_tier)
        except GatewayNotFound:
            if require_gateway_tenant:
                raise ValidationError(
                    {"license_tier": _("The voice service doesn't know this table, so it has no tier to change.")}
                ) from None
            # not registered with the gateway yet: nothing to change there
    if before is not None:
        db.session.execute(
            text("UPDATE public.tenants SET monthly_session_hours = :h, updated_at = now() WHERE id = :id"),
            {"h": session_hours, "id": tenant_id},
        )
    audit.record(
        action,
        "tenant",
        tenant_id,
        actor=actor,
        tenant_id=tenant_id,
        before={
            "monthly_session_hours": str(before.monthly_session_hours) if before else None,
            "license_tier": before.license_tier if before else None,
        },
        after={"monthly_session_hours": str(session_hours), "license_tier": license_tier},
        details=details,
    )


def _upgrade(message: str, field: str = "") -> ValidationError:
    return ValidationError({field: message, "_upgrade": "1"}, message)


def check_npc_limit(actor: Actor) -> None:
    """Refuse a new NPC when the tenant already has as many as its tier allows. Existing NPCs
    over the limit (after a downgrade) are kept; only new ones are refused."""
    tier = current(actor.tenant_id)
    if tier.max_npcs is None:
        return
    from glyphoxa_htmx.models import NpcDefinition

    # One tenant-wide lock (the cast lock is per campaign): two creates can't both pass the count.
    db.session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"),
        {"k": f"glyphoxa-web:npc-limit:{actor.tenant_id}"},
    )

    count = db.session.execute(
        select(func.count()).select_from(NpcDefinition).where(NpcDefinition.tenant_id == actor.tenant_id)
    ).scalar_one()
    if count >= tier.max_npcs:
        raise _upgrade(
            _(
                "Your %(plan)s plan allows %(max)s NPCs and your table has %(count)s. "
                "Upgrade your plan to add more (existing NPCs stay as they are).",
                plan=tier.name,
                max=tier.max_npcs,
                count=count,
            )
        )


SEAT_ROLES = ("tenant_owner", "dm")  # people who run the table; viewers (players) are free


def check_seat_limit(actor: Actor) -> None:
    """Refuse one more owner/DM than the tier's seats (Guild: 5, the others: 1). Called before a
    person gets a seat role (role change; invitations when they land)."""
    tier = current(actor.tenant_id)
    if tier.seats is None:
        return
    from glyphoxa_htmx.models import User

    db.session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": f"glyphoxa-web:seats:{actor.tenant_id}"}
    )
    used = db.session.execute(
        select(func.count())
        .select_from(User)
        .where(User.tenant_id == actor.tenant_id, User.role.in_(SEAT_ROLES), User.status == "active")
    ).scalar_one()
    if used >= tier.seats:
        # Two counts in one sentence: the seats pick the plural form, the people taking them the verb.
        values = {"plan": tier.name, "used": used, "guild": GUILD.name, "max": GUILD.seats}
        if used == 1:
            message = ngettext(
                "Your %(plan)s plan has %(num)d DM seat and %(used)d is taken. Upgrade to %(guild)s for up to "
                "%(max)d owners and DMs; players can always join as viewers.",
                "Your %(plan)s plan has %(num)d DM seats and %(used)d is taken. Upgrade to %(guild)s for up to "
                "%(max)d owners and DMs; players can always join as viewers.",
                tier.seats,
                **values,
            )
        else:
            message = ngettext(
                "Your %(plan)s plan has %(num)d DM seat and %(used)d are taken. Upgrade to %(guild)s for up to "
                "%(max)d owners and DMs; players can always join as viewers.",
                "Your %(plan)s plan has %(num)d DM seats and %(used)d are taken. Upgrade to %(guild)s for up to "
                "%(max)d owners and DMs; players can always join as viewers.",
                tier.seats,
                **values,
            )
        raise _upgrade(message, "role")


def check_concurrent_sessions(actor: Actor) -> None:
    """Refuse a start when the tenant already runs as many live sessions as its tier allows."""
    tier = current(actor.tenant_id)
    from glyphoxa_htmx.models import GatewaySession
    from glyphoxa_htmx.services.sessions import LIVE_STATES

    if tier is UNLIMITED:
        return
    # Starts of different campaigns wait for each other here (held until the start commits, after
    # the gateway inserted its row), so two can't both see "one slot left".
    db.session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"),
        {"k": f"glyphoxa-web:session-limit:{actor.tenant_id}"},
    )
    live = db.session.execute(
        select(func.count())
        .select_from(GatewaySession)
        .where(GatewaySession.tenant_id == actor.tenant_id, GatewaySession.state.in_(LIVE_STATES))
    ).scalar_one()
    if live >= tier.max_concurrent:
        # Two counts in one sentence: the allowance picks the plural form, the live sessions the verb.
        if live == 1:
            message = ngettext(
                "Your %(plan)s plan allows %(num)d voice session at a time and %(live)d is running. "
                "Stop one, or upgrade your plan.",
                "Your %(plan)s plan allows %(num)d voice sessions at a time and %(live)d is running. "
                "Stop one, or upgrade your plan.",
                tier.max_concurrent,
                plan=tier.name,
                live=live,
            )
        else:
            message = ngettext(
                "Your %(plan)s plan allows %(num)d voice session at a time and %(live)d are running. "
                "Stop one, or upgrade your plan.",
                "Your %(plan)s plan allows %(num)d voice sessions at a time and %(live)d are running. "
                "Stop one, or upgrade your plan.",
                tier.max_concurrent,
                plan=tier.name,
                live=live,
            )
        raise _upgrade(message)


def check_session_quota(actor: Actor, usage: dict[str, Any]) -> None:
    """Explain the monthly hours limit before the gateway refuses with a bare error."""
    tier = current(actor.tenant_id)
    quota = usage.get("quota") or Decimal(0)
    if tier is UNLIMITED or not usage.get("known") or quota <= 0:
        return
    if usage["hours"] >= quota:
        raise _upgrade(
            _(
                "Your table has used all %(quota)s voice-session hours of your %(plan)s plan this month. "
                "Upgrade your plan for more hours, or sessions can start again next month.",
                quota=format_decimal(quota),
                plan=tier.name,
            )
        )

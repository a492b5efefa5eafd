"""Tenants: slug ids the gateway accepts, creation through the gateway when one is configured."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, TypedDict

from sqlalchemy import Row, func, select, text, update

# The gateway's tenant-id rule lives in one place, beside the gateway client.
from glyphoxa_htmx.adapters.gateway.tenant_id import MAX_TENANT_ID_LENGTH as MAX_TENANT_ID
from glyphoxa_htmx.adapters.gateway.tenant_id import is_valid_tenant_id as valid_tenant_id  # noqa: F401
from glyphoxa_htmx.core import audit, keyset
from glyphoxa_htmx.core.authz import Actor, Perm, require
from glyphoxa_htmx.core.dbconn import rowcount
from glyphoxa_htmx.core.deps import gateway
from glyphoxa_htmx.core.errors import NotFound, Unavailable, ValidationError
from glyphoxa_htmx.core.i18n import _, lazy_gettext
from glyphoxa_htmx.core.parse import SNOWFLAKE_RE, like_pattern
from glyphoxa_htmx.extensions import db
from glyphoxa_htmx.models import GuildClaim, Tenant

if TYPE_CHECKING:
    from glyphoxa_htmx.models import User

_TRANSLIT = str.maketrans(
    {
        "æ": "ae",
        "Æ": "ae",
        "ø": "o",
        "Ø": "o",
        "ß": "ss",
        "œ": "oe",
        "Œ": "oe",
        "þ": "th",
        "Þ": "th",
        "ð": "d",
        "Ð": "d",
        "ł": "l",
        "Ł": "l",
    }
)


def slug_base(name: str) -> str:
    """A gateway-valid slug from a display name: ascii, lowercase, `_` separated, letter first."""
    ascii_name = unicodedata.normalize("NFKD", name.translate(_TRANSLIT)).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "_", ascii_name.lower()).strip("_")
    if not slug or not slug[0].isalpha():
        slug = "t_" + slug if slug else "table"
    return slug[:40].rstrip("_") or "table"


def _taken_ids(base: str) -> set[str]:
    """Every existing tenant id that a candidate for ``base`` could collide with, in one query
    over our table and the gateway's (which may hold tenants created outside the web service)."""
    stem = base[: MAX_TENANT_ID - 6]  # candidates are base or base[:56-len(suffix)] + suffix
    params = {"stem": stem, "n": len(stem)}
    sql = "SELECT id FROM web.tenants WHERE left(id, :n) = :stem"
    if db.session.execute(text("SELECT to_regclass('public.tenants') IS NOT NULL")).scalar():
        sql += " UNION SELECT id FROM public.tenants WHERE left(id, :n) = :stem"
    return set(db.session.execute(text(sql), params).scalars())


def candidate_ids(name: str) -> Iterator[str]:
    base = slug_base(name)
    yield base
    for n in range(2, 10_000):
        suffix = f"_{n}"
        yield (base[: MAX_TENANT_ID - len(suffix)] + suffix)


def unique_tenant_id(name: str) -> str:
    taken = _taken_ids(slug_base(name))
    for candidate in candidate_ids(name):
        if candidate not in taken:
            return candidate
    raise RuntimeError("no free tenant id")  # pragma: no cover - 10k collisions


MAX_GATEWAY_ATTEMPTS = 5


def create_for_signup(display_name: str, *, ip: str | None = None) -> Tenant:
    """Create a tenant for a new person. Goes through the gateway's CreateTenant when configured.

    The gateway answers ALREADY_EXISTS for *any* store error, so after one we ask GetTenant
    whether the id is really taken; if it isn't, the gateway is failing and we stop instead of
    walking through thousands of suffixes. At most MAX_GATEWAY_ATTEMPTS CreateTenant calls.

    The caller owns the transaction; if the caller's commit fails after the gateway accepted the
    tenant, ``undo_gateway_tenant`` removes it again (no half-created tenants)."""
    from glyphoxa_htmx.adapters.gateway.errors import AlreadyExists, GatewayError
    from glyphoxa_htmx.adapters.gateway.errors import NotFound as GatewayNotFound

    client = gateway()
    # Named in the language they signed up in; it's theirs to rename (Settings).
    tenant_name = _("%(name)s's table", name=display_name) if display_name else _("My table")
    attempts = 0
    taken = _taken_ids(slug_base(display_name or "table"))
    for candidate in candidate_ids(display_name or "table"):
        if candidate in taken:
            continue
        if client is not None:
            if attempts >= MAX_GATEWAY_ATTEMPTS:
                break
            attempts += 1
            try:
                client.create_tenant(candidate, license_tier="shared")
            except AlreadyExists:
                try:
                    client.get_tenant(candidate)
                except GatewayNotFound:
                    raise Unavailable(
                        _("The voice service couldn't create your table right now. Please try again in a few minutes.")
                    ) from None
                except GatewayError as exc:
                    raise Unavailable(exc.message) from exc
                continue  # really taken on the gateway side (or a race): next suffix
            except GatewayError as exc:
                raise Unavailable(exc.message) from exc
        tenant = Tenant(id=candidate, name=tenant_name)
        db.session.add(tenant)
        db.session.flush()
        audit.record(
            "tenant.create",
            "tenant",
            candidate,
            tenant_id=candidate,
            ip=ip,
            after={"id": candidate, "name": tenant_name, "license_tier": "shared"},
        )
        return tenant
    raise Unavailable(_("We couldn't find a free id for your table. Please contact support."))


def undo_gateway_tenant(tenant_id: str) -> None:
    client = gateway()
    if client is not None:
        try:
            client.delete_tenant(tenant_id)
        except Exception:  # noqa: BLE001 - best effort compensation; logged by the client
            pass


def get(actor: Actor, tenant_id: str | None = None) -> Tenant:
    tenant = db.session.get(Tenant, tenant_id or actor.tenant_id)
    if tenant is None or (tenant.id != actor.tenant_id and not actor.can(Perm.MANAGE_ALL_TENANTS)):
        raise NotFound()
    return tenant


def rename(actor: Actor, name: str) -> Tenant:
    require(actor, Perm.MANAGE_TENANT)
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": _("Give your table a name.")})
    if len(name) > 80:
        raise ValidationError({"name": _("Keep it under 80 characters.")})
    tenant = get(actor)
    before = {"name": tenant.name}
    tenant.name = name
    audit.record("tenant.update", "tenant", tenant.id, actor=actor, before=before, after={"name": name})
    db.session.commit()
    return tenant


def list_all(
    actor: Actor, *, q: str = "", limit: int = 50, after: str | None = None
) -> tuple[Sequence[Row[tuple[Tenant, int]]], str | None]:
    """Super admin: every tenant with its member count (one query), by id, keyset pages
    (core/keyset.py): ``after`` is the previous page's cursor."""
    require(actor, Perm.MANAGE_ALL_TENANTS)
    from glyphoxa_htmx.models import User

    members = select(User.tenant_id, func.count().label("n")).group_by(User.tenant_id).subquery()
    stmt = select(Tenant, func.coalesce(members.c.n, 0)).outerjoin(members, members.c.tenant_id == Tenant.id)
    if q:
        stmt = stmt.where(Tenant.id.ilike(like_pattern(q)) | Tenant.name.ilike(like_pattern(q)))
    return keyset.page(stmt, ((Tenant.id, str),), after, limit, key_of=lambda r: (r[0].id,))


def set_status(actor: Actor, tenant_id: str, status: str) -> Tenant:
    require(actor, Perm.MANAGE_ALL_TENANTS)
    if status not in {"active", "suspended"}:
        raise ValidationError({"status": _("Unknown status.")})
    tenant = db.session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound()
    before = {"status": tenant.status}
    tenant.status = status
    audit.record(
        f"tenant.{'suspend' if status == 'suspended' else 'unsuspend'}",
        "tenant",
        tenant.id,
        actor=actor,
        tenant_id=tenant.id,
        before=before,
        after={"status": status},
    )
    db.session.commit()
    return tenant


LICENSE_TIERS = ("shared", "dedicated")  # the only tiers the gateway knows (contract §1)
MAX_QUOTA_HOURS = Decimal("99999999.99")  # public.tenants.monthly_session_hours is NUMERIC(10,2)


class TierChange(TypedDict):
    license_tier: str
    hours: Decimal  # 0: unlimited


def change_tier(actor: Actor, tenant_id: str, license_tier: str, hours: str) -> TierChange:
    """Super admin, billing disabled: set a table's gateway tier (``shared``: one live session,
    ``dedicated``: one per Discord server) and its monthly session-hours quota (0 = unlimited),
    through the one gateway-tier writer ``plans.push_gateway_tier`` (audited). With billing on,
    Stripe owns the tier and this is refused."""
    from glyphoxa_htmx.services import plans

    require(actor, Perm.MANAGE_ALL_TENANTS)
    tenant = get(actor, tenant_id)
    if plans.billing_enabled():
        raise ValidationError(
            {
                "license_tier": _(
                    "Billing is on: a table's tier follows its Stripe subscription, so it can't be "
                    "changed here. Change the subscription instead."
                )
            }
        )
    errors: dict[str, str] = {}
    license_tier = (license_tier or "").strip()
    if license_tier not in LICENSE_TIERS:
        errors["license_tier"] = _("Choose shared or dedicated.")
    quota = None
    try:
        quota = Decimal((hours or "0").strip() or "0")
        if not quota.is_finite() or quota < 0 or quota > MAX_QUOTA_HOURS or quota != quota.quantize(Decimal("0.01")):
            raise InvalidOperation
    except InvalidOperation:
        errors["hours"] = _("Hours per month: a number from 0 (unlimited) up to 99,999,999.99, at most two decimals.")
    if errors or quota is None:  # no quota: errors["hours"] says why
        raise ValidationError(errors)
    if gateway() is None:
        raise ValidationError({"license_tier": _("No voice gateway is connected to this server.")})
    plans.push_gateway_tier(
        tenant.id,
        license_tier,
        quota,
        action="tenant.tier_change",
        details={"reason": "operator"},
        actor=actor,
        require_gateway_tenant=True,
    )
    db.session.commit()
    return {"license_tier": license_tier, "hours": quota}


def revoke_sign_ins(actor: Actor, tenant_id: str) -> int:
    """Super admin: end every sign-in session of the table's people (except the operator's own),
    at once. The ORM UPDATE empties this process's sign-in cache (services/signin_cache.py) and,
    after the commit, every other process's through the Redis channel. Audited with the count."""
    from glyphoxa_htmx.models import LoginSession, User
    from glyphoxa_htmx.services import auth

    require(actor, Perm.MANAGE_ALL_TENANTS)
    tenant = get(actor, tenant_id)
    people = select(User.id).where(User.tenant_id == tenant.id, User.id != actor.user_id).scalar_subquery()
    ended = rowcount(
        db.session.execute(
            update(LoginSession)
            .where(LoginSession.user_id.in_(people), LoginSession.revoked_at.is_(None))
            .values(revoked_at=datetime.now(UTC), revoked_reason="revoked_by_operator")
            .execution_options(synchronize_session=False)
        )
    )
    audit.record(
        "tenant.revoke_sign_ins", "tenant", tenant.id, actor=actor, tenant_id=tenant.id, details={"sessions": ended}
    )
    auth.track_active_users(tenant.id)
    db.session.commit()
    return ended


# ---- Discord connection (guilds and bot token live on the gateway) ---------------------------


def discord_connection(actor: Actor) -> dict[str, Any]:
    """The tenant's Discord servers as the gateway knows them (quick read), or why unknown."""
    from glyphoxa_htmx.adapters.gateway.errors import GatewayError
    from glyphoxa_htmx.adapters.gateway.errors import NotFound as GatewayNotFound

    require(actor, Perm.VIEW_SESSIONS)
    client = gateway()
    if client is None:
        return {"available": False, "guild_ids": [], "note": _("No voice gateway is connected to this server.")}
    try:
        info = client.get_tenant(actor.tenant_id, quick=True)
    except GatewayNotFound:
        return {
            "available": False,
            "guild_ids": [],
            "note": _("Your table isn't registered with the voice service yet."),
        }
    except GatewayError as exc:
        return {"available": False, "guild_ids": [], "note": exc.message}
    return {"available": True, "guild_ids": list(info.guild_ids or []), "note": ""}


# ---- Discord server ownership -----------------------------------------------------------------
#
# A server belongs to at most one table (web.guild_claims, primary key guild_id). A table may add
# a server only when the signed-in person's Discord grant lists it with Manage Server, read at a
# Discord sign-in no older than DISCORD_GUILDS_MAX_AGE (we keep no Discord token to re-read it),
# and no other table — ours or the gateway's public.tenants.guild_ids — has it.

DISCORD_GUILDS_MAX_AGE = timedelta(hours=1)
TAKEN_MESSAGE = lazy_gettext(
    "The Discord server %(gid)s is already connected to another table. If it's yours, contact "
    "support to have it moved to this table."
)


def _gateway_tables() -> bool:
    return bool(db.session.execute(text("SELECT to_regclass('public.tenants') IS NOT NULL")).scalar())


def guild_holders(guild_ids: list[str]) -> dict[str, dict[str, Any]]:
    """For each server id: the table that claims it (``claim``) and the tables whose gateway
    list names it (``gateway``). Two queries, whatever the number of ids."""
    out: dict[str, dict[str, Any]] = {gid: {"claim": None, "gateway": set()} for gid in guild_ids}
    if not guild_ids:
        return out
    for claim in db.session.execute(select(GuildClaim).where(GuildClaim.guild_id.in_(guild_ids))).scalars():
        out[claim.guild_id]["claim"] = claim.tenant_id
    if _gateway_tables():
        rows = db.session.execute(
            text(
                "SELECT t.id, g FROM public.tenants t, unnest(coalesce(t.guild_ids, '{}'::text[])) g "
                "WHERE g = ANY(:ids)"
            ),
            {"ids": list(guild_ids)},
        )
        for tenant_id, gid in rows:
            out[gid]["gateway"].add(tenant_id)
    return out


def guild_owner(guild_id: str) -> str | None:
    """The one table a server belongs to: its claim, else the only table the gateway lists it
    for. None when nobody has it, or when several gateway tables list it and nobody claimed it."""
    holders = guild_holders([guild_id])[guild_id]
    claim: str | None = holders["claim"]
    if claim:
        return claim
    return next(iter(holders["gateway"])) if len(holders["gateway"]) == 1 else None


def manageable_guilds(user: User) -> tuple[set[str], datetime | None]:
    """The server ids the user may manage (Manage Server, per their last Discord sign-in) and
    when that list was read (None: never, e.g. signed in without Discord)."""
    ids = {
        str(gd.get("id"))
        for gd in (user.discord_guilds or [])
        if isinstance(gd, dict) and gd.get("id") and gd.get("manage") is True
    }
    return ids, user.discord_guilds_at


def _check_guild_ownership(actor: Actor, cleaned: list[str], kept: set[str]) -> None:
    """Refuse servers the person doesn't manage (new ones only) and servers of another table."""
    from glyphoxa_htmx.models import User

    added = [gid for gid in cleaned if gid not in kept]
    if added:
        user = db.session.get_one(User, actor.user_id)  # the signed-in actor's own row
        manageable, fetched_at = manageable_guilds(user)
        if fetched_at is None or datetime.now(UTC) - fetched_at > DISCORD_GUILDS_MAX_AGE:
            if fetched_at:
                message = _(
                    "To add a Discord server we check that you manage it, and your list of servers is "
                    "more than an hour old. Sign in with Discord again, then save."
                )
            else:
                message = _(
                    "To add a Discord server we check that you manage it, and your list of servers isn't "
                    "known (you didn't sign in with Discord). Sign in with Discord, then save."
                )
            raise ValidationError({"guild_ids": message, "reconsent": "1"})
        unmanaged = [gid for gid in added if gid not in manageable]
        if unmanaged:
            raise ValidationError(
                {
                    "guild_ids": _(
                        "You don't have the Manage Server permission on the Discord server %(gid)s, so it "
                        "can't be added to your table. Ask someone who manages it (or its owner) to add it.",
                        gid=unmanaged[0],
                    )
                }
            )
    for gid, holders in guild_holders(cleaned).items():
        others = ({holders["claim"]} if holders["claim"] else set()) | holders["gateway"]
        others.discard(actor.tenant_id)
        if holders["claim"] == actor.tenant_id:
            others = set()  # claimed by us: a stale copy in another gateway list doesn't take it away
        if others:
            raise ValidationError({"guild_ids": TAKEN_MESSAGE % {"gid": gid}})


def _claim_guilds(actor: Actor, guild_ids: list[str]) -> None:
    """Claim the servers for the actor's table (in the caller's transaction) and release the ones
    it no longer lists. A concurrent claim by another table wins or loses on the primary key."""
    from sqlalchemy import delete
    from sqlalchemy.dialects.postgresql import insert

    stmt = insert(GuildClaim).values(
        [{"guild_id": gid, "tenant_id": actor.tenant_id, "claimed_by": actor.user_id} for gid in guild_ids]
    )
    upsert = stmt.on_conflict_do_update(
        index_elements=[GuildClaim.guild_id],
        set_={"updated_at": func.now()},
        where=GuildClaim.tenant_id == stmt.excluded.tenant_id,
    ).returning(GuildClaim.guild_id)
    mine = set(db.session.execute(upsert).scalars())
    lost = [gid for gid in guild_ids if gid not in mine]
    if lost:
        db.session.rollback()
        raise ValidationError({"guild_ids": TAKEN_MESSAGE % {"gid": lost[0]}})
    db.session.execute(
        delete(GuildClaim).where(GuildClaim.tenant_id == actor.tenant_id, GuildClaim.guild_id.not_in(guild_ids))
    )


def update_discord(actor: Actor, guild_ids: list[str], bot_token: str | None) -> list[str]:
    """Set the tenant's Discord servers and, optionally, its bot token, through UpdateTenant.

    A server new to the table must be one the person manages on Discord (a recent Discord
    sign-in says so), and no server may belong to another table. The token goes to the gateway
    in plaintext over gRPC (it encrypts it with Vault itself, see the gateway contract §4) and is
    never stored, logged or shown by us."""
    from glyphoxa_htmx.adapters.gateway.errors import GatewayError

    require(actor, Perm.MANAGE_TENANT)
    cleaned = []
    for raw in guild_ids:
        gid = raw.strip()
        if not gid:
            continue
        if not SNOWFLAKE_RE.match(gid):
            raise ValidationError(
                {"guild_ids": _("“%(value)s” isn't a Discord server id (17–20 digits).", value=gid[:30])}
            )
        if gid not in cleaned:
            cleaned.append(gid)
    if not cleaned:
        raise ValidationError(
            {"guild_ids": _("Add at least one Discord server (the voice service can't clear the list).")}
        )
    if len(cleaned) > 50:
        raise ValidationError({"guild_ids": _("At most 50 servers.")})
    token = (bot_token or "").strip()
    if token and (len(token) < 50 or len(token) > 100 or " " in token):
        raise ValidationError(
            {
                "bot_token": _(
                    "That doesn't look like a Discord bot token. Copy it again from the "
                    "Developer Portal (Bot → Reset Token)."
                )
            }
        )
    client = gateway()
    if client is None:
        raise ValidationError({"": _("No voice gateway is connected to this server.")})
    before = discord_connection(actor)["guild_ids"]
    claimed = set(
        db.session.execute(select(GuildClaim.guild_id).where(GuildClaim.tenant_id == actor.tenant_id)).scalars()
    )
    _check_guild_ownership(actor, cleaned, kept=set(before) | claimed)
    _claim_guilds(actor, cleaned)  # held (row locks) until the commit below, after the gateway said yes
    try:
        client.update_tenant(actor.tenant_id, guild_ids=cleaned, bot_token=token or None)
    except GatewayError as exc:
        db.session.rollback()
        raise ValidationError({"": exc.message}) from exc
    audit.record(
        "tenant.discord_update",
        "tenant",
        actor.tenant_id,
        actor=actor,
        before={"guild_ids": before},
        after={"guild_ids": cleaned},
        details={"bot_token_changed": bool(token)},
    )
    db.session.commit()
    return cleaned


# ---- operators: which table a Discord server belongs to -----------------------------------------


def guild_lookup(actor: Actor, guild_id: str) -> dict[str, Any] | None:
    """Operator view of one server: the claiming table and the tables the gateway lists it for.
    None for an empty query; ValidationError for something that isn't a server id."""
    require(actor, Perm.MANAGE_ALL_TENANTS)
    gid = (guild_id or "").strip()
    if not gid:
        return None
    if not SNOWFLAKE_RE.match(gid):
        raise ValidationError({"guild_id": _("A Discord server id is 17 to 20 digits.")})
    holders = guild_holders([gid])[gid]
    return {
        "guild_id": gid,
        "claim": holders["claim"],
        "gateway": sorted(holders["gateway"]),
        "owner": guild_owner(gid),
    }


def reassign_guild(actor: Actor, guild_id: str, tenant_id: str) -> dict[str, Any]:
    """Operators: give a Discord server to ``tenant_id``. Claims it for that table, adds it to the
    table's gateway list and removes it from every other table's gateway list (the gateway can't
    empty a list: a table whose only server it was keeps listing it there, but sessions are only
    started by its owner, per the claim). Audited in the new table's log and each previous one's."""
    from sqlalchemy.dialects.postgresql import insert

    from glyphoxa_htmx.adapters.gateway.errors import GatewayError
    from glyphoxa_htmx.adapters.gateway.errors import NotFound as GatewayNotFound

    require(actor, Perm.MANAGE_ALL_TENANTS)
    gid, target = (guild_id or "").strip(), (tenant_id or "").strip()
    errors = {}
    if not SNOWFLAKE_RE.match(gid):
        errors["guild_id"] = _("A Discord server id is 17 to 20 digits.")
    if db.session.get(Tenant, target) is None:
        errors["tenant_id"] = _("No table with that id.")
    if errors:
        raise ValidationError(errors)
    client = gateway()
    if client is None:
        raise ValidationError({"": _("No voice gateway is connected to this server.")})
    holders = guild_holders([gid])[gid]
    previous = sorted(({holders["claim"]} if holders["claim"] else set()) | holders["gateway"])
    stmt = insert(GuildClaim).values(guild_id=gid, tenant_id=target, claimed_by=actor.user_id)
    db.session.execute(
        stmt.on_conflict_do_update(
            index_elements=[GuildClaim.guild_id],
            set_={"tenant_id": target, "claimed_by": actor.user_id, "updated_at": func.now()},
        )
    )
    still_listed = []
    try:
        try:
            info = client.get_tenant(target)
        except GatewayNotFound:
            db.session.rollback()
            raise ValidationError({"tenant_id": _("That table isn't registered with the voice service.")}) from None
        if gid not in (info.guild_ids or []):
            client.update_tenant(target, guild_ids=[*(info.guild_ids or []), gid])
        for other in previous:
            if other == target:
                continue
            try:
                other_ids = list(client.get_tenant(other).guild_ids or [])
            except GatewayNotFound:
                continue
            remaining = [x for x in other_ids if x != gid]
            if remaining == other_ids:
                continue
            if remaining:
                client.update_tenant(other, guild_ids=remaining)
            else:
                still_listed.append(other)
    except GatewayError as exc:
        db.session.rollback()
        raise ValidationError(
            {"": _("The voice service refused: %(reason)s Try again; nothing was lost.", reason=exc.message)}
        ) from exc
    details = {"still_listed_on_gateway": still_listed} if still_listed else None
    for tid in sorted({target, *previous}):
        audit.record(
            "guild.reassign",
            "guild",
            gid,
            actor=actor,
            tenant_id=tid,
            before={"tenants": previous},
            after={"tenant": target},
            details=details,
        )
    db.session.commit()
    return {"guild_id": gid, "tenant_id": target, "previous": previous, "still_listed": still_listed}

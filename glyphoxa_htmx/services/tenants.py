"""Tenants: slug ids the gateway accepts, creation through the gateway when one is configured."""

from __future__ import annotations

import re
import unicodedata

from sqlalchemy import select, text

# The gateway's tenant-id rule lives in one place, beside the gateway client.
from glyphoxa_htmx.adapters.gateway.tenant_id import MAX_TENANT_ID_LENGTH as MAX_TENANT_ID
from glyphoxa_htmx.adapters.gateway.tenant_id import is_valid_tenant_id as valid_tenant_id  # noqa: F401
from glyphoxa_htmx.core import audit
from glyphoxa_htmx.core.authz import Actor, Perm, require
from glyphoxa_htmx.core.deps import gateway
from glyphoxa_htmx.core.errors import NotFound, Unavailable, ValidationError
from glyphoxa_htmx.core.parse import SNOWFLAKE_RE, like_pattern
from glyphoxa_htmx.extensions import db
from glyphoxa_htmx.models import Tenant


_TRANSLIT = str.maketrans({"æ": "ae", "Æ": "ae", "ø": "o", "Ø": "o", "ß": "ss", "œ": "oe", "Œ": "oe",
                           "þ": "th", "Þ": "th", "ð": "d", "Ð": "d", "ł": "l", "Ł": "l"})


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


def candidate_ids(name: str):
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
    tenant_name = f"{display_name}'s table" if display_name else "My table"
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
                    raise Unavailable("The voice service couldn't create your table right now. Please try again "
                                      "in a few minutes.") from None
                except GatewayError as exc:
                    raise Unavailable(exc.message) from exc
                continue  # really taken on the gateway side (or a race): next suffix
            except GatewayError as exc:
                raise Unavailable(exc.message) from exc
        tenant = Tenant(id=candidate, name=tenant_name)
        db.session.add(tenant)
        db.session.flush()
        audit.record("tenant.create", "tenant", candidate, tenant_id=candidate, ip=ip,
                     after={"id": candidate, "name": tenant_name, "license_tier": "shared"})
        return tenant
    raise Unavailable("We couldn't find a free id for your table. Please contact support.")


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
        raise ValidationError({"name": "Give your table a name."})
    if len(name) > 80:
        raise ValidationError({"name": "Keep it under 80 characters."})
    tenant = get(actor)
    before = {"name": tenant.name}
    tenant.name = name
    audit.record("tenant.update", "tenant", tenant.id, actor=actor, before=before, after={"name": name})
    db.session.commit()
    return tenant


def list_all(actor: Actor, *, q: str = "", limit: int = 50, after: str | None = None):
    """Super admin: every tenant with its member count (one query)."""
    require(actor, Perm.MANAGE_ALL_TENANTS)
    from sqlalchemy import func

    from glyphoxa_htmx.models import User

    members = (
        select(User.tenant_id, func.count().label("n")).group_by(User.tenant_id).subquery()
    )
    stmt = (
        select(Tenant, func.coalesce(members.c.n, 0))
        .outerjoin(members, members.c.tenant_id == Tenant.id)
        .order_by(Tenant.id)
        .limit(limit + 1)
    )
    if q:
        stmt = stmt.where(Tenant.id.ilike(like_pattern(q)) | Tenant.name.ilike(like_pattern(q)))
    if after:
        stmt = stmt.where(Tenant.id > after)
    rows = db.session.execute(stmt).all()
    return rows[:limit], (rows[limit - 1][0].id if len(rows) > limit else None)


def set_status(actor: Actor, tenant_id: str, status: str) -> Tenant:
    require(actor, Perm.MANAGE_ALL_TENANTS)
    if status not in {"active", "suspended"}:
        raise ValidationError({"status": "Unknown status."})
    tenant = db.session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound()
    before = {"status": tenant.status}
    tenant.status = status
    audit.record(f"tenant.{'suspend' if status == 'suspended' else 'unsuspend'}", "tenant", tenant.id,
                 actor=actor, tenant_id=tenant.id, before=before, after={"status": status})
    db.session.commit()
    return tenant


# ---- Discord connection (guilds and bot token live on the gateway) ---------------------------

def discord_connection(actor: Actor) -> dict:
    """The tenant's Discord servers as the gateway knows them (quick read), or why unknown."""
    from glyphoxa_htmx.adapters.gateway.errors import GatewayError, NotFound as GatewayNotFound

    require(actor, Perm.VIEW_SESSIONS)
    client = gateway()
    if client is None:
        return {"available": False, "guild_ids": [], "note": "No voice gateway is connected to this server."}
    try:
        info = client.get_tenant(actor.tenant_id, quick=True)
    except GatewayNotFound:
        return {"available": False, "guild_ids": [],
                "note": "Your table isn't registered with the voice service yet."}
    except GatewayError as exc:
        return {"available": False, "guild_ids": [], "note": exc.message}
    return {"available": True, "guild_ids": list(info.guild_ids or []), "note": ""}


def update_discord(actor: Actor, guild_ids: list[str], bot_token: str | None) -> list[str]:
    """Set the tenant's Discord servers and, optionally, its bot token, through UpdateTenant.

    The token goes to the gateway in plaintext over gRPC (it encrypts it with Vault itself, see
    the gateway contract §4) and is never stored, logged or shown by us."""
    from glyphoxa_htmx.adapters.gateway.errors import GatewayError

    require(actor, Perm.MANAGE_TENANT)
    cleaned = []
    for raw in guild_ids:
        gid = raw.strip()
        if not gid:
            continue
        if not SNOWFLAKE_RE.match(gid):
            raise ValidationError({"guild_ids": f"“{gid[:30]}” isn't a Discord server id (17–20 digits)."})
        if gid not in cleaned:
            cleaned.append(gid)
    if not cleaned:
        raise ValidationError({"guild_ids": "Add at least one Discord server (the voice service can't clear the list)."})
    if len(cleaned) > 50:
        raise ValidationError({"guild_ids": "At most 50 servers."})
    token = (bot_token or "").strip()
    if token and (len(token) < 50 or len(token) > 100 or " " in token):
        raise ValidationError({"bot_token": "That doesn't look like a Discord bot token. Copy it again from the "
                                            "Developer Portal (Bot → Reset Token)."})
    client = gateway()
    if client is None:
        raise ValidationError({"": "No voice gateway is connected to this server."})
    before = discord_connection(actor)["guild_ids"]
    try:
        client.update_tenant(actor.tenant_id, guild_ids=cleaned, bot_token=token or None)
    except GatewayError as exc:
        raise ValidationError({"": exc.message}) from exc
    audit.record("tenant.discord_update", "tenant", actor.tenant_id, actor=actor,
                 before={"guild_ids": before}, after={"guild_ids": cleaned},
                 details={"bot_token_changed": bool(token)})
    db.session.commit()
    return cleaned

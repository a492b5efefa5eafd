"""Deleting a table (issue 12, the owner's danger zone).

Order: typed confirmation → ``DeleteTenant`` on the gateway → our rows, in one transaction. If
the gateway refuses or can't be reached nothing of ours is deleted and the owner is told. The
gateway's own data (``public.sessions``, usage, NPC definitions, ``tenant_<id>``) is the gateway's:
its DeleteTenant decides what happens to it; we never touch schema ``public``.

Kept on purpose: ``web.audit_log`` (the record that the table was deleted, and by whom) and
``web.billing_events`` (Stripe's webhook idempotency ledger: forgetting an event would let a
replay apply it again).
"""

from __future__ import annotations

import logging
import tempfile
from typing import Any

from sqlalchemy import delete, select, update

from glyphoxa_htmx.core import audit
from glyphoxa_htmx.core.authz import Actor, Perm, Role, require
from glyphoxa_htmx.core.dbconn import rowcount
from glyphoxa_htmx.core.deps import gateway
from glyphoxa_htmx.core.errors import Unavailable, ValidationError
from glyphoxa_htmx.core.i18n import _
from glyphoxa_htmx.extensions import db
from glyphoxa_htmx.models import (
    Campaign,
    CampaignTombstone,
    GuildClaim,
    Invoice,
    LoginSession,
    NpcPosition,
    ProviderConfig,
    Subscription,
    Tenant,
    TenantInvitation,
    User,
    VoiceSample,
)
from glyphoxa_htmx.models.support import SupportTicket
from glyphoxa_htmx.services import plans

log = logging.getLogger(__name__)

# Every web table that holds a tenant's rows (by ``tenant_id``), deleted with the tenant.
# Support replies go with their ticket (ON DELETE CASCADE). Voice samples are not here: their
# stored objects must go first (see delete_tenant).
TENANT_ROWS = (
    Campaign,
    CampaignTombstone,
    NpcPosition,
    GuildClaim,
    ProviderConfig,
    TenantInvitation,
    Invoice,
    Subscription,
    SupportTicket,
)


def delete_tenant(actor: Actor, confirm_name: str, *, ip: str | None = None) -> dict[str, int]:
    """Delete the actor's table. Returns what was deleted (counts). Commits."""
    require(actor, Perm.MANAGE_TENANT)
    tenant = db.session.get(Tenant, actor.tenant_id)
    if tenant is None:
        raise ValidationError({"confirm_name": _("This table no longer exists.")})
    if (confirm_name or "").strip() != tenant.name:
        raise ValidationError(
            {"confirm_name": _("Type the table's name exactly (“%(name)s”) to confirm.", name=tenant.name)}
        )
    sub = db.session.execute(select(Subscription).where(Subscription.tenant_id == tenant.id)).scalar_one_or_none()
    if (
        plans.billing_enabled()
        and sub is not None
        and sub.stripe_subscription_id
        and sub.status in plans.SERVED_STATUSES
        and sub.cancel_at is None
    ):
        raise ValidationError(
            {
                "confirm_name": _(
                    "Your paid plan is still running. Cancel it on the Billing page "
                    "first, so you aren't charged for a deleted table."
                )
            }
        )
    _delete_on_gateway(tenant.id)
    # The gateway deleted its tenant: now ours, all at once.
    counts: dict[str, int] = {}
    member_ids = list(db.session.execute(select(User.id).where(User.tenant_id == tenant.id)).scalars())
    counts["sign_ins_revoked"] = (
        rowcount(
            db.session.execute(
                update(LoginSession)
                .where(LoginSession.user_id.in_(member_ids), LoginSession.revoked_at.is_(None))
                .values(revoked_at=db.func.now(), revoked_reason="table_deleted")
                .execution_options(synchronize_session=False)
            )
        )
        if member_ids
        else 0
    )
    # Operators keep their accounts (they belong to the platform); everyone else goes with the table.
    db.session.execute(
        update(User)
        .where(User.tenant_id == tenant.id, User.role == Role.SUPER_ADMIN.value)
        .values(tenant_id=None)
        .execution_options(synchronize_session=False)
    )
    counts["users"] = rowcount(
        db.session.execute(delete(User).where(User.tenant_id == tenant.id).execution_options(synchronize_session=False))
    )
    for model in TENANT_ROWS:
        counts[model.__tablename__] = rowcount(
            db.session.execute(
                delete(model).where(model.tenant_id == tenant.id).execution_options(synchronize_session=False)
            )
        )
    # Voice samples: hidden now, in this transaction; their objects and then rows go right after
    # the commit (voice_samples.cleanup: object first, then row). A storage failure leaves the row
    # marked for `glyphoxa-web voice-samples-cleanup`, never an object without its row.
    counts["voice_samples"] = rowcount(
        db.session.execute(
            update(VoiceSample)
            .where(VoiceSample.tenant_id == tenant.id, VoiceSample.deleting_at.is_(None))
            .values(deleting_at=db.func.now())
            .execution_options(synchronize_session=False)
        )
    )
    name = tenant.name
    db.session.execute(delete(Tenant).where(Tenant.id == tenant.id).execution_options(synchronize_session=False))
    audit.record(
        "tenant.delete",
        "tenant",
        actor.tenant_id,
        actor=actor,
        tenant_id=actor.tenant_id,
        ip=ip,
        before={"id": actor.tenant_id, "name": name},
        details={"deleted": counts},
    )
    db.session.commit()
    if db.session.execute(select(VoiceSample.id).where(VoiceSample.tenant_id == actor.tenant_id).limit(1)).first():
        from datetime import timedelta

        from glyphoxa_htmx.services import voice_samples

        voice_samples.cleanup(tenant_id=actor.tenant_id, grace=timedelta(0))
    log.info("tenant deleted", extra={"tenant_id": actor.tenant_id, "user_id": actor.user_id})
    return counts


def _delete_on_gateway(tenant_id: str) -> None:
    from glyphoxa_htmx.adapters.gateway.errors import GatewayError
    from glyphoxa_htmx.adapters.gateway.errors import NotFound as GatewayNotFound

    client = gateway()
    if client is None:
        raise Unavailable(
            _(
                "No voice gateway is connected, so your table can't be deleted there. Nothing was deleted; try again later."
            )
        )
    try:
        client.delete_tenant(tenant_id)
    except GatewayNotFound:
        return  # already gone on the gateway: ours can follow
    except GatewayError as exc:
        raise Unavailable(
            _(
                "The voice gateway didn't delete your table (%(reason)s). Nothing was deleted; try again later.",
                reason=exc.message,
            )
        ) from exc


# --------------------------------------------------------------------------- export before delete


def export_zip(actor: Actor) -> tempfile.SpooledTemporaryFile[bytes]:
    """A zip of the table (a spooled temporary file, rewound): campaigns (ours, JSON), NPCs as the
    gateway stores them (``public.npc_definitions`` rows, every column), transcripts (.md, one per
    session) and knowledge (the memory schema's entities and relationships, JSON)."""
    import json
    import zipfile

    from sqlalchemy import text

    from glyphoxa_htmx.models import GatewaySession
    from glyphoxa_htmx.services import knowledge, transcripts

    require(actor, Perm.MANAGE_TENANT)
    tenant = db.session.get(Tenant, actor.tenant_id)

    def rows(sql: str, **params: object) -> list[dict[str, Any]]:
        return [r[0] for r in db.session.execute(text(sql), params)]

    out = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:

        def put(name: str, value: object) -> None:
            zf.writestr(name, json.dumps(value, indent=2, default=str, ensure_ascii=False))

        put("table.json", {"id": tenant.id if tenant else actor.tenant_id, "name": tenant.name if tenant else ""})
        put(
            "campaigns.json",
            rows("SELECT row_to_json(c) FROM web.campaigns c WHERE tenant_id = :t ORDER BY name", t=actor.tenant_id),
        )
        put(
            "npcs.json",
            rows(
                "SELECT row_to_json(n) FROM public.npc_definitions n WHERE tenant_id = :t ORDER BY name",
                t=actor.tenant_id,
            ),
        )
        names = dict(
            db.session.execute(select(Campaign.id, Campaign.name).where(Campaign.tenant_id == actor.tenant_id))
            .tuples()
            .all()
        )
        sessions = (
            db.session.execute(
                select(GatewaySession)
                .where(GatewaySession.tenant_id == actor.tenant_id)
                .order_by(GatewaySession.started_at)
            )
            .scalars()
            .all()
        )
        for session in sessions:
            name = names.get(session.campaign_id) or session.campaign_id or "Default campaign"
            body = "".join(transcripts.as_markdown(session, name, transcripts.iter_lines(actor, session)))
            zf.writestr(f"transcripts/{session.started_at:%Y-%m-%d}-{session.id}.md", body)
        tables = knowledge._tables(actor)
        if tables is not None:
            entities, relationships = tables
            put(
                "knowledge.json",
                {
                    "entities": rows(f"SELECT row_to_json(e) FROM {entities} e ORDER BY id"),
                    "relationships": rows(f"SELECT row_to_json(r) FROM {relationships} r"),
                },
            )
        else:
            put("knowledge.json", {"entities": [], "relationships": []})
    audit.record("tenant.export", "tenant", actor.tenant_id, actor=actor, details={"sessions": len(sessions)})
    db.session.commit()
    out.seek(0)
    return out

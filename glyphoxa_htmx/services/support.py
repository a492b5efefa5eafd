"""Support tickets (plan Phase 3): a table's members file and follow their tickets; operators
answer local ones on the admin pages. With Freshdesk configured a ticket is created there first
(nothing is stored when Freshdesk refuses), and its status and public replies are synced each
time the ticket is opened. Tenant-scoped: another table's ticket is a 404."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TypedDict

from flask import current_app
from sqlalchemy import Select, select, text

from glyphoxa_htmx.adapters.support import Freshdesk, SupportUnavailable
from glyphoxa_htmx.core import audit, keyset
from glyphoxa_htmx.core.authz import Actor, Perm, own, require
from glyphoxa_htmx.core.errors import NotFound, ValidationError
from glyphoxa_htmx.core.i18n import _, format_number, lazy_gettext
from glyphoxa_htmx.extensions import db
from glyphoxa_htmx.models import User
from glyphoxa_htmx.models.support import SupportReply, SupportTicket

CATEGORIES = {
    "question": lazy_gettext("A question"),
    "bug": lazy_gettext("Something is broken"),
    "session": lazy_gettext("Trouble in a voice session"),
    "billing": lazy_gettext("Billing"),
}
STATUSES = ("open", "pending", "resolved", "closed")
# What each status is called on screen (the stored value stays the English key).
STATUS_LABELS = {
    "open": lazy_gettext("open"),
    "pending": lazy_gettext("pending"),
    "resolved": lazy_gettext("resolved"),
    "closed": lazy_gettext("closed"),
}
PAGE = 25
MAX_SUBJECT, MAX_BODY = 200, 10_000


def _desk() -> Freshdesk | None:
    desk: Freshdesk | None = current_app.extensions.get("glyphoxa.support")
    return desk


class _TicketFields(TypedDict):
    subject: str
    body: str
    category: str
    session_id: str | None


class TicketView(TypedDict):
    """A ticket page: the ticket, its replies, and a note when the support desk couldn't be read."""

    ticket: SupportTicket
    replies: list[SupportReply]
    note: str | None


def _clean(form: Mapping[str, str]) -> _TicketFields:
    subject = (form.get("subject") or "").strip()
    body = (form.get("body") or "").strip()
    category = (form.get("category") or "").strip()
    session_id = (form.get("session_id") or "").strip() or None
    errors = {}
    if not subject:
        errors["subject"] = _("Give the ticket a subject.")
    elif len(subject) > MAX_SUBJECT:
        errors["subject"] = _("Keep the subject under %(n)s characters.", n=format_number(MAX_SUBJECT))
    if not body:
        errors["body"] = _("Tell us what happened.")
    elif len(body) > MAX_BODY:
        errors["body"] = _("Keep it under %(n)s characters.", n=format_number(MAX_BODY))
    if category not in CATEGORIES:
        errors["category"] = _("Choose what this is about.")
    if errors:
        raise ValidationError(errors)
    return {"subject": subject, "body": body, "category": category, "session_id": session_id}


def _check_session(actor: Actor, session_id: str | None) -> None:
    if not session_id:
        return
    found = (
        db.session.execute(
            text("SELECT 1 FROM public.sessions WHERE id = :id AND tenant_id = :t"),
            {"id": session_id, "t": actor.tenant_id},
        ).first()
        if db.session.execute(text("SELECT to_regclass('public.sessions') IS NOT NULL")).scalar()
        else None
    )
    if not found:
        raise ValidationError({"session_id": _("That isn't one of your table's sessions.")})


def create(actor: Actor, form: Mapping[str, str]) -> SupportTicket:
    require(actor, Perm.VIEW_SESSIONS)
    if not actor.tenant_id:
        raise ValidationError({"": _("Tickets belong to a table; you aren't in one.")})
    data = _clean(form)
    _check_session(actor, data["session_id"])
    desk = _desk()
    ticket = SupportTicket(
        tenant_id=actor.tenant_id, user_id=actor.user_id, **data, backend=desk.name if desk else "local"
    )
    if desk is not None:
        user = db.session.get(User, actor.user_id)
        try:
            ticket.external_id = desk.create(
                subject=data["subject"],
                body=data["body"],
                email=user.email if user else None,
                name=user.name if user else "",
                category=data["category"],
                tenant_id=actor.tenant_id,
                session_id=data["session_id"],
            )
        except SupportUnavailable as exc:
            raise ValidationError(
                {"": _("%(reason)s Your ticket wasn't sent; please try again in a few minutes.", reason=exc)}
            ) from exc
        ticket.synced_at = datetime.now(UTC)
    db.session.add(ticket)
    db.session.flush()
    audit.record(
        "support.create",
        "support_ticket",
        ticket.id,
        actor=actor,
        after={"subject": ticket.subject, "category": ticket.category, "session_id": ticket.session_id},
    )
    db.session.commit()
    return ticket


def _page(stmt: Select[tuple[SupportTicket]], after: str | None) -> tuple[list[SupportTicket], str | None]:
    """Newest first, keyset pages through core/keyset.py (a cursor that doesn't parse: page one)."""
    rows, cursor = keyset.page(
        stmt,
        ((SupportTicket.created_at, datetime.fromisoformat), (SupportTicket.id, str)),
        after,
        PAGE,
        key_of=lambda r: (r[0].created_at, r[0].id),
        descending=True,
    )
    return [r[0] for r in rows], cursor


def list_for_tenant(actor: Actor, after: str | None = None) -> tuple[list[SupportTicket], str | None]:
    require(actor, Perm.VIEW_SESSIONS)
    return _page(select(SupportTicket).where(SupportTicket.tenant_id == actor.tenant_id), after)


def list_all(actor: Actor, *, status: str = "", after: str | None = None) -> tuple[list[SupportTicket], str | None]:
    require(actor, Perm.MANAGE_ALL_TENANTS)
    stmt = select(SupportTicket)
    if status in STATUSES:
        stmt = stmt.where(SupportTicket.status == status)
    return _page(stmt, after)


def _replies(ticket: SupportTicket) -> list[SupportReply]:
    return list(
        db.session.execute(
            select(SupportReply)
            .where(SupportReply.ticket_id == ticket.id)
            .order_by(SupportReply.created_at, SupportReply.id)
        ).scalars()
    )


def _sync(ticket: SupportTicket) -> str | None:
    """Freshdesk's status and public replies into our copy; a note when it can't be reached."""
    desk = _desk()
    if ticket.backend != "freshdesk" or desk is None or not ticket.external_id:
        return None
    try:
        status = desk.status(ticket.external_id)
        remote = desk.conversations(ticket.external_id)
    except SupportUnavailable as exc:
        return _("%(reason)s Showing what we had last.", reason=exc)
    known = {r.external_id for r in _replies(ticket) if r.external_id}
    for r in remote:
        if r.external_id in known:
            continue
        db.session.add(
            SupportReply(
                ticket_id=ticket.id,
                from_support=r.from_support,
                body=r.body,
                author="Support" if r.from_support else "",
                external_id=r.external_id,
            )
        )
    if status != ticket.status:
        ticket.status = status
        ticket.updated_at = datetime.now(UTC)
    ticket.synced_at = datetime.now(UTC)
    db.session.commit()
    return None


def get(actor: Actor, ticket_id: str) -> TicketView:
    ticket = own(actor, db.session.get(SupportTicket, ticket_id))
    require(actor, Perm.VIEW_SESSIONS)
    note = _sync(ticket)
    return {"ticket": ticket, "replies": _replies(ticket), "note": note}


def _add_reply(actor: Actor, ticket: SupportTicket, body: str, *, from_support: bool) -> SupportReply:
    body = (body or "").strip()
    if not body:
        raise ValidationError({"body": _("Write a reply first.")})
    if len(body) > MAX_BODY:
        raise ValidationError({"body": _("Keep it under %(n)s characters.", n=format_number(MAX_BODY))})
    external_id = None
    desk = _desk()
    if ticket.backend == "freshdesk" and desk is not None and ticket.external_id:
        try:
            external_id = desk.reply(ticket.external_id, body) or None
        except SupportUnavailable as exc:
            raise ValidationError({"": _("%(reason)s Your reply wasn't sent; please try again.", reason=exc)}) from exc
    reply = SupportReply(
        ticket_id=ticket.id,
        user_id=actor.user_id,
        from_support=from_support,
        body=body,
        author=actor.name or "",
        external_id=external_id,
    )
    db.session.add(reply)
    return reply


def reply(actor: Actor, ticket_id: str, body: str) -> SupportTicket:
    ticket = own(actor, db.session.get(SupportTicket, ticket_id))
    require(actor, Perm.VIEW_SESSIONS)
    _add_reply(actor, ticket, body, from_support=False)
    before = ticket.status
    if ticket.status in ("resolved", "closed", "pending"):
        ticket.status = "open"  # the customer wrote again: it needs an answer
    ticket.updated_at = datetime.now(UTC)
    audit.record(
        "support.reply",
        "support_ticket",
        ticket.id,
        actor=actor,
        before={"status": before},
        after={"status": ticket.status},
    )
    db.session.commit()
    return ticket


def admin_get(actor: Actor, ticket_id: str) -> TicketView:
    require(actor, Perm.MANAGE_ALL_TENANTS)
    ticket = db.session.get(SupportTicket, ticket_id)
    if ticket is None:
        raise NotFound()
    note = _sync(ticket)
    return {"ticket": ticket, "replies": _replies(ticket), "note": note}


def admin_answer(actor: Actor, ticket_id: str, body: str, status: str) -> SupportTicket:
    """An operator answers a local ticket (Freshdesk tickets are answered in Freshdesk)."""
    require(actor, Perm.MANAGE_ALL_TENANTS)
    ticket = db.session.get(SupportTicket, ticket_id)
    if ticket is None:
        raise NotFound()
    if ticket.backend != "local":
        raise ValidationError({"": _("This ticket lives in Freshdesk: answer it there (its replies show up here).")})
    if status not in STATUSES:
        raise ValidationError({"status": _("Choose a status.")})
    if (body or "").strip():
        _add_reply(actor, ticket, body, from_support=True)
    elif status == ticket.status:
        raise ValidationError({"body": _("Write a reply or change the status.")})
    before = ticket.status
    ticket.status = status
    ticket.updated_at = datetime.now(UTC)
    audit.record(
        "support.answer",
        "support_ticket",
        ticket.id,
        actor=actor,
        tenant_id=ticket.tenant_id,
        before={"status": before},
        after={"status": status},
    )
    db.session.commit()
    return ticket

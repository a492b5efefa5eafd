"""Voice sessions, acting side: start and stop through the gateway's
``StartWebSession``/``StopWebSession`` and live NPC control (mute, unmute, speak).

Rules this module enforces:

* every query is scoped by ``actor.tenant_id``; another tenant's session is a NotFound;
* StopWebSession and the live-control RPCs do not check ownership on the gateway, so the
  session row's ``tenant_id`` is verified here *before* any gRPC call;
* no two starts from a double click: a PostgreSQL advisory transaction lock per
  (tenant, campaign) is held around the StartWebSession call, a live session of the campaign is
  refused before calling, and the gateway's own constraints (SessionConflict) remain the backstop;
* start, stop and NPC control are audited and counted (SESSION_STARTS / SESSION_STOPS).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import grpc
from sqlalchemy import func, select, text

from glyphoxa_htmx.adapters.gateway import errors as gw
from glyphoxa_htmx.adapters.gateway.client import NpcLiveState
from glyphoxa_htmx.core import audit
from glyphoxa_htmx.core.authz import Actor, Perm, own, require
from glyphoxa_htmx.core.deps import gateway
from glyphoxa_htmx.core.errors import Conflict, NotFound, Unavailable, ValidationError
from glyphoxa_htmx.core.i18n import _, lazy_gettext
from glyphoxa_htmx.core.metrics import SESSION_STARTS, SESSION_STOPS
from glyphoxa_htmx.core.parse import SNOWFLAKE_RE
from glyphoxa_htmx.extensions import db
from glyphoxa_htmx.models import AuditLog, Campaign, GatewaySession, NpcDefinition
from glyphoxa_htmx.services import campaigns, plans, tenants
from glyphoxa_htmx.services.sessions import LIVE_STATES, UNAVAILABLE_NOTE, get, guild_names, is_live, month_usage

log = logging.getLogger(__name__)

MAX_SPEECH = 500


def muted_speak_message(npc: str) -> str:
    """Speaking as a muted NPC: the gateway speaks a DM's typed line anyway (mute only silences the
    NPC's own replies), and the toast says so rather than contradicting the "Muted" badge."""
    return _(
        "%(npc)s is muted but says your line now: a DM's Speak overrides mute. %(npc)s stays muted otherwise.", npc=npc
    )


class StartRefused(ValidationError):
    """A start the gateway (or our double-start guard) refused; ``live_session_id`` points at the
    session that is already running when known."""

    def __init__(self, message: str, *, live_session_id: str | None = None, maybe_started: bool = False):
        super().__init__({"": message}, message)
        self.live_session_id = live_session_id
        self.maybe_started = maybe_started  # the start timed out: it may still appear in the list


@dataclass
class StartForm:
    campaigns: list[tuple[str, str]] = field(default_factory=list)
    guilds: list[tuple[str, str]] = field(default_factory=list)  # (id, label)
    note: str = ""  # why starting is impossible right now ('' = possible)
    fix: str = ""  # where the note's problem is fixed: 'discord' (table settings) or ''
    recent_channels: list[str] = field(default_factory=list)  # voice channels of recent sessions, newest first
    usage: dict[str, Any] | None = None
    default_campaign: str = ""  # preselected: the tenant's active campaign, or the only one


def start_form(actor: Actor, discord_guilds: list[Any] | None = None) -> StartForm:
    """What the start form offers: the tenant's campaigns and guilds (TenantInfo.guild_ids, named
    from the user's Discord guilds where known), or the reason starting is impossible."""
    require(actor, Perm.CONTROL_SESSIONS)
    form = StartForm(campaigns=campaigns.choices(actor), usage=month_usage(actor))
    active = campaigns.active_id(actor)  # the gateway's public.tenants.campaign_id
    ids = [cid for cid, _ in form.campaigns]
    form.default_campaign = active if active in ids else (ids[0] if len(ids) == 1 else "")
    client = gateway()
    if client is None:
        form.note = _("No voice service is connected to this server, so sessions can't be started here.")
        return form
    try:
        info = client.get_tenant(actor.tenant_id, quick=True)
    except gw.NotFound:
        form.note = _(
            "Your table isn't registered with the voice service yet. Ask the owner to finish the Discord setup."
        )
        form.fix = "discord"
        return form
    except gw.GatewayError as exc:
        log.info("start form: gateway unavailable: %r", exc)
        form.note = str(UNAVAILABLE_NOTE)
        return form
    names = guild_names(discord_guilds)
    form.guilds = [(gid, names.get(gid, f"Server {gid}")) for gid in (info.guild_ids or [])]
    if not form.guilds:
        form.note = _(
            "Your table has no Discord server yet. Add one in the table settings (the bot must be invited there)."
        )
        form.fix = "discord"
        return form
    form.recent_channels = recent_channels(actor)
    return form


def recent_channels(actor: Actor, limit: int = 8) -> list[str]:
    """Voice channels the table's recent sessions used (newest first), offered as choices on the
    start form; pasting another id stays possible. One query."""
    rows = db.session.execute(
        select(GatewaySession.channel_id, func.max(GatewaySession.started_at).label("last"))
        .where(GatewaySession.tenant_id == actor.tenant_id, GatewaySession.channel_id != "")
        .group_by(GatewaySession.channel_id)
        .order_by(func.max(GatewaySession.started_at).desc())
        .limit(limit)
    ).all()
    return [r.channel_id for r in rows if SNOWFLAKE_RE.match(r.channel_id or "")]


# --------------------------------------------------------------------------- start / stop


def has_no_npcs(actor: Actor, campaign_id: str) -> bool:
    """True when the actor's campaign exists and has no NPCs (the start form warns first).
    Unknown or foreign ids answer False: ``start`` reports those at the field."""
    require(actor, Perm.CONTROL_SESSIONS)
    campaign_id = (campaign_id or "").strip()
    if not campaign_id:
        return False
    known = select(Campaign.id).where(Campaign.id == campaign_id, Campaign.tenant_id == actor.tenant_id).exists()
    cast = (
        select(NpcDefinition.id)
        .where(NpcDefinition.campaign_id == campaign_id, NpcDefinition.tenant_id == actor.tenant_id)
        .exists()
    )
    known_row, has_cast = db.session.execute(select(known, cast)).one()
    return bool(known_row) and not has_cast


_START_MESSAGES = {
    gw.QuotaExceeded: (
        "quota",
        lazy_gettext(
            "Your table has used all of this month's voice-session hours. The owner can raise "
            "the limit, or sessions can start again next month."
        ),
    ),
    gw.BotNotConnected: (
        "bot_disconnected",
        lazy_gettext(
            "The Discord bot isn't connected right now. Check the bot token and that "
            "the bot is in this server, then try again."
        ),
    ),
    gw.SessionConflict: (
        "conflict",
        lazy_gettext(
            "A session is already running for this campaign or Discord server "
            "(your plan allows one at a time). Stop it first."
        ),
    ),
    gw.GatewayUnavailable: (
        "unavailable",
        lazy_gettext("The voice service is unavailable right now. Nothing was started; try again in a moment."),
    ),
    gw.InvalidArgument: (
        "invalid",
        lazy_gettext("The voice service rejected these details. Check the server and channel id."),
    ),
    gw.NotFound: (
        "not_registered",
        lazy_gettext(
            "Your table isn't registered with the voice service yet. Ask the owner to finish the Discord setup."
        ),
    ),
}


def _start_message(exc: gw.GatewayError) -> str:
    """What the start form says about the gateway's refusal, in the request's language."""
    return str(_START_MESSAGES.get(type(exc), ("error", exc.message))[1])


START_TIMEOUT_MESSAGE = lazy_gettext(
    "The voice service didn't answer in time. The start may still be in progress — check the "
    "sessions list in a moment before trying again."
)


def _live_session_of_campaign(actor: Actor, campaign_id: str) -> GatewaySession | None:
    return db.session.execute(
        select(GatewaySession)
        .where(
            GatewaySession.tenant_id == actor.tenant_id,
            GatewaySession.campaign_id == campaign_id,
            GatewaySession.state.in_(LIVE_STATES),
        )
        .order_by(GatewaySession.started_at.desc())
        .limit(1)
    ).scalar_one_or_none()


class EmptyCast(StartRefused):
    """The campaign has no NPCs: the DM is asked before the session starts."""

    def __init__(self) -> None:
        super().__init__(_("This campaign has no NPCs — start anyway?"))


def start(actor: Actor, *, campaign_id: str, guild_id: str, channel_id: str, allow_empty_cast: bool = True) -> str:
    """Start a voice session through the gateway; returns the new session id. Commits.

    Raises ValidationError (field errors), EmptyCast (valid, but the campaign has no NPCs and
    ``allow_empty_cast`` is off) or StartRefused (the gateway's or our guard's refusal, as a
    message for the form)."""
    require(actor, Perm.CONTROL_SESSIONS)
    campaign_id, guild_id, channel_id = (
        (campaign_id or "").strip(),
        (guild_id or "").strip(),
        (channel_id or "").strip(),
    )
    errors: dict[str, str] = {}
    if not campaign_id:
        errors["campaign_id"] = _("Choose a campaign.")
    else:
        try:
            campaign = campaigns.get(actor, campaign_id)
            if campaign.archived_at is not None:
                errors["campaign_id"] = _("That campaign is archived. Restore it first.")
        except NotFound:
            errors["campaign_id"] = _("Choose one of your campaigns.")
    if not SNOWFLAKE_RE.match(guild_id):
        errors["guild_id"] = _("Choose a Discord server.")
    if not SNOWFLAKE_RE.match(channel_id):
        errors["channel_id"] = _(
            "Paste the voice channel's id: 17 to 20 digits (in Discord, enable Developer Mode, "
            "then right-click the channel and choose Copy Channel ID)."
        )
    client = gateway()
    if client is None:
        raise StartRefused(_("No voice service is connected to this server, so sessions can't be started here."))
    if "guild_id" not in errors:
        try:
            allowed = client.get_tenant(actor.tenant_id).guild_ids or []
        except gw.GatewayError as exc:
            _count_start(actor, exc)
            raise StartRefused(_start_message(exc)) from exc
        if guild_id not in allowed:
            errors["guild_id"] = _("That server isn't one of your table's Discord servers.")
        elif tenants.guild_owner(guild_id) != actor.tenant_id:
            # The gateway lists it for us, but it belongs to another table (or to several, from
            # before servers had one owner): never start in someone else's server.
            errors["guild_id"] = _(
                "That Discord server is connected to another table too, so sessions can't start "
                "there until support sorts out which table it belongs to."
            )
    if errors:
        raise ValidationError(errors)
    if not allow_empty_cast and has_no_npcs(actor, campaign_id):
        raise EmptyCast()

    key = f"glyphoxa-web:start:{actor.tenant_id}:{campaign_id}"
    locked = db.session.execute(text("SELECT pg_try_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": key}).scalar()
    if not locked:
        db.session.rollback()
        SESSION_STARTS.labels(actor.tenant_id, "duplicate").inc()
        raise StartRefused(_("This session is already being started. Give it a moment."))
    try:
        running = _live_session_of_campaign(actor, campaign_id)
        if running is not None:
            SESSION_STARTS.labels(actor.tenant_id, "conflict").inc()
            raise StartRefused(_("A session is already running for this campaign."), live_session_id=running.id)
        try:  # what the gateway can't enforce (live sessions per plan) or explains badly (quota), with an upgrade link
            plans.check_concurrent_sessions(actor)
            plans.check_session_quota(actor, month_usage(actor))
        except ValidationError:
            SESSION_STARTS.labels(actor.tenant_id, "plan_limit").inc()
            raise
        details = None
        try:
            session_id = client.start_web_session(actor.tenant_id, guild_id, channel_id, campaign_id)
        except gw.GatewayError as exc:
            if not _timed_out(exc):
                _count_start(actor, exc)
                log.info("start refused by the gateway: %r", exc)
                live = _live_session_of_campaign(actor, campaign_id) if isinstance(exc, gw.SessionConflict) else None
                raise StartRefused(_start_message(exc), live_session_id=live.id if live else None) from exc
            # The deadline passed, but the gateway may well have started the session: look.
            found = _live_session_of_campaign(actor, campaign_id)
            if found is None:
                SESSION_STARTS.labels(actor.tenant_id, "timeout").inc()
                log.warning("start timed out and no session is visible yet: %r", exc)
                raise StartRefused(str(START_TIMEOUT_MESSAGE), maybe_started=True) from exc
            log.info("start timed out but session %s is running: %r", found.id, exc)
            session_id, details = found.id, {"note": "after_timeout"}
        if not session_id:  # the gateway started it but could not look it up (contract 2.2)
            found = _live_session_of_campaign(actor, campaign_id)
            session_id = found.id if found else ""
        audit.record(
            "session.start",
            "session",
            session_id or "unknown",
            actor=actor,
            after={"campaign_id": campaign_id, "guild_id": guild_id, "channel_id": channel_id},
            details=details,
        )
        db.session.commit()  # also releases the advisory lock
    except BaseException:
        db.session.rollback()
        raise
    SESSION_STARTS.labels(actor.tenant_id, "ok").inc()
    return session_id


def _timed_out(exc: gw.GatewayError) -> bool:
    """DEADLINE_EXCEEDED: the call may have done its work, we just never heard the answer."""
    return isinstance(exc, gw.GatewayUnavailable) and exc.code == grpc.StatusCode.DEADLINE_EXCEEDED


def _count_start(actor: Actor, exc: gw.GatewayError) -> None:
    SESSION_STARTS.labels(actor.tenant_id, _START_MESSAGES.get(type(exc), ("error",))[0]).inc()


@dataclass
class StopResult:
    session: GatewaySession  # freshly re-read after the call
    outcome: str  # stopped | ending | already_ended | untracked | checking | unconfirmed | ended_otherwise

    @property
    def message(self) -> str:
        return str(STOP_MESSAGES[self.outcome])


STOP_MESSAGES = {
    "stopped": lazy_gettext("Session stopped."),
    "ending": lazy_gettext("Stop requested. The session is ending."),
    "already_ended": lazy_gettext("This session had already ended."),
    "untracked": lazy_gettext(
        "The voice service no longer tracks this session, so there was nothing to stop. It ends by itself "
        "shortly (within about a minute, once its heartbeat is missed)."
    ),
    "checking": lazy_gettext(
        "Stopping — checking with the voice service. It didn't answer in time, so the stop may still be "
        "happening; this page updates when the session has ended."
    ),
    "unconfirmed": lazy_gettext(
        "The voice service never confirmed the stop and the session is still running. Try stopping it again."
    ),
    "ended_otherwise": lazy_gettext("The session has ended."),
}

#: After a stop that timed out, how long the session page keeps checking public.sessions before it
#: says the stop was not confirmed.
STOP_CHECK_SECONDS = 60

#: Audit action of a stop whose answer never came (its real outcome is audited once known).
STOP_UNCONFIRMED = "session.stop_unconfirmed"


def stop(actor: Actor, session_id: str) -> StopResult:
    """Force-stop a session of the actor's tenant. Ownership is checked in the database before
    the gateway is called (StopWebSession itself does not check). Afterwards the row is read
    again, so the result says what really happened: StopWebSession answers NOT_FOUND for a
    session the gateway doesn't track, which stopped nothing. Commits."""
    session = get(actor, session_id)  # NotFound for other tenants (before the role): no gRPC call happens
    require(actor, Perm.CONTROL_SESSIONS)
    if session.state == "ended":
        raise Conflict(_("This session has already ended."))
    before = session.state
    client = gateway()
    if client is None:
        raise Unavailable(str(UNAVAILABLE_NOTE))
    unknown = False
    try:
        client.stop_web_session(session.id)
    except gw.NotFound:
        unknown = True  # the gateway doesn't know it: see what the row says
    except gw.BotNotConnected as exc:
        SESSION_STOPS.labels(actor.tenant_id, "error").inc()
        raise Unavailable(
            _(
                "The Discord bot isn't connected, so the session can't be stopped from here right now. "
                "It ends by itself once the worker stops sending heartbeats."
            )
        ) from exc
    except gw.GatewayError as exc:
        if not _timed_out(exc):
            SESSION_STOPS.labels(actor.tenant_id, "error").inc()
            raise Unavailable(exc.message) from exc
        # The deadline passed: the gateway may still be stopping it. Look at the row, as start does.
        session = get(actor, session_id)
        log.warning(
            "stop of session %s timed out; its outcome is unknown until public.sessions says: %r", session.id, exc
        )
        audit.record(
            STOP_UNCONFIRMED,
            "session",
            session.id,
            actor=actor,
            before={"state": before},
            details={"campaign_id": session.campaign_id, "gateway": "deadline_exceeded"},
        )
        db.session.commit()
        if not is_live(session):
            # None only if another request settled this stop in the meantime: the page checks again.
            return reconcile_stop(actor, session.id) or StopResult(session, "checking")
        SESSION_STOPS.labels(actor.tenant_id, "timeout").inc()
        return StopResult(session, "checking")
    session = get(actor, session_id)
    if unknown and not is_live(session):
        return StopResult(session, "already_ended")  # it ended in the meantime; we changed nothing
    if unknown:
        log.warning("StopWebSession: the gateway does not track live session %s", session.id)
        audit.record(
            "session.stop_unknown",
            "session",
            session.id,
            actor=actor,
            before={"state": before},
            details={"campaign_id": session.campaign_id, "gateway": "not_found"},
        )
        db.session.commit()
        SESSION_STOPS.labels(actor.tenant_id, "untracked").inc()
        return StopResult(session, "untracked")
    audit.record(
        "session.stop",
        "session",
        session.id,
        actor=actor,
        before={"state": before},
        after={"state": session.state},
        details={"campaign_id": session.campaign_id},
    )
    db.session.commit()
    SESSION_STOPS.labels(actor.tenant_id, "user").inc()
    return StopResult(session, "ending" if is_live(session) else "stopped")


def reconcile_stop(actor: Actor, session_id: str, *, now: datetime | None = None) -> StopResult | None:
    """After a stop whose answer never came: what public.sessions says now, audited once.

    None when no unconfirmed stop is pending for this session (nothing to check). Otherwise the
    row decides: still live within STOP_CHECK_SECONDS -> "checking"; ended without an error ->
    "stopped" (audited as ``session.stop`` with ``note: after_timeout``, exactly once, under an
    advisory lock); ended with an error -> "ended_otherwise" (the stop did not end it); still live
    after that -> "unconfirmed". Commits."""
    require(actor, Perm.CONTROL_SESSIONS)
    session = get(actor, session_id)
    key = f"glyphoxa-web:stop:{actor.tenant_id}:{session.id}"
    db.session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": key})
    rows = db.session.execute(
        select(AuditLog.action, AuditLog.created_at, AuditLog.details)
        .where(
            AuditLog.tenant_id == actor.tenant_id,
            AuditLog.resource_type == "session",
            AuditLog.resource_id == session.id,
            AuditLog.action.in_((STOP_UNCONFIRMED, "session.stop")),
        )
        .order_by(AuditLog.id.desc())
        .limit(1)
    ).all()
    if not rows or rows[0].action != STOP_UNCONFIRMED:
        db.session.rollback()
        return None
    requested_at = rows[0].created_at
    before = (((rows[0].details or {}).get("changes") or {}).get("state") or {}).get("before") or "active"
    session = get(actor, session_id)  # read again under the lock
    if is_live(session):
        db.session.rollback()
        now = now or datetime.now(UTC)
        waited = (now - requested_at).total_seconds()
        return StopResult(session, "checking" if waited < STOP_CHECK_SECONDS else "unconfirmed")
    if session.error:
        db.session.rollback()
        return StopResult(session, "ended_otherwise")
    audit.record(
        "session.stop",
        "session",
        session.id,
        actor=actor,
        before={"state": before},
        after={"state": session.state},
        details={"campaign_id": session.campaign_id, "note": "after_timeout"},
    )
    db.session.commit()
    SESSION_STOPS.labels(actor.tenant_id, "user").inc()
    return StopResult(session, "stopped")


# --------------------------------------------------------------------------- live NPC control


@dataclass
class NpcPanel:
    npcs: list[NpcLiveState] = field(default_factory=list)
    disabled: str = ""  # why the controls can't be used ('' = usable)

    @property
    def all_muted(self) -> bool:
        return bool(self.npcs) and all(n.muted for n in self.npcs)


def npc_panel(actor: Actor, session: GatewaySession) -> NpcPanel:
    """Live NPC state (ListNPCs) for the controls, or why they are disabled."""
    require(actor, Perm.CONTROL_SESSIONS)
    own(actor, session)
    if not is_live(session):
        return NpcPanel(disabled=_("The session has ended."))
    client = gateway()
    if client is None:
        return NpcPanel(disabled=str(UNAVAILABLE_NOTE))
    try:
        return NpcPanel(npcs=client.list_npcs(session.id, quick=True))
    except gw.LiveControlUnsupported:
        return NpcPanel(disabled=_("This voice service doesn't support live NPC control (it answered UNIMPLEMENTED)."))
    except gw.NotFound:
        return NpcPanel(disabled=_("The session's worker isn't reachable yet. Controls appear once it is running."))
    except gw.GatewayError as exc:
        return NpcPanel(disabled=exc.message)


CONTROL_ACTIONS = ("mute", "unmute", "mute_all", "unmute_all", "speak")


def control(actor: Actor, session_id: str, action: str, *, npc: str = "", speech: str = "") -> str:
    """Mute/unmute one NPC, mute/unmute all, or make an NPC speak. The session's tenant is
    checked before the gateway is called. Returns a confirmation message. Commits the audit row."""
    session = get(actor, session_id)  # 404 first, then the role (403)
    require(actor, Perm.CONTROL_SESSIONS)
    if action not in CONTROL_ACTIONS:
        raise NotFound()
    if not is_live(session):
        raise Conflict(_("The session has ended."))
    npc = (npc or "").strip()
    speech = (speech or "").strip()
    if action in ("mute", "unmute", "speak") and not npc:
        raise ValidationError({"npc": _("Choose an NPC.")})
    if action == "speak":
        if not speech:
            raise ValidationError({"speech": _("Type what the NPC should say.")})
        if len(speech) > MAX_SPEECH:
            raise ValidationError({"speech": _("Keep it under %(num)s characters.", num=MAX_SPEECH)})
    client = gateway()
    if client is None:
        raise Unavailable(str(UNAVAILABLE_NOTE))
    try:
        if action == "mute":
            client.mute_npc(session.id, npc)
            message = _("%(npc)s is muted.", npc=npc)
        elif action == "unmute":
            client.unmute_npc(session.id, npc)
            message = _("%(npc)s can speak again.", npc=npc)
        elif action == "mute_all":
            count = client.mute_all_npcs(session.id)
            message = _("All NPCs muted (%(count)s).", count=count)
        elif action == "unmute_all":
            count = client.unmute_all_npcs(session.id)
            message = _("All NPCs can speak again (%(count)s).", count=count)
        else:
            client.speak_npc(session.id, npc, speech)
            message = _("%(npc)s will say that now.", npc=npc)
    except gw.LiveControlUnsupported as exc:
        raise Unavailable(_("This voice service doesn't support live NPC control.")) from exc
    except gw.NotFound as exc:
        raise ValidationError({"npc": _("That NPC isn't part of this session.")}) from exc
    except gw.InvalidArgument as exc:
        raise ValidationError({"speech" if action == "speak" else "npc": exc.message}) from exc
    except gw.GatewayError as exc:
        raise Unavailable(exc.message) from exc
    details = {"npc": npc} if npc else {}
    if action == "speak":
        details["text"] = speech
    audit.record(f"session.npc_{action}", "session", session.id, actor=actor, details=details)
    db.session.commit()
    return message


__all__ = [
    "EmptyCast",
    "NpcPanel",
    "StartForm",
    "StartRefused",
    "StopResult",
    "control",
    "has_no_npcs",
    "npc_panel",
    "recent_channels",
    "reconcile_stop",
    "start",
    "start_form",
    "stop",
]

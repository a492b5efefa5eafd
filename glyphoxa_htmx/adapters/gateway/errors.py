"""Domain errors raised by the gateway client.

Every error carries a user-facing ``message`` (safe to show in the UI), the raw gRPC
status ``code`` (a :class:`grpc.StatusCode` or ``None`` when no call was made, e.g. the
breaker is open) and the server's ``details`` text (for logs; never contains secrets).

How gRPC failures map (see :func:`from_rpc_error`):

=====================================  ==========================
gRPC status                            error
=====================================  ==========================
UNAVAILABLE, DEADLINE_EXCEEDED         GatewayUnavailable
UNAUTHENTICATED, PERMISSION_DENIED     GatewayUnavailable (logged at ERROR: operator misconfiguration)
FAILED_PRECONDITION                    BotNotConnected
NOT_FOUND                              NotFound
INVALID_ARGUMENT                       InvalidArgument
ALREADY_EXISTS                         AlreadyExists
INTERNAL "... quota exceeded ..."      QuotaExceeded
INTERNAL "start session: ..." + a      SessionConflict
unique/exclusion violation or
"session already active"
UNIMPLEMENTED (worker control RPCs)    LiveControlUnsupported
anything else                          GatewayError
=====================================  ==========================
"""

from __future__ import annotations

import logging
import re
from typing import TypedDict, Unpack

import grpc
from flask_babel.speaklater import LazyString

from glyphoxa_htmx.core.i18n import lazy_gettext

log = logging.getLogger(__name__)


class GatewayError(Exception):
    """Base class. ``message`` is what the UI may show, in the language of the request that reads
    it (the messages are lazy: an error raised in one place may be shown in another)."""

    default_message = lazy_gettext("The voice service reported an error.")

    def __init__(
        self,
        message: str | LazyString | None = None,
        *,
        code: grpc.StatusCode | None = None,
        details: str = "",
        method: str = "",
    ) -> None:
        self._message = message
        self.code = code
        self.details = details
        self.method = method
        super().__init__(self.message)

    @property
    def message(self) -> str:
        return str(self._message or self.default_message)

    def __repr__(self) -> str:
        code = self.code.name if self.code is not None else None
        return f"{type(self).__name__}(message={self.message!r}, code={code}, details={self.details!r})"


class _Status(TypedDict, total=False):
    """GatewayError's keyword arguments: the gRPC status and the RPC it came from."""

    code: grpc.StatusCode | None
    details: str
    method: str


class GatewayUnavailable(GatewayError):
    """The gateway cannot be reached, timed out, the breaker is open, or it refused our
    credentials (UNAUTHENTICATED: an operator problem, logged loudly)."""

    default_message = lazy_gettext("The voice service is unavailable. Please try again in a moment.")

    def __init__(
        self, message: str | LazyString | None = None, *, breaker_open: bool = False, **kw: Unpack[_Status]
    ) -> None:
        super().__init__(message, **kw)
        self.breaker_open = breaker_open


class QuotaExceeded(GatewayError):
    default_message = lazy_gettext("Your monthly voice-session hours are used up.")


class BotNotConnected(GatewayError):
    default_message = lazy_gettext("The Discord bot for this tenant is not connected. Check the bot token and guilds.")


class NotFound(GatewayError):
    default_message = lazy_gettext("The voice service does not know that item (it may have ended or been deleted).")


class InvalidArgument(GatewayError):
    default_message = lazy_gettext("The voice service rejected the request as invalid.")


class AlreadyExists(GatewayError):
    default_message = lazy_gettext("That already exists on the voice service.")


class SessionConflict(GatewayError):
    default_message = lazy_gettext("A voice session is already running for this campaign or Discord server.")


class LiveControlUnsupported(GatewayError):
    default_message = lazy_gettext("Live NPC control is not supported by this gateway.")


_TRANSPORT_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
_AUTH_CODES = frozenset({grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED})

# What a concurrent-session refusal looks like inside the gateway's INTERNAL
# "start session: ..." text: PostgreSQL unique (23505) / exclusion (23P01) violations on
# the public.sessions indexes, or the controller's in-memory per-guild sentinel.
_CONFLICT = re.compile(
    r"duplicate key|unique constraint|exclusion constraint|23505|23p01"
    r"|unique_active_campaign|idx_one_active_session|already active|already running",
    re.IGNORECASE,
)


def is_transport_failure(code: grpc.StatusCode | None) -> bool:
    """UNAVAILABLE or DEADLINE_EXCEEDED: the failures that retries and the breaker count."""
    return code in _TRANSPORT_CODES


def classify(code: grpc.StatusCode, details: str, *, method: str = "", worker_call: bool = False) -> GatewayError:
    """Turn a gRPC status into the matching domain error (does no logging)."""
    kw: _Status = {"code": code, "details": details, "method": method}
    if code in _TRANSPORT_CODES or code in _AUTH_CODES:
        return GatewayUnavailable(**kw)
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        return BotNotConnected(**kw)
    if code == grpc.StatusCode.NOT_FOUND:
        return NotFound(**kw)
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidArgument(**kw)
    if code == grpc.StatusCode.ALREADY_EXISTS:
        return AlreadyExists(**kw)
    if code == grpc.StatusCode.UNIMPLEMENTED:
        if worker_call:
            return LiveControlUnsupported(**kw)
        return GatewayError(lazy_gettext("This gateway does not support that operation."), **kw)
    if code == grpc.StatusCode.INTERNAL:
        lowered = details.lower()
        if "quota exceeded" in lowered:
            return QuotaExceeded(**kw)
        if "start session" in lowered and _CONFLICT.search(details):
            return SessionConflict(**kw)
    return GatewayError(**kw)


def from_rpc_error(err: grpc.RpcError, *, method: str = "", worker_call: bool = False) -> GatewayError:
    """Map a grpc.RpcError (as raised by a stub call) to a domain error.

    UNAUTHENTICATED/PERMISSION_DENIED are logged at ERROR here: they mean the
    management secret (or mTLS identity) configured for this service is wrong.
    """
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    details = (err.details() if hasattr(err, "details") else "") or ""
    if code in _AUTH_CODES:
        log.error(
            "gateway rejected our credentials on %s (%s: %s): check the configured gateway "
            "management secret / TLS identity",
            method,
            code.name,
            details,
        )
    return classify(code, details, method=method, worker_call=worker_call)

"""The status-to-domain-error table, including the INTERNAL texts the real gateway sends
(quota and concurrent-session refusals can only be told apart by their message)."""

from __future__ import annotations

import grpc
import pytest

from glyphoxa_htmx.adapters.gateway import errors as e

C = grpc.StatusCode


@pytest.mark.parametrize(
    "code,details,worker,expected",
    [
        (C.UNAVAILABLE, "connection refused", False, e.GatewayUnavailable),
        (C.DEADLINE_EXCEEDED, "Deadline Exceeded", False, e.GatewayUnavailable),
        (C.UNAUTHENTICATED, "invalid management secret", False, e.GatewayUnavailable),
        (C.FAILED_PRECONDITION, 'no active bot for tenant "x"', False, e.BotNotConnected),
        (C.NOT_FOUND, 'session "s" not found', False, e.NotFound),
        (C.INVALID_ARGUMENT, "invalid tenant id", False, e.InvalidArgument),
        (C.ALREADY_EXISTS, 'tenant "x" already exists', False, e.AlreadyExists),
        (C.INTERNAL, "start session: gateway: validate session: usage: quota exceeded", False, e.QuotaExceeded),
        (C.INTERNAL, "start session: gateway: session already active for guild 123", False, e.SessionConflict),
        (
            C.INTERNAL,
            "start session: gateway: validate session: sessionorch: create session: ERROR: duplicate key "
            'value violates unique constraint "idx_one_active_session_per_guild" (SQLSTATE 23505)',
            False,
            e.SessionConflict,
        ),
        (
            C.INTERNAL,
            "start session: ... ERROR: conflicting key value violates exclusion constraint "
            '"unique_active_campaign" (SQLSTATE 23P01)',
            False,
            e.SessionConflict,
        ),
        (C.INTERNAL, "start session: gateway: dispatch worker: no capacity", False, e.GatewayError),
        (C.INTERNAL, "failed to list tenants", False, e.GatewayError),
        (C.UNIMPLEMENTED, "unknown service glyphoxa.v1.SessionWorkerService", True, e.LiveControlUnsupported),
        (C.UNIMPLEMENTED, "unknown method", False, e.GatewayError),
        (C.UNKNOWN, "boom", False, e.GatewayError),
    ],
)
def test_classify(code, details, worker, expected):
    err = e.classify(code, details, worker_call=worker)
    assert type(err) is expected
    assert err.code == code and err.details == details and err.message


def test_subclasses_share_the_base():
    for cls in (
        e.QuotaExceeded,
        e.BotNotConnected,
        e.GatewayUnavailable,
        e.NotFound,
        e.InvalidArgument,
        e.AlreadyExists,
        e.SessionConflict,
        e.LiveControlUnsupported,
    ):
        assert issubclass(cls, e.GatewayError)
    assert e.GatewayUnavailable().message == "The voice service is unavailable. Please try again in a moment."

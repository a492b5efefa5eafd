"""The gateway's tenant-id rule (gateway-contract.md 1.1 and 1.5).

The gateway accepts ``^[a-z][a-z0-9_]{0,62}$``; the worker then builds the memory schema
name ``tenant_<id>``, which must itself fit that pattern, so in practice an id has at most
56 characters. Signup code should derive slugs that pass :func:`is_valid_tenant_id`.
"""

from __future__ import annotations

import re

TENANT_ID_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
MAX_TENANT_ID_LENGTH = 56  # len("tenant_") + 56 == 63, PostgreSQL's identifier limit


def tenant_id_problem(tenant_id: str) -> str | None:
    """Why ``tenant_id`` is not acceptable, or ``None`` when it is."""
    if not tenant_id:
        return "id is required"
    if not TENANT_ID_RE.match(tenant_id):
        return "must start with a lowercase letter and contain only lowercase letters, digits and underscores"
    if len(tenant_id) > MAX_TENANT_ID_LENGTH:
        return f"must be at most {MAX_TENANT_ID_LENGTH} characters"
    return None


def is_valid_tenant_id(tenant_id: str) -> bool:
    return tenant_id_problem(tenant_id) is None


def tenant_schema(tenant_id: str) -> str:
    """The worker's memory schema name for a tenant (raises ValueError for a bad id)."""
    problem = tenant_id_problem(tenant_id)
    if problem:
        raise ValueError(f"invalid tenant id {tenant_id!r}: {problem}")
    return f"tenant_{tenant_id}"

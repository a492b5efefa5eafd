"""Where support tickets go: the local store (embedded default: operators answer them on the
admin pages) or Freshdesk's REST API v2 (``FRESHDESK_DOMAIN`` + ``FRESHDESK_API_KEY``).

Freshdesk shapes used (https://developers.freshdesk.com/api/): POST /api/v2/tickets
{subject, description, email, priority, status, tags} -> {id, status, ...}; GET
/api/v2/tickets/<id> -> {status: 2 open | 3 pending | 4 resolved | 5 closed, ...}; GET
/api/v2/tickets/<id>/conversations -> [{id, body_text, incoming, private, created_at}]; POST
/api/v2/tickets/<id>/reply {body}. Basic auth with the API key as the user and "X" as password."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import requests

from glyphoxa_htmx.core.i18n import _

if TYPE_CHECKING:
    from glyphoxa_htmx.config import Settings

STATUS_FROM_FRESHDESK = {2: "open", 3: "pending", 4: "resolved", 5: "closed"}
TIMEOUT = 5


class SupportUnavailable(Exception):
    pass


@dataclass
class RemoteReply:
    external_id: str
    body: str
    from_support: bool
    created_at: str


class Freshdesk:
    name = "freshdesk"

    def __init__(self, domain: str, api_key: str, base: str = ""):
        self.base = (base or f"https://{domain}.freshdesk.com").rstrip("/") + "/api/v2"
        self.auth = (api_key, "X")

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        try:
            resp = requests.request(method, self.base + path, auth=self.auth, timeout=TIMEOUT, **kw)
        except requests.RequestException as exc:
            raise SupportUnavailable(_("The support desk can't be reached right now.")) from exc
        if resp.status_code >= 400:
            raise SupportUnavailable(_("The support desk refused the request (HTTP %(code)s).", code=resp.status_code))
        return resp.json() if resp.content else {}

    def create(
        self,
        *,
        subject: str,
        body: str,
        email: str | None,
        name: str,
        category: str,
        tenant_id: str,
        session_id: str | None,
    ) -> str:
        description = body + (f"\n\nSession: {session_id}" if session_id else "") + f"\nTable: {tenant_id}"
        payload = {
            "subject": subject,
            "description": description,
            "priority": 1,
            "status": 2,
            "tags": [f"category:{category}", f"tenant:{tenant_id}"],
            "name": name or "Glyphoxa user",
        }
        payload["email"] = email or f"{tenant_id}@users.glyphoxa.invalid"
        return str(self._call("POST", "/tickets", json=payload)["id"])

    def status(self, external_id: str) -> str:
        data = self._call("GET", f"/tickets/{external_id}")
        try:
            return STATUS_FROM_FRESHDESK.get(int(data.get("status")), "open")
        except (TypeError, ValueError):
            return "open"

    def conversations(self, external_id: str) -> list[RemoteReply]:
        out = []
        for c in self._call("GET", f"/tickets/{external_id}/conversations") or []:
            if not isinstance(c, dict) or c.get("private"):
                continue  # agents' private notes are never shown to the customer
            out.append(
                RemoteReply(
                    str(c.get("id")),
                    str(c.get("body_text") or ""),
                    not bool(c.get("incoming")),
                    str(c.get("created_at") or ""),
                )
            )
        return out

    def reply(self, external_id: str, body: str) -> str:
        return str(self._call("POST", f"/tickets/{external_id}/reply", json={"body": body}).get("id", ""))


def build(settings: Settings) -> Freshdesk | None:
    """The Freshdesk adapter when configured, else None (the local store)."""
    if settings.freshdesk_domain and settings.freshdesk_api_key:
        return Freshdesk(settings.freshdesk_domain, settings.freshdesk_api_key, settings.freshdesk_api_base)
    return None

"""Every page a DM (owner) or an operator (super admin) can reach fits a 360 px wide phone: no
horizontal overflow, and the action column of every table is on screen."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect  # noqa: F401

from tests.support.ws_server import seed

SHOTS = "/tmp/glyphoxa-shots"
WIDTH = 360

# The JS measures the document and every table's last cell against the viewport.
MEASURE = """() => {
  const vw = document.documentElement.clientWidth;
  const wide = document.documentElement.scrollWidth;
  const off = [];
  document.querySelectorAll('table tr').forEach(tr => {
    const cells = tr.querySelectorAll('td');
    if (!cells.length) return;
    const r = cells[cells.length - 1].getBoundingClientRect();
    if (r.width && r.right > vw + 1) off.push(tr.innerText.slice(0, 40));
  });
  return {vw, wide, off};
}"""


def _pages(app, tenant_id: str, *, admin: bool) -> list[str]:
    """Every GET route of the URL map, filled with this table's real ids (skipping what needs an
    id we don't have, downloads, sockets and JSON)."""
    from glyphoxa_htmx.extensions import db
    from glyphoxa_htmx.models import Campaign, GatewaySession, NpcDefinition

    with app.app_context():
        campaign = db.session.query(Campaign).filter_by(tenant_id=tenant_id).first()
        session = db.session.query(GatewaySession).filter_by(tenant_id=tenant_id).first()
        npc = db.session.query(NpcDefinition).filter_by(tenant_id=tenant_id).first()
        ids = {
            "campaign_id": campaign.id if campaign else None,
            "session_id": session.id if session else None,
            "npc_id": npc.id if npc else None,
            "tenant_id": tenant_id,
        }
        from sqlalchemy import text

        ids["entity_id"] = (
            db.session.execute(text(f'SELECT id FROM "tenant_{tenant_id}".entities LIMIT 1')).scalar()
            if campaign
            else None
        )
        urls = []
        for rule in app.url_map.iter_rules():
            if "GET" not in rule.methods or rule.websocket:
                continue
            path = rule.rule
            # Not pages: downloads, JSON, sockets, fragments for htmx only, sign-in/OAuth redirects.
            if re.search(
                r"\.(txt|md|wav|json|svg|ico|js|css)$|/static/|/metrics|/healthz|/readyz|/auth/|/ws$|"
                r"/lines$|/controls$|/export$",
                path,
            ):
                continue
            if path.startswith("/admin") != admin:
                continue
            args = {}
            ok = True
            for arg in rule.arguments:
                if ids.get(arg):
                    args[arg] = ids[arg]
                else:
                    ok = False
            if ok:
                with app.test_request_context():
                    from flask import url_for

                    urls.append(url_for(rule.endpoint, **args))
    return sorted(set(urls))


@pytest.mark.parametrize("admin", [False, True], ids=["owner", "super_admin"])
def test_no_horizontal_overflow_at_360px(signed_in_page, live_server, page, app, database_url, admin):
    from glyphoxa_htmx.extensions import db
    from glyphoxa_htmx.models import User

    page.set_viewport_size({"width": WIDTH, "height": 780})
    name = "Admin Phone" if admin else "Phone Owner"
    signed_in_page(name)
    with app.app_context():
        user = db.session.query(User).filter_by(name=name).one()
        tenant_id = user.tenant_id
        if admin:
            user.role = "super_admin"
            db.session.commit()
    from tests.support.ws_server import make_campaign

    campaign = make_campaign(app, tenant_id, "A campaign with a rather long name for a small phone screen")
    seed(database_url, tenant_id, campaign, sessions=1)
    page.goto(f"{live_server}/campaigns/{campaign}/npcs/new")  # an NPC, so its pages are walked too
    page.fill("#name", "Bartholomew the Exceedingly Long-Named Innkeeper")
    page.fill("#personality", "Talks a lot.")
    page.get_by_role("button", name="Add to the cast").click()
    page.wait_for_url(re.compile(r"/campaigns/[^/]+(#.*)?$"))
    # A long, real-world user agent in "Your sessions", as a phone browser would have.
    urls = _pages(app, tenant_id, admin=admin)
    assert len(urls) >= (3 if admin else 12), urls
    problems = []
    for url in urls:
        resp = page.goto(live_server + url)
        if resp is None or resp.status >= 400:
            continue
        m = page.evaluate(MEASURE)
        if m["wide"] > m["vw"] + 1 or m["off"]:
            problems.append(f"{url}: {m['wide']} px wide at {m['vw']} px; off-screen rows: {m['off'][:2]}")
            page.screenshot(path=f"{SHOTS}-overflow{url.replace('/', '_')}.png", full_page=True)
    assert not problems, "\n".join(problems)

"""The knowledge graph per campaign: entity lists, entity pages, and a graph view (a cytoscape
island over the JSON below; without JavaScript the lists are the whole experience)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from flask import Blueprint, current_app, jsonify, request, url_for
from flask_login import current_user, login_required
from markupsafe import Markup

from glyphoxa_htmx.core import htmx
from glyphoxa_htmx.core.errors import ValidationError
from glyphoxa_htmx.core.markup import escape, id_url
from glyphoxa_htmx.services import knowledge

bp = Blueprint("knowledge", __name__, url_prefix="/knowledge")

# One row of a campaign's entity table, as the template's loop wrote it (issue 18: per-row url_for,
# _() and filters were most of the list's render time). Every interpolated value is escaped; by
# hand, not by Markup's %, which costs twice as much per row (see _hits_html in web/sessions.py).
_ROW = (
    "  <tr>\n"
    '    <td data-label="{name_label}"><a href="{href}">{name}</a>{description}</td>\n'
    '    <td data-label="{type_label}"><span class="badge type-{type_class}">{type}</span></td>\n'
    '    <td data-label="{degree_label}">{degree}</td>\n'
    "  </tr>"
)


@bp.app_template_filter("json_text")
def json_text(value: Any) -> str:
    """A JSON value the gateway's knowledge tools wrote, as text: a string as it is, a number as
    written, a flag, list or object as JSON (not Python's spelling); "" for none or empty."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False) if isinstance(value, (list, dict, bool)) else str(value)


@bp.app_template_global()
def entity_rows(
    entities: Iterable[knowledge.EntityRow], campaign_id: str, name_label: str, type_label: str, degree_label: str
) -> Markup:
    """The rows of the entity table. Each entity's link is the entity URL of its campaign with its
    id quoted by the route's own converter (built once per list); degrees go through the template's
    ``number`` filter once per distinct value."""
    entity_url = id_url("knowledge.entity", "entity_id", campaign_id=campaign_id)
    number = current_app.jinja_env.filters["number"]
    numbers: dict[Any, str] = {}
    labels = {"name_label": escape(name_label), "type_label": escape(type_label), "degree_label": escape(degree_label)}
    out = []
    for e in entities:
        degree = numbers.get(e.degree)
        if degree is None:
            degree = numbers[e.degree] = str(escape(number(e.degree)))
        description = json_text(e.description)
        out.append(
            _ROW.format(
                href=escape(entity_url(e.id)),
                name=escape(e.name),
                description=f'<br><span class="small muted">{escape(description[:120])}</span>' if description else "",
                type_class=escape(str(e.type).lower()),
                type=escape(e.type),
                degree=degree,
                **labels,
            )
        )
    return Markup("\n".join(out))  # the template's line break follows the last row


@bp.get("")
@login_required
def index():
    refs, ready = knowledge.campaign_index(current_user)
    return htmx.render("knowledge/index.html", "content", campaigns=refs, ready=ready)


@bp.get("/<campaign_id>")
@login_required
def campaign(campaign_id: str):
    ref = knowledge.campaign(current_user, campaign_id)
    type_, q = request.args.get("type", ""), request.args.get("q", "")
    errors = {}
    try:
        page = knowledge.entities(
            current_user,
            ref.id,
            type_=type_,
            q=q,
            after=request.args.get("after"),
            facets=not htmx.wants_block(),  # the type filter's choices are outside the #entities block
        )
    except ValidationError as exc:
        errors, page = exc.errors, knowledge.EntityPage()
    return htmx.render(
        "knowledge/campaign.html",
        "entities",
        campaign=ref,
        page=page,
        type_=type_,
        q=q,
        errors=errors,
        status=422 if errors else 200,
    )


@bp.get("/<campaign_id>/entities/<path:entity_id>")
@login_required
def entity(campaign_id: str, entity_id: str):
    ref = knowledge.campaign(current_user, campaign_id)
    detail = knowledge.entity(current_user, ref.id, entity_id)
    return htmx.render("knowledge/entity.html", "content", campaign=ref, detail=detail)


@bp.get("/<campaign_id>/graph")
@login_required
def graph(campaign_id: str):
    ref = knowledge.campaign(current_user, campaign_id)
    data = knowledge.graph(current_user, ref.id)
    return htmx.render("knowledge/graph.html", "content", campaign=ref, graph=data)


@bp.get("/<campaign_id>/graph.json")
@login_required
def graph_json(campaign_id: str):
    ref = knowledge.campaign(current_user, campaign_id)
    data = knowledge.graph(current_user, ref.id)

    def link(entity_id: str) -> str:
        return url_for("knowledge.entity", campaign_id=ref.id, entity_id=entity_id)

    return jsonify(
        {
            "nodes": [
                {"id": n.id, "label": n.name, "type": n.type, "degree": n.degree, "url": link(n.id)} for n in data.nodes
            ],
            "edges": [
                {
                    "source": e.source_id,
                    "target": e.target_id,
                    "label": e.rel_type.replace("_", " "),
                    "confirmed": e.dm_confirmed,
                    "confidence": e.confidence,
                }
                for e in data.edges
            ],
            "truncated": data.truncated,
        }
    )

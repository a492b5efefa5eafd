"""The knowledge graph per campaign: entity lists, entity pages, and a graph view (a cytoscape
island over the JSON below; without JavaScript the lists are the whole experience)."""

from __future__ import annotations

from flask import Blueprint, jsonify, request, url_for
from flask_login import current_user, login_required

from glyphoxa_htmx.core import htmx
from glyphoxa_htmx.core.errors import ValidationError
from glyphoxa_htmx.services import knowledge

bp = Blueprint("knowledge", __name__, url_prefix="/knowledge")


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
        page = knowledge.entities(current_user, ref.id, type_=type_, q=q, after=request.args.get("after"))
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

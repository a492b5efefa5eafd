"""Probes, metrics, production config refusal, logs without secrets, the CLI."""

from __future__ import annotations

import json
import logging

import pytest
from click.testing import CliRunner

from glyphoxa_htmx.config import ConfigError, load_settings
from tests.conftest import make_settings


def test_healthz(client):
    assert client.get("/healthz").json == {"status": "ok"}


def test_readyz_ok_names_checks(app, client):
    resp = client.get("/readyz")
    assert resp.status_code == 200
    assert resp.json["checks"] == {"database": "ok", "gateway": "ok", "secrets": "ok"}
    assert resp.json["secrets_backend"] == "local"


def test_readyz_503_when_db_unreachable(app):
    from glyphoxa_htmx.app import create_app

    broken = create_app(make_settings("postgresql://postgres@127.0.0.1:1/nothing"))
    resp = broken.test_client().get("/readyz")
    assert resp.status_code == 503
    assert resp.json["failed"] == ["database"]
    assert broken.test_client().get("/healthz").status_code == 200  # liveness unaffected


def test_readyz_503_when_gateway_unreachable(app, database_url):
    from glyphoxa_htmx.app import create_app

    broken = create_app(
        make_settings(database_url, gateway_grpc_addr="127.0.0.1:1", gateway_secret="s", gateway_timeout=0.5)
    )
    resp = broken.test_client().get("/readyz")
    assert resp.status_code == 503 and resp.json["failed"] == ["gateway"]


def test_metrics_use_plan_names_and_route_templates(app, as_role):
    b = as_role("dm")
    b.get("/team")
    body = b.get("/metrics").get_data(as_text=True)
    assert 'http_server_duration_seconds_count{method="GET",route="/team",status_code="200"}' in body
    assert "http_server_active_requests" in body


def test_request_metrics_work_out_their_labels_once_not_per_request(app, as_role, monkeypatch):
    """prometheus-flask-exporter's own label code asks inspect.getfullargspec of every label
    function on every request (~7 % of a page without a query); core/metrics.py's labels work
    that out when the metric is made. The values stay the exporter's (method, route, status)."""
    import inspect

    b = as_role("dm")
    b.get("/team")
    asked = []
    real = inspect.getfullargspec
    monkeypatch.setattr(inspect, "getfullargspec", lambda f: asked.append(f) or real(f))
    assert b.get("/team", headers={"HX-Request": "true"}).status_code == 200
    assert b.post("/team/nothing-here").status_code in (400, 404, 405)
    assert asked == []
    body = b.get("/metrics").get_data(as_text=True)
    assert 'http_server_duration_seconds_count{method="GET",route="/team",status_code="200"}' in body


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        ({"secret_key": ""}, "SECRET_KEY"),
        ({"dev_login": True}, "GLYPHOXA_DEV_LOGIN"),
        ({"discord_client_id": ""}, "OAuth provider"),
        ({"database_url": ""}, "DATABASE_URL"),
        ({"gateway_grpc_addr": ""}, "GATEWAY_GRPC_ADDR"),
        ({"gateway_secret": ""}, "GATEWAY_SECRET"),
        ({"metrics_token": ""}, "METRICS_TOKEN"),
    ],
)
def test_production_config_refusal_names_the_setting(overrides, fragment):
    good = dict(
        env="production",
        secret_key="k" * 40,
        discord_client_id="id",
        discord_client_secret="sec",
        database_url="postgresql://db/x",
        gateway_grpc_addr="gw:50051",
        gateway_secret="s",
        public_url="https://app.example",
        metrics_token="m" * 24,
    )
    load_settings(environ={}, **good).validate()  # the good config passes
    with pytest.raises(ConfigError) as err:
        load_settings(environ={}, **{**good, **overrides}).validate()
    assert fragment in str(err.value)


def test_production_env_defaults_dev_login_off():
    s = load_settings(environ={"GLYPHOXA_ENV": "production"})
    assert s.dev_login is False and s.gateway_simulator is False


def test_json_logs_carry_ids_and_scrub_secrets(app, database_url, make_user):
    from glyphoxa_htmx.app import create_app
    from glyphoxa_htmx.core.logs import ContextFilter, JsonFormatter
    from tests.conftest import Browser

    probe_app = create_app(make_settings(database_url))
    user = make_user(role="dm")
    records = []

    class Capture(logging.Handler):
        def emit(self, record):
            records.append(self.format(record))

    handler = Capture()
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("glyphoxa_htmx.test")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)

    @probe_app.get("/__log_probe")
    def _probe():  # pragma: no cover - only registered in this test
        logger.info("bot_token=abc.def.ghi stored", extra={"note": "authorization: Bearer sekrit"})
        return "ok"

    b = Browser(probe_app).login(user)
    b.user = user
    try:
        b.get("/__log_probe")
    finally:
        logger.removeHandler(handler)
    entry = json.loads(records[-1])
    assert entry["user_id"] == b.user.id and entry["tenant_id"] == b.user.tenant_id and entry["request_id"]
    assert "abc.def.ghi" not in records[-1] and "sekrit" not in records[-1]


def test_cli_create_admin(app, database_url, make_user, monkeypatch):
    from glyphoxa_htmx.cli import main
    from glyphoxa_htmx.extensions import db
    from glyphoxa_htmx.models import User

    user = make_user(role="tenant_owner")
    with app.app_context():
        discord_id = db.session.get(User, user.id).discord_id
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("LOG_JSON", "0")
    result = CliRunner().invoke(main, ["create-admin", "--discord-id", discord_id])
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert db.session.get(User, user.id).role == "super_admin"
    missing = CliRunner().invoke(main, ["create-admin", "--discord-id", "nobody"])
    assert missing.exit_code == 1 and "sign in once" in missing.output


def test_metrics_token_guards_the_endpoint(app, database_url):
    from glyphoxa_htmx.app import create_app

    guarded = create_app(make_settings(database_url, metrics_token="t" * 24)).test_client()
    assert guarded.get("/metrics").status_code == 401
    assert guarded.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    ok = guarded.get("/metrics", headers={"Authorization": "Bearer " + "t" * 24})
    assert ok.status_code == 200 and b"http_server_duration_seconds" in ok.data

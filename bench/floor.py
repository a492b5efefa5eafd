"""The floor: the least a page can cost on this stack. A minimal Flask app served with the same
gunicorn settings (deploy/gunicorn.conf.py) that reads one row by primary key from the same
database and renders a page-sized Jinja template. The bench reports every page as a ratio to it.

    DATABASE_URL=postgresql://... gunicorn -c deploy/gunicorn.conf.py bench.floor:app
"""

from __future__ import annotations

import os
from pathlib import Path

from flask import Flask, abort, render_template, request
from psycopg_pool import ConnectionPool

app = Flask(__name__, template_folder=str(Path(__file__).with_name("templates")))
_pool: ConnectionPool | None = None
_pid = 0


def pool() -> ConnectionPool:
    """One pool per worker process (created after the fork)."""
    global _pool, _pid
    if _pool is None or _pid != os.getpid():
        url = os.environ["DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
        _pool, _pid = ConnectionPool(url, min_size=2, max_size=10, open=True), os.getpid()
    return _pool


# The floor's one statement (bench/run.py's StatementCosts leaves it out of the app's figures).
STATEMENT = "SELECT id, name, status FROM web.tenants WHERE id = %s"


@app.get("/floor")
def floor():
    tenant = request.args.get("t", "")
    with pool().connection() as conn:
        row = conn.execute(STATEMENT, (tenant,)).fetchone()
    if row is None:
        abort(404)
    rows = [{"n": i, "name": f"{row[1]} row {i}", "status": row[2], "href": f"/floor/item/{i}"} for i in range(40)]
    return render_template("floor.html", tenant=row, rows=rows)


@app.get("/healthz")
def healthz():
    return "ok"

"""WSGI entry point for gunicorn: `gunicorn -c deploy/gunicorn.conf.py wsgi:app`.

Production configuration comes from the environment (see README). Migrations are applied by
`glyphoxa-web migrate` as a deploy step, not here, so many workers never race on them."""

from glyphoxa_htmx.app import create_app, freeze_boot_heap, warm_templates
from glyphoxa_htmx.bootstrap import StartupError, check_gateway_tables, exit_on_startup_error

app = create_app()
try:
    check_gateway_tables(app)
except StartupError as exc:  # one clear line, not two chained tracebacks per worker
    exit_on_startup_error(exc)
warm_templates(app)  # compiled as the worker boots, not during its first users' requests
freeze_boot_heap()  # last: full collections then walk only what requests made (app.py)

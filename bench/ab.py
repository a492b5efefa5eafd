"""Interleaved A/B of two source trees: Python CPU ms per request of the same pages, in-process
(what `bench/run.py`'s `cpu` part measures), the old tree and the new side by side.

    git worktree add --detach /tmp/old HEAD~1
    .venv/bin/python bench/ab.py /tmp/old . floor dashboard "npc editor"

A plain before/after run on a shared VM moves by up to 30 % for the same page; alternating the two
trees in short batches puts both under the same drift. It seeds a throwaway database once
(AB_TENANTS tenants, default 50; migrated by this tree, so the old tree must run on the newer
schema), starts one worker process per tree (each imports its own tree's app), then runs AB_ROUNDS
rounds (default 25) of AB_REQUESTS requests (default 40) of each page in each worker in turn and
prints the median and best ms per request and the change, and PostgreSQL's CPU per request meanwhile
(the mean: its clock ticks are coarse) with the change of the two together. Pages are bench/run.py's PAGES names
(and "floor"); prints figures, asserts nothing.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def worker(root: str, state_file: str) -> None:
    """Serve 'PAGE N' lines on stdin with this tree's app; answer ms per request (process CPU)."""
    sys.path[:0] = [root, str(Path(root) / "bench")]
    import run as bench  # this tree's bench/run.py: PAGES, build_app, fill

    state = json.loads(Path(state_file).read_text())
    os.environ["DATABASE_URL"] = state["url"]
    app = bench.build_app(state["url"])
    tenants = list(state["seeded"].items())[:50]
    prepared: dict[str, list] = {}

    def requests_for(page: str) -> list:
        if page not in prepared:
            if page == "floor":
                import floor

                client = floor.app.test_client()
                prepared[page] = [(client, f"/floor?t={tid}", {}) for tid, _ids in tenants]
            else:
                path, target = bench.PAGES[page]
                headers = {"HX-Request": "true", "HX-Target": target} if target else {}
                prepared[page] = []
                for _tid, ids in tenants:
                    client = app.test_client()
                    client.set_cookie("gx_session", ids["token"])
                    prepared[page].append((client, bench.fill(path, ids), headers))
            run(prepared[page], 2 * len(prepared[page]))  # warm caches (templates, plans, dates)
        return prepared[page]

    def run(batch: list, n: int) -> None:
        for i in range(n):
            client, url, headers = batch[i % len(batch)]
            status = client.get(url, headers=headers).status_code
            assert status == 200, (url, status)

    print("ready", flush=True)
    for line in sys.stdin:
        page, _, n = line.rstrip("\n").rpartition(" ")
        batch = requests_for(page)
        pg = bench.postgres_cpu_seconds()
        started = time.process_time()
        run(batch, int(n))
        used = time.process_time() - started
        print(used * 1000 / int(n), (bench.postgres_cpu_seconds() - pg) * 1000 / int(n), flush=True)


def main() -> None:
    args = sys.argv[1:]
    if len(args) < 1:
        sys.exit(__doc__)
    old = str(Path(args[0]).resolve())
    new = str(Path(args[1]).resolve()) if len(args) > 1 and Path(args[1]).is_dir() else str(HERE.parent)
    pages = [a for a in args[1:] if not Path(a).is_dir()] or ["floor", "dashboard", "campaigns", "sessions"]
    rounds = int(os.environ.get("AB_ROUNDS", "25"))
    n = int(os.environ.get("AB_REQUESTS", "40"))

    sys.path[:0] = [str(HERE.parent), str(HERE)]
    import psycopg
    import run as bench
    from seed import seed

    from glyphoxa_htmx import embedded

    server = bench.server_url()
    dbname = f"glyphoxa_ab_{os.getpid()}"
    url = embedded.recreate_database(server, dbname)
    workers: dict[str, subprocess.Popen] = {}
    state_file = ""
    try:
        bench.build_app(url)  # migrates
        seeded = seed(embedded.libpq_url(url), int(os.environ.get("AB_TENANTS", "50")))
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump({"url": url, "seeded": seeded}, f)
            state_file = f.name
        for name, root in (("old", old), ("new", new)):
            workers[name] = subprocess.Popen(
                [sys.executable, __file__, "--worker", root, state_file],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                cwd=root,
            )
        for proc in workers.values():
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        print(f"old {old}\nnew {new}\n{rounds} rounds × {n} requests per tree, alternating; ms per request")
        print("  Python: the worker's CPU; PostgreSQL: every postgres process's CPU meanwhile (10 ms ticks)")
        print(
            f"  {'page':<18}{'old':>8}{'new':>8}{'change':>8}{'best old':>10}{'best new':>10}"
            f"{'pg old':>8}{'pg new':>8}{'both':>8}"
        )
        for page in pages:
            times: dict[str, list[float]] = {name: [] for name in workers}
            pg: dict[str, list[float]] = {name: [] for name in workers}
            for _ in range(rounds):
                for name, proc in workers.items():
                    assert proc.stdin is not None and proc.stdout is not None
                    proc.stdin.write(f"{page} {n}\n")
                    proc.stdin.flush()
                    cpu, db = proc.stdout.readline().split()
                    times[name].append(float(cpu))
                    pg[name].append(float(db))
            a, b = statistics.median(times["old"]), statistics.median(times["new"])
            pa, pb = statistics.mean(pg["old"]), statistics.mean(pg["new"])
            print(
                f"  {page:<18}{a:>8.3f}{b:>8.3f}{(b / a - 1) * 100:>+7.0f}%"
                f"{min(times['old']):>10.3f}{min(times['new']):>10.3f}"
                f"{pa:>8.3f}{pb:>8.3f}{((b + pb) / (a + pa) - 1) * 100:>+7.0f}%",
                flush=True,
            )
    finally:
        for proc in workers.values():
            if proc.stdin:
                proc.stdin.close()
            proc.wait(timeout=30)
        if state_file:
            os.unlink(state_file)
        with psycopg.connect(embedded.libpq_url(server), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        worker(sys.argv[2], sys.argv[3])
    else:
        main()

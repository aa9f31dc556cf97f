"""The pytest plugin, measured: per-test restore per store, session start-up with and without reuse,
and the same tests on 1 and 2 xdist workers.

    python -m bench.plugin [--tests 40] [--backend local]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SAMPLE = """
import pytest

@pytest.mark.parametrize("n", range({count}))
def test_writes_everywhere(n, tenant, tenant_pg, tenant_mongo, tenant_redis):
    assert tenant_pg.execute("SELECT count(*) FROM customers").fetchone() == (3,)
    tenant_pg.execute("INSERT INTO customers (tenant_id, full_name, email) VALUES (%s, 'B', %s)",
                      (tenant.tenant_id, f"b{{n}}@x.test"))
    tenant_pg.commit()
    assert tenant_mongo.intervention_notes.count_documents({{}}) == 3
    tenant_mongo.intervention_notes.insert_one({{"n": n}})
    key = tenant.redis.key_prefix + "counter"
    assert tenant_redis.incr(key) == 1
"""


def run(directory: Path, env: dict[str, str], *args: str) -> tuple[float, str]:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"pytest failed:\n{result.stdout[-3000:]}\n{result.stderr[-2000:]}")
    return elapsed, result.stdout


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tests", type=int, default=40)
    parser.add_argument("--backend", default="local")
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="bench-plugin-"))
    (directory / "test_sample.py").write_text(SAMPLE.format(count=args.tests))
    name = f"bench-plugin-{os.getpid()}"
    env = dict(os.environ) | {
        "DRIVEOPS_ENV_BACKEND": args.backend,
        "DRIVEOPS_ENV_SERVICES": "postgres,mongo,redis",
        "DRIVEOPS_ENV_NAME": name,
    }
    rows = []
    one, output = run(directory, env)
    rows.append((f"{args.tests} tests, 1 process, session starts the environment", f"{one:.2f} s"))
    restore = re.search(r"driveops-env per-test restore: (.*)", output)
    rows.append(("per-test restore (1 process)", restore.group(1) if restore else "?"))
    two, _ = run(directory, env, "-n", "2")
    rows.append((f"{args.tests} tests, 2 xdist workers, session starts the environment", f"{two:.2f} s"))
    cli = [sys.executable, "-m", "driveops_env.cli"]
    subprocess.run([*cli, "up", "--tenants", "acme"], env=env, check=True, capture_output=True)
    try:
        reused, _ = run(directory, env, "--driveops-reuse")
        rows.append((f"{args.tests} tests, 1 process, --driveops-reuse of a running environment", f"{reused:.2f} s"))
        reused_two, _ = run(directory, env, "--driveops-reuse", "-n", "2")
        rows.append((f"{args.tests} tests, 2 xdist workers, --driveops-reuse", f"{reused_two:.2f} s"))
    finally:
        subprocess.run([*cli, "down"], env=env, check=True, capture_output=True)
    rows.append(("2 workers / 1 process (session starts it)", f"{two / one:.2f}"))
    print("| pytest plugin | value |\n|---|---|")
    for label, value in rows:
        print(f"| {label} | {value} |")


if __name__ == "__main__":
    main()

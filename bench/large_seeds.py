"""The ``large`` seed profile of the benchmark, generated next to the shipped seeds (never committed):
per tenant about 50,000 interventions, 20,000 customers and 20,000 vehicles, 20,000 MongoDB documents
and 10,000 Redis keys, on top of the shipped rows (which the health checks look for).

    python -m bench.large_seeds DIR      writes a seeds directory to DIR
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from driveops_env import paths

CUSTOMERS = VEHICLES = 20_000
INTERVENTIONS = 50_000
DOCUMENTS = 20_000
KEYS = 10_000

LARGE_SQL = f"""
-- the large profile: rows made by the server itself (a seed file of a few lines)
INSERT INTO customers (tenant_id, full_name, email)
SELECT {{{{ tenant_id }}}}, 'Customer ' || i, 'customer' || i || '@large.test'
FROM generate_series(1, {CUSTOMERS}) AS i;

INSERT INTO vehicles (tenant_id, customer_id, vin, plate, make, model, year)
SELECT {{{{ tenant_id }}}}, c.id, 'VIN' || lpad(c.id::text, 14, '0'), 'PL-' || c.id, 'Renault', 'Clio',
       2000 + c.id % 25
FROM customers c WHERE c.email LIKE '%@large.test' LIMIT {VEHICLES};

INSERT INTO interventions (tenant_id, garage_id, vehicle_id, kind, status, cost_cents)
SELECT {{{{ tenant_id }}}}, 1 + i % 2, v.id, 'service', 'done', i % 50000
FROM generate_series(1, {INTERVENTIONS}) AS i
JOIN vehicles v ON v.vin = 'VIN' || lpad((1 + i % {VEHICLES} + 3)::text, 14, '0');
"""


def write(target: Path) -> Path:
    """A copy of the shipped seeds with the large rows, documents and keys added; returns ``target``."""
    shutil.copytree(paths.default_seeds_dir(), target, dirs_exist_ok=True)
    (target / "postgres" / "003_large.sql").write_text(LARGE_SQL)
    documents = [
        {
            "note_id": f"{{{{ tenant_slug }}}}-large-{i}",
            "tenant_id": "{{ tenant_id }}",
            "intervention_id": i,
            "author": "mechanic@large.test",
            "text": f"Routine note number {i}, nothing to report.",
            "created_at": {"$date": "2026-02-01T08:00:00Z"},
        }
        for i in range(DOCUMENTS)
    ]
    notes = {"indexes": [{"keys": {"note_id": 1}, "name": "note_id_unique", "unique": True}], "documents": documents}
    (target / "mongo" / "large_notes.json").write_text(json.dumps(notes))
    keys = {f"session:{i}": {"type": "string", "value": f"user-{i}"} for i in range(KEYS)}
    (target / "redis" / "large.json").write_text(json.dumps(keys))
    return target


if __name__ == "__main__":
    print(write(Path(sys.argv[1])))

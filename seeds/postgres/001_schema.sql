-- DriveOps domain schema, created in each tenant's own database as the tenant's role.
-- Placeholders ({{ tenant_id }}, {{ tenant_slug }}, {{ tenant_name }}) render as quoted SQL literals.

CREATE TABLE tenants (
    id          uuid PRIMARY KEY,
    slug        text NOT NULL UNIQUE,
    name        text NOT NULL,
    active      boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE garages (
    id          serial PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    name        text NOT NULL,
    city        text NOT NULL,
    phone       text
);

CREATE TABLE customers (
    id          serial PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    full_name   text NOT NULL,
    email       text NOT NULL,
    phone       text,
    UNIQUE (tenant_id, email)
);

CREATE TABLE vehicles (
    id            serial PRIMARY KEY,
    tenant_id     uuid NOT NULL REFERENCES tenants (id),
    customer_id   integer NOT NULL REFERENCES customers (id),
    vin           text NOT NULL,
    plate         text NOT NULL,
    make          text NOT NULL,
    model         text NOT NULL,
    year          integer NOT NULL CHECK (year BETWEEN 1950 AND 2100),
    UNIQUE (tenant_id, vin)
);

CREATE TYPE intervention_status AS ENUM ('scheduled', 'in_progress', 'waiting_parts', 'done', 'cancelled');

CREATE TABLE interventions (
    id            serial PRIMARY KEY,
    tenant_id     uuid NOT NULL REFERENCES tenants (id),
    garage_id     integer NOT NULL REFERENCES garages (id),
    vehicle_id    integer NOT NULL REFERENCES vehicles (id),
    kind          text NOT NULL,
    status        intervention_status NOT NULL DEFAULT 'scheduled',
    started_at    timestamptz,
    ended_at      timestamptz,
    cost_cents    integer NOT NULL DEFAULT 0,
    CHECK (ended_at IS NULL OR started_at IS NOT NULL AND ended_at >= started_at)
);

CREATE INDEX interventions_status_idx ON interventions (tenant_id, status);

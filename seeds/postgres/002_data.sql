-- Seed data of one tenant. Every row carries the tenant's GUID, as in production.

INSERT INTO tenants (id, slug, name, active) VALUES ({{ tenant_id }}, {{ tenant_slug }}, {{ tenant_name }}, true);

INSERT INTO garages (tenant_id, name, city, phone) VALUES
    ({{ tenant_id }}, {{ tenant_name }} || ' - Centre', 'Lyon', '+33 4 00 00 00 01'),
    ({{ tenant_id }}, {{ tenant_name }} || ' - North', 'Lille', '+33 3 00 00 00 02');

INSERT INTO customers (tenant_id, full_name, email, phone) VALUES
    ({{ tenant_id }}, 'Camille Martin', 'camille.martin@example.test', '+33 6 00 00 00 01'),
    ({{ tenant_id }}, 'Louis Bernard', 'louis.bernard@example.test', '+33 6 00 00 00 02'),
    ({{ tenant_id }}, 'Ines Petit', 'ines.petit@example.test', NULL);

INSERT INTO vehicles (tenant_id, customer_id, vin, plate, make, model, year) VALUES
    ({{ tenant_id }}, 1, 'VF1RFB00X12345671', 'AB-123-CD', 'Renault', 'Clio', 2019),
    ({{ tenant_id }}, 1, 'VF3LCYHZPJS123452', 'EF-456-GH', 'Peugeot', '308', 2018),
    ({{ tenant_id }}, 2, 'WVWZZZ1JZXW123453', 'IJ-789-KL', 'Volkswagen', 'Golf', 2021),
    ({{ tenant_id }}, 3, 'VF7SA9HZ8DW123454', 'MN-012-OP', 'Citroen', 'C3', 2016);

INSERT INTO interventions (tenant_id, garage_id, vehicle_id, kind, status, started_at, ended_at, cost_cents) VALUES
    ({{ tenant_id }}, 1, 1, 'oil change', 'done', now() - interval '3 days 2 hours', now() - interval '3 days', 8900),
    ({{ tenant_id }}, 1, 2, 'brake pads', 'in_progress', now() - interval '2 hours', NULL, 0),
    ({{ tenant_id }}, 2, 3, 'timing belt', 'waiting_parts', now() - interval '1 day', NULL, 0),
    ({{ tenant_id }}, 2, 4, 'annual service', 'scheduled', NULL, NULL, 0);

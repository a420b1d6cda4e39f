-- Least-privilege roles and row-level security for an mb PostgreSQL store.
--
-- Run as a superuser (or the database owner with CREATEROLE), connected to
-- the mb database, after mb has created its schema (the first
-- `mb-ingest --db ...` as the owner does that). Idempotent: run it again
-- after every mb upgrade, so tables added by new migrations get their
-- grants and policies. scripts/pg-setup.sh wraps it (init, grant, add-vm,
-- add-reader); docs/postgres.md explains the model.
--
-- The roles (cluster-wide group roles, NOLOGIN; login roles are members):
--   the schema owner  runs migrations and mb-customer; bypasses RLS (owner)
--   mb_ingest         VMs: insert their own customer's events, read those
--                     back (duplicate or conflict is told apart by
--                     content), maintain their rollup rows, record runs,
--                     rejects and conflicts, advance mb_clock
--   mb_report         mb-report, Grafana: read everything, write nothing
--   mb_dashboard      mb-dashboard: read everything, write nothing
--
-- Row-level security rather than per-role grants: a grant is per table,
-- and every VM writes into the same tables; only a row policy can say
-- "this VM's rows". Each VM login role is mapped to one customer in
-- mb_vm_roles; the policies on the usage and rollup tables compare
-- customer_id with that mapping, in USING (what the role can see, update)
-- and WITH CHECK (what it can write). A role of mb_ingest without a
-- mapping sees and writes nothing.

\set ON_ERROR_STOP on
SET client_min_messages = warning;

BEGIN;

DO $$
BEGIN
    IF to_regclass('mb_schema_version') IS NULL THEN
        RAISE EXCEPTION 'database % has no mb schema yet', current_database()
            USING HINT = 'run mb-ingest --db ... </dev/null once as the owner role first';
    END IF;
END $$;

-- Group roles (another database of the cluster may have made them first).
DO $$
DECLARE r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['mb_ingest', 'mb_report', 'mb_dashboard'] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', r);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;  -- created concurrently
            END;
        END IF;
    END LOOP;
END $$;

-- Only mb's roles may connect; only the owner creates objects.
DO $$
BEGIN
    EXECUTE format('REVOKE ALL ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO mb_ingest, mb_report, mb_dashboard',
                   current_database());
    -- Batch inserts may stage rows in a temporary table.
    EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO mb_ingest', current_database());
END $$;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO mb_ingest, mb_report, mb_dashboard;

-- The VM-to-customer mapping, owned like the schema (pg_dump keeps it).
CREATE TABLE IF NOT EXISTS mb_vm_roles (
    role_name    TEXT COLLATE "C" PRIMARY KEY,
    customer_id  TEXT COLLATE "C" NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
DO $$
DECLARE owner text;
BEGIN
    SELECT tableowner INTO owner FROM pg_tables
    WHERE schemaname = 'public' AND tablename = 'mb_schema_version';
    EXECUTE format('ALTER TABLE mb_vm_roles OWNER TO %I', owner);
END $$;

-- Start from nothing, then grant exactly what each role needs.
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM mb_ingest, mb_report, mb_dashboard;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM mb_ingest, mb_report, mb_dashboard;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO mb_report, mb_dashboard;

GRANT SELECT ON mb_schema_version TO mb_ingest;
GRANT SELECT, UPDATE ON mb_clock TO mb_ingest;
GRANT SELECT (role_name, customer_id) ON mb_vm_roles TO mb_ingest;
GRANT SELECT, INSERT, UPDATE ON ingest_runs TO mb_ingest;
GRANT INSERT ON rejects, conflicts TO mb_ingest;
-- (No grant on customers*, reprice_*, nor on the *_v views: a view runs
-- with its owner's rights, which would bypass the row policies.)

-- A VM role reads only its own mapping row.
ALTER TABLE mb_vm_roles ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS mb_own_mapping ON mb_vm_roles;
CREATE POLICY mb_own_mapping ON mb_vm_roles FOR SELECT TO mb_ingest
    USING (role_name = current_user);
DROP POLICY IF EXISTS mb_read_all ON mb_vm_roles;
CREATE POLICY mb_read_all ON mb_vm_roles FOR SELECT TO mb_report, mb_dashboard
    USING (true);

-- The per-customer tables (every table with a customer_id but the
-- registry): readers see all, a VM only its customer's rows. The event
-- tables are insert-only for a VM (it must not change what it is billed);
-- the tables mb-ingest maintains beside them (the rollups, and whatever
-- per-customer table a later migration adds) also need UPDATE.
DO $$
DECLARE t text;
own_customer constant text :=
    'customer_id = (SELECT v.customer_id FROM mb_vm_roles v WHERE v.role_name = current_user)';
BEGIN
    FOR t IN
        SELECT c.table_name FROM information_schema.columns c
        JOIN information_schema.tables tb USING (table_schema, table_name)
        WHERE c.table_schema = 'public' AND c.column_name = 'customer_id'
          AND tb.table_type = 'BASE TABLE'
          AND c.table_name NOT IN ('customers', 'customer_vms', 'customer_changes', 'mb_vm_roles')
        ORDER BY 1
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('DROP POLICY IF EXISTS mb_read_all ON %I', t);
        EXECUTE format('CREATE POLICY mb_read_all ON %I FOR SELECT TO mb_report, mb_dashboard '
                       'USING (true)', t);
        EXECUTE format('DROP POLICY IF EXISTS mb_own_customer ON %I', t);
        EXECUTE format('CREATE POLICY mb_own_customer ON %I FOR ALL TO mb_ingest '
                       'USING (%s) WITH CHECK (%s)', t, own_customer, own_customer);
        IF t IN ('api_usage', 'resource_usage', 'activity_log') THEN
            EXECUTE format('GRANT SELECT, INSERT ON %I TO mb_ingest', t);
        ELSE
            EXECUTE format('GRANT SELECT, INSERT, UPDATE ON %I TO mb_ingest', t);
        END IF;
    END LOOP;
END $$;

-- Runs: a VM sees and updates only the runs it recorded itself.
ALTER TABLE ingest_runs ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS mb_read_all ON ingest_runs;
CREATE POLICY mb_read_all ON ingest_runs FOR SELECT TO mb_report, mb_dashboard USING (true);
DROP POLICY IF EXISTS mb_own_runs ON ingest_runs;
CREATE POLICY mb_own_runs ON ingest_runs FOR ALL TO mb_ingest
    USING (db_user = current_user) WITH CHECK (db_user = current_user);

COMMIT;

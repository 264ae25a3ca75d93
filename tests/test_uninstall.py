"""Uninstalling the hub, as an administrator does from Apps, on a copy of the proc database.

Uninstalling ps_integration_hub also uninstalls the modules that depend on it (ps_quote_to_cash,
ps_hr_sync, the test vendor). Odoo deletes their data records (the active mapping versions, their
lines, the value maps...) before it drops the tables: a record that refuses to go is left over,
and Odoo reads its dropped table afterwards, which logs "bad query" errors. Nothing of the hub
may be left, and the log may say no ERROR.
"""

import subprocess
import sys
from pathlib import Path

import psycopg2
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


# Run in an Odoo shell on the copy. Before the uninstallation, what a database in use has and the
# test database lacks: an event mapped by an active version of ps_quote_to_cash, and a "Push to
# Connector" server action using one (both refer to the version with ondelete="restrict").
SHELL = """
mapping = env.ref("ps_quote_to_cash.mapping_hubspot_company")
connector = env["ps.hub.connector"].create({
    "name": "uninstall test", "system": "hubspot", "environment": "production",
    "base_url": "http://127.0.0.1:9", "auth_type": "bearer", "auth_secret": "pat-uninstall",
    "signing_secret": "uninstall-secret", "timeout": 30,
})
env["ps.hub.event"].sudo().create({
    "connector_id": connector.id, "company_id": env.company.id, "direction": "in",
    "event_type": "company.propertyChange", "idempotency_key": "uninstall-test-1",
    "mapping_version_id": mapping.id,
})
env["ir.actions.server"].create({
    "name": "Push company (uninstall test)", "model_id": mapping.model_id.id, "state": "ps_hub_push",
    "ps_hub_connector_id": connector.id, "ps_hub_mapping_id": mapping.id,
})
env.cr.commit()
print("@@SETUP-DONE@@", flush=True)
env["ir.module.module"].search([("name", "=", "ps_integration_hub")]).button_immediate_uninstall()
env.cr.commit()
print("@@UNINSTALLED@@", flush=True)
"""


def _admin(pg_params):
    conn = psycopg2.connect(**dict(pg_params, dbname="postgres"))
    conn.autocommit = True
    return conn


@pytest.fixture
def copy_db(db, pg_params, proc_db):
    """A fresh copy of the proc database (dropped at the end)."""
    name = f"{proc_db}_uninstall"
    # CREATE DATABASE ... TEMPLATE needs the template without sessions: the session's own
    # connection to the proc database is closed meanwhile
    db.conn.close()
    admin = _admin(pg_params)
    try:
        with admin.cursor() as cr:
            cr.execute(f'DROP DATABASE IF EXISTS "{name}"')
            cr.execute(f'CREATE DATABASE "{name}" TEMPLATE "{proc_db}"')
    finally:
        db.conn = psycopg2.connect(**db.params)
        db.conn.autocommit = True
    try:
        yield name
    finally:
        with admin.cursor() as cr:
            cr.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def test_uninstalling_the_hub_logs_no_error_and_leaves_no_table(copy_db, config_path, pg_params, tmp_path):
    log_path = tmp_path / "uninstall.log"
    with open(log_path, "w") as log:
        proc = subprocess.run(
            [sys.executable, "-m", "odoo", "shell", "-c", config_path, "-d", copy_db,
             "--no-http", "--log-level=info"],
            check=False, input=SHELL, stdout=log, stderr=subprocess.STDOUT, text=True, cwd=REPO_ROOT, timeout=300,
        )
    output = log_path.read_text()
    assert proc.returncode == 0, output[-4000:]
    assert "@@SETUP-DONE@@" in output and "@@UNINSTALLED@@" in output, output[-4000:]

    errors = [line for line in output.splitlines() if " ERROR " in line or " CRITICAL " in line]
    assert not errors, "\n".join(errors[:20])

    conn = psycopg2.connect(**dict(pg_params, dbname=copy_db))
    try:
        with conn.cursor() as cr:
            cr.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE 'ps\\_hub\\_%'")
            assert [row[0] for row in cr.fetchall()] == []
            cr.execute("SELECT name, state FROM ir_module_module WHERE name IN %s ORDER BY name",
                       [("ps_integration_hub", "ps_quote_to_cash", "ps_hr_sync", "ps_hub_test_vendor")])
            assert {state for _name, state in cr.fetchall()} == {"uninstalled"}
            cr.execute("SELECT count(*) FROM ir_model_data WHERE module IN %s",
                       [("ps_integration_hub", "ps_quote_to_cash", "ps_hr_sync", "ps_hub_test_vendor")])
            assert cr.fetchone()[0] == 0
    finally:
        conn.close()

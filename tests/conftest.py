"""Fixtures of the process-level tests: real Odoo processes against a real database.

These tests run in the same pytest process as the pytest-odoo tests, whose Odoo is
configured for another database. So nothing here imports Odoo: the proc database
(``PS_HUB_PROC_DB``) is reached with psycopg2, and Odoo runs in subprocesses
(``odoo_script``, ``odoo_process``, or a whole ``odoo server``).
"""

import configparser
import json
import os
import random
import select
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psycopg2
import pytest
import requests

from ps_hub_fakes import FakeHubSpot

REPO_ROOT = Path(__file__).resolve().parents[1]
RUN_DIR = REPO_ROOT / ".run"
RESULT_MARK = "@@PS_HUB_RESULT@@ "
PRODUCT_SKU = "PS-CONSULT-TM"

# Run inside every Odoo subprocess: an environment on the proc database, committed at
# the end. The test's code runs with ``env``, ``cr`` and ``emit`` (returns a JSON value
# to the test) in scope.
_PRELUDE = """
import json, sys
from odoo import SUPERUSER_ID, api
from odoo.tools import config
config.parse_config(["-c", {conf!r}, "-d", {db!r}, "--log-level=warn"])
from odoo.modules.registry import Registry

def emit(value):
    print({mark!r} + json.dumps(value), flush=True)

with Registry({db!r}).cursor() as cr:
    env = api.Environment(cr, SUPERUSER_ID, {{}})
    exec(compile({code!r}, "<odoo_script>", "exec"), {{"env": env, "cr": cr, "emit": emit, "json": json}})
"""


def _results(stdout: str) -> list:
    return [json.loads(line[len(RESULT_MARK):]) for line in stdout.splitlines() if line.startswith(RESULT_MARK)]


# --------------------------------------------------------------------------- config and database


@pytest.fixture(scope="session")
def load_registry():
    """Replaces pytest-odoo's autouse fixture for these tests, which need no registry in this process.

    (pytest-odoo's loads the registry of its own database, and fails when pytest runs without
    --odoo-database; the addons' tests still get pytest-odoo's.)
    """
    return


@pytest.fixture(scope="session")
def proc_db() -> str:
    db = os.environ.get("PS_HUB_PROC_DB")
    if not db:
        pytest.skip("PS_HUB_PROC_DB is not set: run through scripts/test")
    return db


@pytest.fixture(scope="session")
def config_path(proc_db) -> str:
    path = os.environ.get("PS_HUB_TEST_CONFIG")
    assert path and Path(path).is_file(), f"PS_HUB_TEST_CONFIG={path!r} is not an odoo.conf (run through scripts/test)"
    return path


@pytest.fixture(scope="session")
def pg_params(config_path, proc_db) -> dict:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(config_path)
    opts = parser["options"] if parser.has_section("options") else {}

    def opt(name, env, default):
        value = opts.get(name)
        if value in (None, "", "False"):
            value = os.environ.get(env) or default
        return value

    params = {
        "dbname": proc_db,
        "host": opt("db_host", "PGHOST", "127.0.0.1"),
        "port": opt("db_port", "PGPORT", "5432"),
        "user": opt("db_user", "PGUSER", "odoo"),
    }
    password = opt("db_password", "PGPASSWORD", None)
    if password:
        params["password"] = password
    return params


class ProcDB:
    """Autocommit psycopg2 access to the proc database."""

    def __init__(self, params: dict):
        self.params = params
        self.conn = psycopg2.connect(**params)
        self.conn.autocommit = True

    def all(self, query: str, params=None) -> list[tuple]:
        with self.conn.cursor() as cr:
            cr.execute(query, params)
            return cr.fetchall()

    def one(self, query: str, params=None):
        rows = self.all(query, params)
        return rows[0][0] if rows else None

    def run(self, query: str, params=None) -> None:
        with self.conn.cursor() as cr:
            cr.execute(query, params)

    def other_backends(self) -> int:
        """Connections to the proc database other than this one."""
        return self.one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )

    def wake_crons(self) -> None:
        """What ``ir.cron._notifydb`` does: wake the cron threads listening on the postgres database."""
        conn = psycopg2.connect(**dict(self.params, dbname="postgres"))
        try:
            conn.autocommit = True
            with conn.cursor() as cr:
                cr.execute("SELECT pg_notify('cron_trigger', %s)", [self.params["dbname"]])
        finally:
            conn.close()

    def close(self) -> None:
        self.conn.close()


@pytest.fixture(scope="session")
def db(pg_params):
    handle = ProcDB(pg_params)
    yield handle
    handle.close()


# --------------------------------------------------------------------------- Odoo subprocesses


@pytest.fixture(scope="session")
def odoo_process(config_path, proc_db):
    """Start ``code`` in a Python subprocess with an Odoo env on the proc db; return the Popen."""

    def start(code: str, **popen_kwargs) -> subprocess.Popen:
        script = _PRELUDE.format(conf=config_path, db=proc_db, mark=RESULT_MARK, code=textwrap.dedent(code))
        popen_kwargs.setdefault("stdout", subprocess.PIPE)
        popen_kwargs.setdefault("stderr", subprocess.PIPE)
        return subprocess.Popen([sys.executable, "-c", script], text=True, cwd=REPO_ROOT, **popen_kwargs)

    return start


@pytest.fixture(scope="session")
def wait_ready():
    """Wait until a worker started with ``odoo_process`` prints READY; kill it and show its log if not."""

    def wait(proc: subprocess.Popen, log, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _w, _x = select.select([proc.stdout], [], [], 1)
            if ready:
                line = proc.stdout.readline()
                if line.strip() == "READY":
                    return
                if not line:
                    break
            if proc.poll() is not None:
                break
        proc.kill()
        log.seek(0)
        raise AssertionError(f"worker did not start:\n{log.read()[-4000:]}")

    return wait


@pytest.fixture(scope="session")
def odoo_script(odoo_process):
    """Run ``code`` with ``env`` (superuser, proc db) in a subprocess, commit, return what it emit()ted.

    One emit() gives its value, several a list of them, none None.
    """

    def run(code: str, timeout: float = 120):
        proc = odoo_process(code)
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
            raise AssertionError(f"odoo_script timed out after {timeout}s:\n{stderr[-4000:]}") from None
        if proc.returncode:
            raise AssertionError(f"odoo_script failed (exit {proc.returncode}):\n{stderr[-4000:]}")
        results = _results(stdout)
        return results[0] if len(results) == 1 else (results or None)

    return run


_ODOO_BIN: list[Path | None] = []


def odoo_launcher() -> list[str]:
    """What follows ``sys.executable`` to start an Odoo server: odoo-bin when there is one.

    In prefork mode Odoo respawns its gevent process as ``[sys.executable, sys.argv[0], ...]``;
    under ``-m odoo`` that is odoo/__main__.py, which fails and is respawned in a loop.
    """
    if not _ODOO_BIN:
        code = "import os, odoo.release as r; print(os.path.dirname(os.path.dirname(r.__file__)))"
        root = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        odoo_bin = Path(root.stdout.strip()) / "odoo-bin"
        _ODOO_BIN.append(odoo_bin if odoo_bin.is_file() else None)
    return [str(_ODOO_BIN[0])] if _ODOO_BIN[0] else ["-m", "odoo"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def get_free_port():
    return free_port


class OdooServer:
    """``odoo server`` on the proc db, in its own process group.

    Threaded (``python3 -m odoo``) unless ``extra`` asks for ``--workers``: then prefork,
    started with odoo-bin and a gevent port of its own.
    """

    def __init__(self, config_path: str, db: str, log_name: str, *extra: str):
        self.port = free_port()
        RUN_DIR.mkdir(exist_ok=True)
        self.log_path = RUN_DIR / log_name
        self.log_path.unlink(missing_ok=True)
        prefork = any(arg.startswith("--workers=") and arg != "--workers=0" for arg in extra)
        launcher = odoo_launcher() if prefork else ["-m", "odoo"]
        self.args = [
            sys.executable, *launcher, "server", "-c", config_path, "-d", db, f"--db-filter=^{db}$",
            "--http-interface=127.0.0.1", f"--http-port={self.port}", f"--logfile={self.log_path}",
            *([f"--gevent-port={free_port()}"] if prefork else []), *extra,
        ]
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> "OdooServer":
        self.proc = subprocess.Popen(
            self.args, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"odoo server exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if requests.get(f"{self.url}/web/health", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise AssertionError(f"odoo server not answering after {timeout}s:\n{self.log_tail()}")

    def kill(self, sig=signal.SIGKILL) -> None:
        """Signal the whole process group (the server and anything it started) and reap it."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, sig)  # start_new_session: the group id is the server's pid
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, n: int = 60) -> str:
        return "\n".join(self.log().splitlines()[-n:])


@pytest.fixture
def odoo_server(config_path, proc_db):
    """Factory of Odoo servers on the proc db; all of them are killed at teardown."""
    servers: list[OdooServer] = []

    def make(log_name: str, *extra: str) -> OdooServer:
        server = OdooServer(config_path, proc_db, log_name, *extra)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.kill()


# --------------------------------------------------------------------------- fake HubSpot


@pytest.fixture
def fake_hubspot():
    """A FakeHubSpot served from this process (set ``.latency`` to slow it down)."""
    fake = FakeHubSpot().start()
    yield fake
    fake.stop()


# --------------------------------------------------------------------------- proc db data


@pytest.fixture(scope="session")
def q2c_product(odoo_script) -> int:
    """The sellable service the test deals' line items point to (SKU PS-CONSULT-TM), kept light."""
    return odoo_script(f"""
        product = env["product.product"].search([("default_code", "=", {PRODUCT_SKU!r})], limit=1)
        if not product:
            product = env["product.product"].create({{
                "name": "Consulting T&M (process tests)", "default_code": {PRODUCT_SKU!r},
                "type": "service", "service_tracking": "no", "sale_ok": True,
                "list_price": 150.0, "company_id": False,
            }})
        emit(product.id)
    """)


@pytest.fixture
def hub_connector(odoo_script):
    """Factory of fresh HubSpot connectors; at teardown, deletes what they made.

    Returns {"id", "token", "signing_secret"}. Teardown removes the connector's sale
    orders (cancelled, then deleted), bound customers and contacts, events and bindings.
    """
    made: list[int] = []

    def make(base_url: str, name: str) -> dict:
        secret = f"hs-client-secret-{random.getrandbits(48):x}"
        values = {
            "name": name, "system": "hubspot", "environment": "production", "base_url": base_url,
            "auth_type": "bearer", "auth_secret": "pat-proc-test-token", "signing_secret": secret,
            "timeout": 30,
        }
        found = odoo_script(f"""
            connector = env["ps.hub.connector"].create({values!r})
            emit({{"id": connector.id, "token": connector.inbound_token}})
        """)
        made.append(found["id"])
        return dict(found, signing_secret=secret)

    yield make
    if made:
        odoo_script(f"""
            ids = {made!r}
            Binding = env["ps.hub.binding"]
            bindings = Binding.search([("connector_id", "in", ids)])
            partner_ids = [b.res_id for b in bindings if b.res_model == "res.partner"]
            partners = env["res.partner"].browse(partner_ids).exists()
            orders = env["sale.order"].browse(
                [b.res_id for b in bindings if b.res_model == "sale.order"]).exists()
            orders |= env["sale.order"].search([("partner_id", "child_of", partners.ids)])
            orders.with_context(disable_cancel_warning=True).action_cancel()
            orders.unlink()
            env["ps.hub.event"].search([("connector_id", "in", ids)]).unlink()
            bindings.unlink()
            env["ps.hub.connector"].browse(ids).unlink()
            partners.with_context(active_test=False).mapped("child_ids").unlink()
            partners.unlink()
        """, timeout=300)


def _closed_won(event_id: int, deal_id: str) -> dict:
    return {
        "eventId": event_id, "subscriptionId": 2310087, "portalId": 8765432, "appId": 1160452,
        "occurredAt": int(time.time() * 1000), "subscriptionType": "deal.propertyChange",
        "attemptNumber": 0, "objectId": int(deal_id), "propertyName": "dealstage",
        "propertyValue": "closedwon", "changeSource": "CRM_UI", "sourceId": "userId:4401122",
    }


@pytest.fixture
def closed_won():
    """closed_won(event_id, deal_id): a HubSpot webhook event moving the deal to closedwon."""
    return _closed_won


def _add_deals(fake, count: int) -> list[str]:
    base = random.randint(100, 899) * 10_000_000
    deal_ids = []
    for i in range(1, count + 1):
        deal_id = str(base + i)
        fake.add_deal(
            deal_id, company_id=str(base + 5_000_000 + i), contact_id=None,
            line_items=[{"name": "Consulting T&M", "hs_sku": PRODUCT_SKU, "quantity": 10, "price": 150}],
            # the connector's company and currency, no payment term to look up
            legal_entity="", deal_currency_code="", payment_terms="",
        )
        deal_ids.append(deal_id)
    return deal_ids


@pytest.fixture
def add_deals(q2c_product):
    """add_deals(fake, count): deals of one PS-CONSULT-TM line, each of its own company; their ids."""
    return _add_deals


@pytest.fixture
def event_rows():
    """The connector's events as (id, state, attempts, reason, last_error, external_id, res_model, res_id)."""
    def fetch(db, cid):
        return db.all(
            "SELECT id, state, attempts, reason, last_error, external_id, res_model, res_id "
            "FROM ps_hub_event WHERE connector_id = %s", [cid])
    return fetch


@pytest.fixture
def assert_one_order_per_deal():
    """Check: each deal bound to its own confirmed order, the event pointing to it, no other order.

    ``rows`` are the connector's events as the ``event_rows`` fixture returns them.
    """
    def check(db, cid, rows, deal_ids):
        bindings = dict(db.all(
            "SELECT external_id, res_id FROM ps_hub_binding "
            "WHERE connector_id = %s AND external_model = 'deal' AND res_model = 'sale.order'", [cid]))
        assert set(bindings) == set(deal_ids)
        assert len(set(bindings.values())) == len(deal_ids)
        assert {r[5]: (r[6], r[7]) for r in rows} == {d: ("sale.order", o) for d, o in bindings.items()}
        orders = db.all(
            "SELECT o.id, o.state FROM sale_order o WHERE o.partner_id IN ("
            " SELECT res_id FROM ps_hub_binding WHERE connector_id = %s AND external_model = 'company'"
            " AND res_model = 'res.partner')", [cid])
        assert len(orders) == len(deal_ids)
        assert {o[0] for o in orders} == set(bindings.values())
        assert {o[1] for o in orders} == {"sale"}
    return check

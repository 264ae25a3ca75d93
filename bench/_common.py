"""Helpers shared by the ps-hub benchmark scripts (bench/ingest.py, bench/processing.py).

The scripts are run as files (``python3 bench/ingest.py``), so Python puts bench/ on
``sys.path`` and they import this module as ``_common``.
"""

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from types import ModuleType

import psycopg2
import requests

REPO = Path(__file__).resolve().parent.parent
# the fake vendors (ps_hub_fakes) of this checkout, without an install of the repository
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
RUN_DIR = REPO / ".run"
PG = {"host": os.environ.get("PGHOST", "127.0.0.1"), "port": int(os.environ.get("PGPORT", "5432")),
      "user": os.environ.get("PGUSER", "odoo")}
WORKER_CRONS = ("ir_cron_process_events_1", "ir_cron_process_events_2")

_log_clock = False


# ---------------------------------------------------------------- logging

def configure_log(clock: bool) -> None:
    """Choose whether ``log`` prefixes its lines with the wall-clock time."""
    global _log_clock  # noqa: PLW0603 (one switch per script run)
    _log_clock = clock


def log(msg: str) -> None:
    """Print one ``[bench]`` progress line, flushed at once."""
    stamp = f"{time.strftime('%H:%M:%S')} " if _log_clock else ""
    print(f"[bench] {stamp}{msg}", flush=True)


def load_module(name: str, relpath: str) -> ModuleType:
    """Import the file ``relpath`` of the repository as module ``name`` (without Odoo)."""
    spec = importlib.util.spec_from_file_location(name, REPO / relpath)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------- Odoo and config

def odoo_root() -> Path:
    """The Odoo source root (the folder holding odoo/ and addons/)."""
    code = ("import os, odoo.release as r, odoo; print(r.version); "
            "print(os.path.dirname(os.path.dirname(r.__file__))); "
            "print(os.path.dirname(list(odoo.__path__)[0]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    version, release_root, path_root = out.splitlines()[:3]
    if not version.startswith("19.0"):
        raise SystemExit(f"error: Odoo {version} found; ps-hub needs 19.0")
    # odoo.__path__ may be a namespace path whose first entry is site-packages/odoo
    # (editable installs): prefer the tree that holds odoo/release.py.
    for root in (release_root, path_root):
        if (Path(root) / "addons").is_dir():
            return Path(root)
    return Path(release_root)


def odoo_launcher() -> list[str]:
    """The arguments after ``sys.executable`` that start Odoo: odoo-bin when there is one."""
    # In prefork mode Odoo respawns its gevent (websocket) process as
    # [sys.executable, sys.argv[0], 'gevent', ...]; under `python -m odoo` sys.argv[0] is
    # odoo/__main__.py, which fails on its relative import and is respawned in a loop
    # (hundreds of interpreter starts eating CPU during the run). Run odoo-bin when the
    # source tree has one, so the gevent process starts once, on a port of its own.
    odoo_bin = odoo_root() / "odoo-bin"
    return [str(odoo_bin)] if odoo_bin.is_file() else ["-m", "odoo"]


def secret_key() -> str:
    """The Fernet key for ps_hub_secret_key: $PS_HUB_SECRET_KEY, else .run/secret.key (made when missing)."""
    if os.environ.get("PS_HUB_SECRET_KEY"):
        return os.environ["PS_HUB_SECRET_KEY"]
    keyfile = RUN_DIR / "secret.key"
    if not keyfile.exists():
        from cryptography.fernet import Fernet  # noqa: PLC0415 (only when missing)
        keyfile.write_text(Fernet.generate_key().decode() + "\n")
    return keyfile.read_text().strip()


def write_config(path: Path, db: str, options: Sequence[str] = (), sections: Sequence[str] = (),
                 extra_addons: Sequence[str] = ()) -> Path:
    """Write an odoo.conf for ``db`` at ``path``; ``options`` go into [options], ``sections`` after it,
    ``extra_addons`` (folders holding addons, e.g. queue_job's) at the end of the addons path."""
    root = odoo_root()
    addons = [str(REPO), *extra_addons]
    if (root / "addons").is_dir():
        addons.insert(0, str(root / "addons"))
    path.write_text("\n".join([
        "[options]",
        f"addons_path = {','.join(addons)}",
        f"db_host = {PG['host']}",
        f"db_port = {PG['port']}",
        f"db_user = {PG['user']}",
        f"db_name = {db}",
        *options,
        f"ps_hub_secret_key = {secret_key()}",
        "",
        *sections,
    ]))
    return path


# ---------------------------------------------------------------- database

def pg_connect(dbname: str) -> "psycopg2.extensions.connection":
    """A psycopg2 connection to ``dbname`` with the PG* settings."""
    return psycopg2.connect(dbname=dbname, **PG)


def create_db(conf: Path, db: str, modules: str) -> None:
    """Drop ``db`` if it exists and install ``modules`` into a new one (log in .run/install-<db>.log)."""
    conn = pg_connect("postgres")
    conn.autocommit = True
    with conn.cursor() as cr:
        cr.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    conn.close()
    install_modules(conf, db, modules)


def install_modules(conf: Path, db: str, modules: str) -> None:
    """Install ``modules`` into ``db`` (made when missing; log in .run/install-<db>.log)."""
    logfile = RUN_DIR / f"install-{db}.log"
    log(f"installing {modules} into {db} (log: {logfile})")
    t0 = time.monotonic()
    with logfile.open("w") as fh:
        rc = subprocess.run(
            [sys.executable, "-m", "odoo", "-c", str(conf), "-d", db, "-i", modules,
             "--stop-after-init", "--log-level=warn"],
            stdout=fh, stderr=subprocess.STDOUT, cwd=REPO, check=False,
        ).returncode
    if rc:
        print(logfile.read_text()[-4000:], file=sys.stderr)
        raise SystemExit(f"error: install failed (rc={rc})")
    log(f"installed in {time.monotonic() - t0:.0f} s")


def odoo_shell(conf: Path, db: str, script: str,
               timeout: float | None = None) -> tuple[subprocess.CompletedProcess, dict]:
    """Run ``script`` in `odoo shell`; return the process and its ``BENCH key=value`` lines."""
    proc = subprocess.run(
        [sys.executable, "-m", "odoo", "shell", "-c", str(conf), "-d", db, "--log-level=warn", "--no-http"],
        input=script, capture_output=True, text=True, cwd=REPO, check=False, timeout=timeout,
    )
    values = {}
    for line in proc.stdout.splitlines():
        if line.startswith("BENCH "):
            key, _, value = line[6:].partition("=")
            values[key] = value.strip()
    return proc, values


def set_crons(db: str, active: bool, trigger: bool = False) -> datetime:
    """Activate/deactivate the worker crons; with ``trigger``, what ``cron._trigger()`` does:
    one ir.cron.trigger each, committed, then NOTIFY cron_trigger on the postgres database."""
    conn = pg_connect(db)
    try:
        with conn, conn.cursor() as cr:
            cr.execute(
                "SELECT res_id FROM ir_model_data WHERE module = 'ps_integration_hub' AND model = 'ir.cron' "
                "AND name = ANY(%s)", (list(WORKER_CRONS),))
            cron_ids = [r[0] for r in cr.fetchall()]
            cr.execute("UPDATE ir_cron SET active = %s WHERE id = ANY(%s)", (active, cron_ids))
            if trigger:
                for cron_id in cron_ids:
                    cr.execute(
                        "INSERT INTO ir_cron_trigger (cron_id, call_at, create_uid, write_uid, create_date, "
                        "write_date) VALUES (%s, now() AT TIME ZONE 'UTC', 1, 1, now() AT TIME ZONE 'UTC', "
                        "now() AT TIME ZONE 'UTC')", (cron_id,))
            cr.execute("SELECT now() AT TIME ZONE 'UTC'")
            at = cr.fetchone()[0]
    finally:
        conn.close()
    if trigger:
        conn = pg_connect("postgres")
        conn.autocommit = True
        with conn.cursor() as cr:
            cr.execute("SELECT pg_notify('cron_trigger', %s)", (db,))
        conn.close()
    return at


# ---------------------------------------------------------------- server

def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(conf: Path, db: str, port: int, logpath: Path, *, cron_threads: int,
                 before: Sequence[str] = (), after: Sequence[str] = (), env: dict | None = None,
                 timeout: float = 90, poll: float = 0.3, see: str | None = None,
                 workers: int = 2, db_filter: bool = True) -> subprocess.Popen:
    """Start ``odoo server`` (``workers`` workers, own process group) and wait until /web/health answers.

    ``db_filter``: serve ``db`` through ``--db-filter=^db$`` (Odoo's documented setting: a request
    without a session then lists the databases, on a new connection to ``postgres``), else through
    ``--database`` alone (Odoo serves that one database without listing)."""
    see = see or str(logpath)
    with logpath.open("w") as logfile:
        proc = subprocess.Popen(
            [sys.executable, *odoo_launcher(), "server", "-c", str(conf), "-d", db,
             *([f"--db-filter=^{db}$"] if db_filter else []),
             *before, f"--workers={workers}", f"--max-cron-threads={cron_threads}",
             f"--http-port={port}", f"--gevent-port={free_port()}", "--http-interface=127.0.0.1",
             "--log-level=warn", *after],
            stdout=logfile, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True, env=env,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"error: odoo server exited (rc={proc.returncode}), see {see}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/web/health", timeout=2).ok:
                return proc
        except requests.RequestException:
            pass
        time.sleep(poll)
    stop_server(proc)
    raise SystemExit(f"error: odoo server not healthy after {timeout:.0f} s, see {see}")


def stop_server(proc: subprocess.Popen | None, timeout: float = 15) -> None:
    """Stop a server started by ``start_server`` (SIGTERM to its group, SIGKILL when it hangs)."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass


# ---------------------------------------------------------------- machine

def cpu_model() -> str | None:
    """The CPU model name from /proc/cpuinfo, None when unknown."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None

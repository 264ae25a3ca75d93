# Shared by scripts/demo and scripts/test: find Odoo, prepare PostgreSQL and Python.
# shellcheck shell=bash
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN_DIR="$REPO_ROOT/.run"
PYTHON="${PYTHON:-python3}"
# this checkout's ps_hub_fakes first, whatever checkout the editable install points at
export PYTHONPATH="$REPO_ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PGHOST="${PGHOST:-127.0.0.1}" PGPORT="${PGPORT:-5432}" PGUSER="${PGUSER:-odoo}"
mkdir -p "$RUN_DIR"

die() { echo "error: $*" >&2; exit 1; }

# Odoo is found through the environment: --odoo PATH / ODOO_PATH (a source checkout),
# else whatever `import odoo` gives the Python in use.
find_odoo() {
    if [ -n "${ODOO_PATH:-}" ]; then
        [ -d "$ODOO_PATH/odoo" ] || die "ODOO_PATH=$ODOO_PATH is not an Odoo source tree (no odoo/ folder in it)"
        export PYTHONPATH="$ODOO_PATH${PYTHONPATH:+:$PYTHONPATH}"
    fi
    local info
    if ! info="$("$PYTHON" -c 'import os, odoo.release as r; print(r.version); print(os.path.dirname(os.path.dirname(r.__file__)))' 2>/dev/null)"; then
        die "Odoo 19.0 is not importable by $PYTHON. Install Odoo 19.0 (https://www.odoo.com/documentation/19.0/administration/on_premise/source.html) or pass its source folder: --odoo /path/to/odoo (or ODOO_PATH=...)."
    fi
    ODOO_VERSION="$(echo "$info" | sed -n 1p)"
    ODOO_ROOT="$(echo "$info" | sed -n 2p)"
    case "$ODOO_VERSION" in 19.0*) ;; *) die "Odoo $ODOO_VERSION found at $ODOO_ROOT; ps-hub needs 19.0";; esac
    ADDONS_PATH="$REPO_ROOT"
    [ -d "$ODOO_ROOT/addons" ] && ADDONS_PATH="$ODOO_ROOT/addons,$ADDONS_PATH"
    export ODOO_ROOT ADDONS_PATH
    echo "Odoo $ODOO_VERSION at $ODOO_ROOT"
}

# The project's Python requirements, without moving Odoo's own pins.
install_requirements() {
    local constraints="$RUN_DIR/constraints.txt"
    echo 'setuptools<81' > "$constraints"
    if [ -f "$ODOO_ROOT/requirements.txt" ]; then
        grep -v '^\s*#' "$ODOO_ROOT/requirements.txt" | grep -v '^\s*$' >> "$constraints"
    fi
    PIP_CONSTRAINT="$constraints" "$PYTHON" -m pip install -q --disable-pip-version-check \
        -r "$REPO_ROOT/requirements.txt" 2>&1 | grep -v "Running pip as the 'root' user" || true
    # the fake vendors and their fixtures, imported by the tests, the demo and bench/
    "$PYTHON" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation \
        -e "$REPO_ROOT" 2>&1 | grep -v "Running pip as the 'root' user" || true
    "$PYTHON" -c 'import pytest_odoo, stripe, hubspot, standardwebhooks, freezegun, ps_hub_fakes' \
        || die "installing requirements.txt failed"
}

# A PostgreSQL role Odoo may use (Odoo refuses the postgres superuser).
ensure_pg_role() {
    if psql -d postgres -tAc 'select 1' >/dev/null 2>&1; then
        return
    fi
    echo "Creating PostgreSQL role $PGUSER"
    local sql="CREATE ROLE \"$PGUSER\" LOGIN CREATEDB"
    if psql -U postgres -d postgres -c "$sql" >/dev/null 2>&1 \
        || { command -v sudo >/dev/null && sudo -u postgres psql -h "" -c "$sql" >/dev/null 2>&1; } \
        || { [ "$(id -u)" = 0 ] && command -v runuser >/dev/null && runuser -u postgres -- psql -c "$sql" >/dev/null 2>&1; }; then
        return
    fi
    die "cannot connect to PostgreSQL at $PGHOST:$PGPORT as '$PGUSER', nor create that role. Create it (CREATE ROLE $PGUSER LOGIN CREATEDB) or set PGUSER/PGPASSWORD/PGHOST."
}

# The encryption key of connector secrets, made once per checkout.
ensure_secret_key() {
    local keyfile="$RUN_DIR/secret.key"
    if [ -z "${PS_HUB_SECRET_KEY:-}" ]; then
        [ -f "$keyfile" ] || "$PYTHON" -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())' > "$keyfile"
        PS_HUB_SECRET_KEY="$(cat "$keyfile")"
    fi
    export PS_HUB_SECRET_KEY
}

# write_config FILE DBNAME HTTP_PORT [extra lines...]
write_config() {
    local file="$1" db="$2" port="$3"; shift 3
    {
        echo "[options]"
        echo "addons_path = $ADDONS_PATH"
        echo "db_host = $PGHOST"
        echo "db_port = $PGPORT"
        echo "db_user = $PGUSER"
        [ -n "${PGPASSWORD:-}" ] && echo "db_password = $PGPASSWORD"
        echo "db_name = $db"
        echo "dbfilter = ^$db\$"
        echo "http_port = $port"
        echo "ps_hub_secret_key = $PS_HUB_SECRET_KEY"
        for line in "$@"; do echo "$line"; done
    } > "$file"
}

# install_db CONFIG DBNAME MODULES [--with-demo]
install_db() {
    local conf="$1" db="$2" modules="$3"; shift 3
    dropdb --if-exists "$db" >/dev/null 2>&1 || true
    echo "Installing $modules into database $db"
    "$PYTHON" -m odoo -c "$conf" -d "$db" -i "$modules" --stop-after-init \
        --log-level=warn "$@" > "$RUN_DIR/install-$db.log" 2>&1 \
        || { tail -n 60 "$RUN_DIR/install-$db.log"; die "installing $modules failed (log: $RUN_DIR/install-$db.log)"; }
    if grep -E ' (ERROR|CRITICAL) ' "$RUN_DIR/install-$db.log" >/dev/null; then
        grep -E ' (ERROR|CRITICAL) ' -A5 "$RUN_DIR/install-$db.log" | head -40
        die "installing $modules logged errors (log: $RUN_DIR/install-$db.log)"
    fi
}

parse_odoo_arg() {
    while [ $# -gt 0 ]; do
        case "$1" in
            --odoo) ODOO_PATH="$2"; shift 2;;
            --odoo=*) ODOO_PATH="${1#--odoo=}"; shift;;
            *) EXTRA_ARGS+=("$1"); shift;;
        esac
    done
}

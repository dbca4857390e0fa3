# Shared settings and helpers for localstack/up, down and status (sourced, not run).
# shellcheck disable=SC2034 # the variables are used by the scripts that source this file
# Everything lives under one project-owned, git-ignored folder (.local/ by default).

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOCALSTACK_DIR=$REPO_ROOT/localstack
LOCAL_DIR=${DATA_REFRESH_LOCAL:-$REPO_ROOT/.local}

# Ports (loopback only). Defaults avoid the temporary dev services (55439 / 19209).
PG_PORT=${LOCAL_PG_PORT:-55432}
ES_PORT=${LOCAL_ES_PORT:-19200}
ES_TRANSPORT_PORT=${LOCAL_ES_TRANSPORT_PORT:-19300}
LS_PORT=${LOCALSTACK_PORT:-4566}
REGION=${LOCAL_AWS_REGION:-us-east-1}

# PostgreSQL and Elasticsearch refuse to run as root: they run as this system user.
SERVICE_USER=${LOCAL_SERVICE_USER:-datarefresh}
PG_BIN=${LOCAL_PG_BIN:-/usr/lib/postgresql/15/bin}
SCHEMA_DIR=${LOCAL_SCHEMA_DIR:-$LOCALSTACK_DIR/schema}

VENV_DIR=$LOCAL_DIR/venv
LS_VENV=$VENV_DIR/localstack
ES_VENV=$VENV_DIR/elasticsearch
DATA_DIR=$LOCAL_DIR/data
LOG_DIR=$LOCAL_DIR/log
RUN_DIR=$LOCAL_DIR/run
PG_DATA=$DATA_DIR/postgres
ES_HOME=$DATA_DIR/elasticsearch
LS_ROOT=$DATA_DIR/localstack
# Process groups started by the LocalStack extension (Lambda bootstraps, EC2 user data), one
# file each, so that `down` or the next start can kill them after LocalStack died hard.
PROCS_DIR=$DATA_DIR/procs
EC2_DIR=$DATA_DIR/ec2
# What an instance's user data finds on its PATH besides the system's (the AWS CLI).
INSTANCE_BIN=$LOCAL_DIR/instance-bin
ENV_FILE=$LOCAL_DIR/env
# Hash-checked wheels and sdists, kept outside the clone: a warm start installs offline.
# (pip's own cache does not keep the registry's files on this kind of machine.)
WHEELHOUSE=${DATA_REFRESH_CACHE:-$HOME/.cache/data-refresh}/wheels

PG_LOG=$LOG_DIR/postgres.log
ES_LOG=$LOG_DIR/elasticsearch.log
LS_LOG=$LOG_DIR/localstack.log

LS_SERVICES=stepfunctions,lambda,ec2,events,scheduler,iam,sts,logs,secretsmanager,ssm,cloudformation,s3,sns,sqs,cloudwatch

# Never send loopback traffic through a proxy.
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost

say() { printf '%s\n' "$*" >&2; }
die() {
    printf 'localstack: ERROR: %s\n' "$1" >&2
    [ $# -gt 1 ] && printf '  fix: %s\n' "$2" >&2
    exit 1
}

# True when something accepts TCP connections on 127.0.0.1:$1.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# True when process group $1 still has a member.
pgroup_alive() { kill -0 -- "-$1" 2>/dev/null; }

# Reads a recorded process group id from $1, or prints nothing.
read_pgid() { [ -s "$1" ] && tr -dc '0-9' <"$1"; }

# Sends SIGTERM to process group $1, then SIGKILL after $2 seconds (default 20).
stop_pgroup() {
    local pgid=$1 grace=${2:-20} i
    pgroup_alive "$pgid" || return 0
    kill -TERM -- "-$pgid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
        pgroup_alive "$pgid" || return 0
        sleep 0.1
    done
    say "  process group $pgid ignored SIGTERM for ${grace}s: SIGKILL"
    kill -KILL -- "-$pgid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        pgroup_alive "$pgid" || return 0
        sleep 0.1
    done
    return 1
}

# Runs the process-group reaper of the extension (no LocalStack import needed).
reap_recorded_pgroups() {
    [ -d "$PROCS_DIR" ] || return 0
    python3 "$LOCALSTACK_DIR/ext/src/data_refresh_localstack/procs.py" reap "$PROCS_DIR"
}

pg_running() { [ -x "$PG_BIN/pg_ctl" ] && [ -f "$PG_DATA/PG_VERSION" ] &&
    runuser -u "$SERVICE_USER" -- "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; }
pg_healthy() { "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres 2>/dev/null; }
es_health() {
    curl -fsS --noproxy '*' -m 3 "http://127.0.0.1:$ES_PORT/_cluster/health" 2>/dev/null |
        sed -n 's/.*"status":"\([a-z]*\)".*/\1/p' || true
}
ls_healthy() { curl -fsS --noproxy '*' -m 3 -o /dev/null "http://127.0.0.1:$LS_PORT/_localstack/health" 2>/dev/null; }

# Installs a lock file into a venv once; reinstalls when the lock file changes.
# usage: ensure_venv <venv> <python> <lock file>
ensure_venv() {
    local venv=$1 python=$2 lock=$3 stamp want
    stamp=$venv/.installed-lock.sha256
    want=$(sha256sum "$lock" | cut -d' ' -f1)
    if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
        return 0
    fi
    say "installing $(basename "$lock") into $venv"
    rm -rf "$venv"
    mkdir -p "$WHEELHOUSE"
    "$python" -m venv "$venv"
    local pip=("$venv/bin/python" -m pip --quiet --no-input --disable-pip-version-check)
    local offline=(--no-index --find-links "$WHEELHOUSE" --no-deps)
    # A few locked packages are sdists: they build offline with the locked setuptools.
    install_from_wheelhouse() {
        if grep -q '^setuptools==' "$lock"; then
            "${pip[@]}" install "${offline[@]}" setuptools || return 1
        fi
        "${pip[@]}" install "${offline[@]}" --require-hashes --no-build-isolation -r "$lock"
    }
    if ! install_from_wheelhouse 2>/dev/null; then
        # Fetches what the wheelhouse lacks; every file is checked against the lock's hashes.
        "${pip[@]}" download --no-deps --require-hashes -r "$lock" -d "$WHEELHOUSE" ||
            { rm -rf "$venv"; die "pip could not download the packages of $lock" "check the network access to PyPI and the message above, then rerun"; }
        install_from_wheelhouse ||
            { rm -rf "$venv"; die "pip could not install $lock" "read the message above; 'rm -rf $WHEELHOUSE' forces a fresh download"; }
    fi
    echo "$want" >"$stamp"
}

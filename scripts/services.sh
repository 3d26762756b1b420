#!/usr/bin/env bash
# Find or start PostgreSQL and Redis for the hub, then write .hub/services.env.
#
# Order for each service:
#   1. HUB_DATABASE_URL / HUB_REDIS_URL if set (must answer),
#   2. a local server on the standard port (127.0.0.1:5432 / 127.0.0.1:6379),
#   3. a private instance under .hub/ (installed with apt-get when root and missing).
#
# Knobs: HUB_PG_PRIVATE_PORT (5433), HUB_REDIS_PRIVATE_PORT (6380),
#        HUB_PG_STANDARD_PORT (5432), HUB_REDIS_STANDARD_PORT (6379).
# Idempotent; when everything is already up it only probes (well under 1 s).
# Output: .hub/services.env with HUB_DATABASE_URL=... and HUB_REDIS_URL=...;
# one status line per service on stderr. Stop private instances with
# scripts/services-stop.sh.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
HUB="$ROOT/.hub"
ENV_FILE="$HUB/services.env"

PG_PRIVATE_PORT="${HUB_PG_PRIVATE_PORT:-5433}"
REDIS_PRIVATE_PORT="${HUB_REDIS_PRIVATE_PORT:-6380}"
PG_STANDARD_PORT="${HUB_PG_STANDARD_PORT:-5432}"
REDIS_STANDARD_PORT="${HUB_REDIS_STANDARD_PORT:-6379}"

export PGCONNECT_TIMEOUT="${PGCONNECT_TIMEOUT:-3}"

die() {
    printf 'services: %s\n' "$*" >&2
    exit 1
}

note() {
    printf '%s\n' "$*" >&2
}

have() {
    command -v "$1" >/dev/null 2>&1
}

is_root() {
    [[ $EUID -eq 0 ]]
}

for _v in PG_PRIVATE_PORT REDIS_PRIVATE_PORT PG_STANDARD_PORT REDIS_STANDARD_PORT; do
    [[ ${!_v} =~ ^[0-9]+$ ]] || die "HUB_${_v} must be a port number, got '${!_v}'"
done
unset _v

mkdir -p "$HUB"

# Serialise concurrent runs (e.g. `make run` and `make test` at once).
if have flock; then
    exec 9>"$HUB/services.lock"
    flock -w 120 9 || die "timed out waiting for another scripts/services.sh run ($HUB/services.lock)"
fi

# ---------------------------------------------------------------- helpers

# tcp_open HOST PORT: true when a TCP connection can be opened.
tcp_open() {
    # shellcheck disable=SC2016  # $1/$2 expand in the inner bash
    timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

# redis_tcp_ping HOST PORT: speak RESP over /dev/tcp, expect +PONG.
redis_tcp_ping() {
    # shellcheck disable=SC2016  # $1/$2 expand in the inner bash
    timeout 2 bash -c '
        exec 3<>"/dev/tcp/$1/$2" || exit 1
        printf "PING\r\n" >&3
        IFS= read -r -t 2 line <&3 || exit 1
        [[ $line == "+PONG"* ]]' _ "$1" "$2" 2>/dev/null
}

# parse_url URL DEFAULT_PORT: sets U_HOST, U_PORT, U_PATH (no leading '/',
# no query string) for scheme://[user[:pass]@]host[:port][/path][?query].
parse_url() {
    local rest="${1#*://}" auth hostport
    auth="${rest%%[/?]*}"
    rest="${rest#"$auth"}"
    hostport="${auth##*@}"
    if [[ $hostport == \[* ]]; then # [ipv6]:port
        U_HOST="${hostport%%]*}"
        U_HOST="${U_HOST#[}"
        hostport="${hostport#*]}"
        U_PORT="${hostport#:}"
    elif [[ $hostport == *:* ]]; then
        U_HOST="${hostport%%:*}"
        U_PORT="${hostport##*:}"
    else
        U_HOST="$hostport"
        U_PORT=""
    fi
    [[ -n $U_HOST ]] || U_HOST=127.0.0.1
    [[ -n $U_PORT ]] || U_PORT="$2"
    rest="${rest%%\?*}"
    U_PATH="${rest#/}"
}

# libpq does not understand SQLAlchemy-style schemes (postgresql+asyncpg://).
libpq_url() {
    local url="$1" scheme="${1%%://*}"
    if [[ $scheme == postgres*+* ]]; then
        url="postgresql://${url#*://}"
    fi
    printf '%s' "$url"
}

# url_with_db URL DB: same URL with its database path replaced.
url_with_db() {
    local url="$1" db="$2" scheme rest auth query=""
    scheme="${url%%://*}"
    rest="${url#*://}"
    auth="${rest%%[/?]*}"
    rest="${rest#"$auth"}"
    if [[ $rest == *\?* ]]; then
        query="?${rest#*\?}"
    fi
    printf '%s://%s/%s%s' "$scheme" "$auth" "$db" "$query"
}

# apt_install PKG...: install (root only), retrying once after apt-get update.
apt_install() {
    local log="$HUB/apt.log"
    note "services: installing $* with apt-get (log: .hub/apt.log)"
    export DEBIAN_FRONTEND=noninteractive
    # 9>&-: services started by the package must not inherit the lock fd.
    if ! apt-get install -y "$@" >"$log" 2>&1 9>&-; then
        { apt-get update && apt-get install -y "$@"; } >>"$log" 2>&1 9>&- ||
            die "apt-get install -y $* failed, see $log"
    fi
}

# ---------------------------------------------------------------- postgres

pg_answers_url() {
    local url
    url="$(libpq_url "$1")"
    if have pg_isready; then
        pg_isready -q -t 3 -d "$url"
    else
        parse_url "$1" 5432
        tcp_open "$U_HOST" "$U_PORT"
    fi
}

pg_answers_local() { # PORT
    if have pg_isready; then
        pg_isready -q -t 2 -h 127.0.0.1 -p "$1" -U postgres -d postgres
    else
        tcp_open 127.0.0.1 "$1"
    fi
}

psql_q() { # URL SQL -> prints result rows
    psql -X -q -t -A -v ON_ERROR_STOP=1 -d "$1" -c "$2"
}

# ensure_db URL: create the URL's database when missing. Prints a suffix
# for the status line ("; created database X") on stdout.
ensure_db() {
    local url db maint lit ident err
    url="$(libpq_url "$1")"
    parse_url "$url" 5432
    db="${U_PATH:-hub}"
    if ! have psql; then
        note "services: psql not found; cannot check/create database '$db' (the application will create it)"
        return 0
    fi
    [[ -n $U_PATH ]] || url="$(url_with_db "$url" "$db")"
    if psql_q "$url" 'select 1' >/dev/null 2>&1; then
        return 0
    fi
    maint="$(url_with_db "$url" postgres)"
    lit="${db//\'/\'\'}"
    ident="${db//\"/\"\"}"
    if [[ "$(psql_q "$maint" "select 1 from pg_database where datname = '$lit'" 2>/dev/null)" == 1 ]]; then
        return 0 # exists but the first connect failed: let the app report why
    fi
    if ! err="$(psql_q "$maint" "CREATE DATABASE \"$ident\"" 2>&1)"; then
        # A concurrent creator may have won the race.
        [[ "$(psql_q "$maint" "select 1 from pg_database where datname = '$lit'" 2>/dev/null)" == 1 ]] ||
            die "could not create database '$db': $(printf '%s' "$err" | head -n 1)"
    fi
    printf '; created database %s' "$db"
}

pg_bindir() { # [VERSION] -> /usr/lib/postgresql/<ver>/bin (highest if no VERSION)
    local ver="${1:-}" d
    if [[ -n $ver ]]; then
        d="/usr/lib/postgresql/$ver/bin"
        [[ -x $d/pg_ctl ]] || return 1
        printf '%s' "$d"
        return 0
    fi
    d="$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/initdb' 2>/dev/null |
        sort -V | tail -n 1)"
    [[ -n $d ]] || return 1
    printf '%s' "${d%/initdb}"
}

# Run a PostgreSQL server binary as the owner of the data dir: initdb and
# pg_ctl refuse to run as root, so root uses the `postgres` system user.
as_pg() {
    if is_root; then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

# Private instance: .hub/pg/data (cluster), .hub/pg (unix socket dir),
# .hub/pg.log. When root and the checkout is not reachable by the postgres
# user (e.g. under /root), the instance lives in /var/lib/postgresql/hub-<id>
# and .hub/pg and .hub/pg.log are symlinks to it.
pg_private() {
    local link="$HUB/pg" base data log bindir ver port started=0 sockdir i

    if [[ ! -e $link ]] && ! pg_bindir >/dev/null; then
        if is_root; then
            have apt-get || die "PostgreSQL is not installed and apt-get is unavailable; install PostgreSQL or set HUB_DATABASE_URL"
            apt_install postgresql
            # Debian's package creates and starts a cluster on 5432 when it can.
            if pg_local_usable "$PG_STANDARD_PORT"; then
                PG_URL="postgresql://postgres@127.0.0.1:$PG_STANDARD_PORT/hub"
                PG_MSG="postgres: local server on 127.0.0.1:$PG_STANDARD_PORT (installed)"
                return 0
            fi
        else
            die "PostgreSQL is not installed: run 'sudo apt-get install -y postgresql' (or set HUB_DATABASE_URL)"
        fi
    fi
    if is_root; then
        id -u postgres >/dev/null 2>&1 ||
            die "system user 'postgres' is missing (reinstall the postgresql package) or set HUB_DATABASE_URL"
    fi

    if [[ ! -e $link ]]; then
        mkdir -p "$link"
        if is_root; then
            chown postgres:postgres "$link"
            chmod 700 "$link"
            if ! as_pg test -w "$link"; then
                rmdir "$link"
                base="/var/lib/postgresql/hub-$(printf '%s' "$ROOT" | cksum | cut -d' ' -f1)"
                mkdir -p "$base"
                chown postgres:postgres "$base"
                chmod 700 "$base"
                ln -s "$base" "$link"
                note "services: postgres user cannot reach $ROOT; private instance lives in $base"
            fi
        fi
    fi
    base="$(readlink -f "$link")"
    data="$base/data"
    if [[ $base == "$HUB/pg" ]]; then
        log="$HUB/pg.log"
    else
        log="$base/server.log"
        ln -sfn "$log" "$HUB/pg.log"
    fi

    if [[ -f $data/PG_VERSION ]]; then
        ver="$(<"$data/PG_VERSION")"
        bindir="$(pg_bindir "$ver")" ||
            die "$data was created by PostgreSQL $ver but /usr/lib/postgresql/$ver/bin is missing; install postgresql-$ver or remove .hub/pg"
    else
        if [[ -d $data ]] && [[ -n "$(ls -A "$data" 2>/dev/null)" ]]; then
            die "$data exists but is not a PostgreSQL cluster; remove it (rm -rf .hub/pg) and rerun"
        fi
        bindir="$(pg_bindir)" || die "no initdb under /usr/lib/postgresql/*/bin; install postgresql"
        as_pg "$bindir/initdb" -D "$data" -U postgres -A trust -E UTF8 --no-locale >"$base/initdb.log" 2>&1 ||
            die "initdb failed, see $base/initdb.log"
        sockdir="$base"
        # sun_path is 108 bytes: disable the unix socket if the path is too long.
        if ((${#sockdir} + 14 > 107)); then
            sockdir=""
        fi
        {
            printf '\n# hub private instance (scripts/services.sh)\n'
            printf "listen_addresses = '127.0.0.1'\n"
            printf "unix_socket_directories = '%s'\n" "${sockdir//\'/\'\'}"
        } | as_pg tee -a "$data/postgresql.conf" >/dev/null
    fi
    if [[ ! -e $log ]]; then
        : >"$log"
        if is_root; then chown postgres:postgres "$log"; fi
    fi

    if as_pg "$bindir/pg_ctl" status -D "$data" >/dev/null 2>&1; then
        port="$(sed -n 4p "$data/postmaster.pid" 2>/dev/null)"
        [[ $port =~ ^[0-9]+$ ]] || port="$PG_PRIVATE_PORT"
    else
        port="$PG_PRIVATE_PORT"
        if pg_answers_local "$port"; then
            die "port $port is taken by another server; set HUB_PG_PRIVATE_PORT to a free port"
        fi
        # 9>&-: the daemon must not inherit (and hold) the lock fd.
        as_pg "$bindir/pg_ctl" start -D "$data" -l "$log" -w -t 60 -o "-p $port" >/dev/null 2>&1 9>&- ||
            die "private PostgreSQL failed to start on port $port: $(tail -n 1 "$log" 2>/dev/null)"
        started=1
    fi
    for ((i = 0; i < 50; i++)); do
        pg_answers_local "$port" && break
        sleep 0.2
    done
    pg_answers_local "$port" || die "private PostgreSQL on 127.0.0.1:$port does not accept connections (see .hub/pg.log)"

    PG_URL="postgresql://postgres@127.0.0.1:$port/hub"
    if ((started)); then
        PG_MSG="postgres: private instance .hub/pg on 127.0.0.1:$port (started)"
    else
        PG_MSG="postgres: private instance .hub/pg on 127.0.0.1:$port (running)"
    fi
}

# pg_local_usable PORT: a server answers on 127.0.0.1:PORT and lets user
# postgres log in without a password.
pg_local_usable() {
    pg_answers_local "$1" || return 1
    if ! have psql; then
        note "services: psql not found; cannot verify login on 127.0.0.1:$1 (using it anyway)"
        return 0
    fi
    if ! psql_q "postgresql://postgres@127.0.0.1:$1/postgres" 'select 1' >/dev/null 2>&1; then
        note "services: server on 127.0.0.1:$1 refuses passwordless login as postgres; using a private instance"
        return 1
    fi
}

setup_postgres() {
    PG_URL="" PG_MSG=""
    if [[ -n ${HUB_DATABASE_URL:-} ]]; then
        pg_answers_url "$HUB_DATABASE_URL" ||
            die "HUB_DATABASE_URL does not answer ($(parse_url "$HUB_DATABASE_URL" 5432; printf '%s:%s' "$U_HOST" "$U_PORT"))"
        PG_URL="$HUB_DATABASE_URL"
        PG_MSG="postgres: HUB_DATABASE_URL"
    elif pg_local_usable "$PG_STANDARD_PORT"; then
        PG_URL="postgresql://postgres@127.0.0.1:$PG_STANDARD_PORT/hub"
        PG_MSG="postgres: local server on 127.0.0.1:$PG_STANDARD_PORT"
    else
        pg_private
    fi
    PG_MSG+="$(ensure_db "$PG_URL")"
}

# ---------------------------------------------------------------- redis

redis_ping_local() { # PORT
    if have redis-cli; then
        [[ "$(timeout 3 redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" == PONG ]]
    else
        redis_tcp_ping 127.0.0.1 "$1"
    fi
}

redis_answers_url() {
    if have redis-cli; then
        [[ "$(timeout 3 redis-cli --no-auth-warning -u "$1" ping 2>/dev/null)" == PONG ]]
    else
        parse_url "$1" 6379
        tcp_open "$U_HOST" "$U_PORT"
    fi
}

redis_private_pid() { # prints the pid of our private redis-server if alive
    local pidfile="$HUB/redis.pid" pid
    [[ -f $pidfile ]] || return 1
    pid="$(<"$pidfile")"
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == redis-server* ]] || return 1
    printf '%s' "$pid"
}

redis_private() {
    local dir="$HUB/redis" port started=0 i pid
    if ! have redis-server; then
        if is_root; then
            have apt-get || die "redis-server is not installed and apt-get is unavailable; install Redis or set HUB_REDIS_URL"
            apt_install redis-server
            # Debian's package starts a server on 6379 when it can.
            if redis_ping_local "$REDIS_STANDARD_PORT"; then
                REDIS_URL="redis://127.0.0.1:$REDIS_STANDARD_PORT/0"
                REDIS_MSG="redis: local server on 127.0.0.1:$REDIS_STANDARD_PORT (installed)"
                return 0
            fi
        else
            die "Redis is not installed: run 'sudo apt-get install -y redis-server' (or set HUB_REDIS_URL)"
        fi
    fi
    mkdir -p "$dir"

    port="$(cat "$dir/port" 2>/dev/null || true)"
    if pid="$(redis_private_pid)" && [[ $port =~ ^[0-9]+$ ]] && redis_ping_local "$port"; then
        :
    else
        if [[ -n ${pid:-} ]]; then # alive but not answering: restart it
            kill "$pid" 2>/dev/null || true
            for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        fi
        port="$REDIS_PRIVATE_PORT"
        if redis_ping_local "$port" || tcp_open 127.0.0.1 "$port"; then
            die "port $port is taken by another server; set HUB_REDIS_PRIVATE_PORT to a free port"
        fi
        rm -f "$HUB/redis.pid"
        redis-server --daemonize yes --port "$port" --bind 127.0.0.1 --dir "$dir" \
            --save "" --appendonly no --logfile "$HUB/redis.log" --pidfile "$HUB/redis.pid" \
            >/dev/null 2>&1 9>&- || die "redis-server failed to start: $(tail -n 1 "$HUB/redis.log" 2>/dev/null)"
        for ((i = 0; i < 50; i++)); do
            redis_private_pid >/dev/null && redis_ping_local "$port" && break
            sleep 0.1
        done
        if ! { redis_private_pid >/dev/null && redis_ping_local "$port"; }; then
            die "private redis-server on 127.0.0.1:$port did not come up: $(tail -n 1 "$HUB/redis.log" 2>/dev/null)"
        fi
        printf '%s\n' "$port" >"$dir/port"
        started=1
    fi
    REDIS_URL="redis://127.0.0.1:$port/0"
    if ((started)); then
        REDIS_MSG="redis: private instance .hub/redis on 127.0.0.1:$port (started)"
    else
        REDIS_MSG="redis: private instance .hub/redis on 127.0.0.1:$port (running)"
    fi
}

setup_redis() {
    REDIS_URL="" REDIS_MSG=""
    if [[ -n ${HUB_REDIS_URL:-} ]]; then
        redis_answers_url "$HUB_REDIS_URL" ||
            die "HUB_REDIS_URL does not answer ($(parse_url "$HUB_REDIS_URL" 6379; printf '%s:%s' "$U_HOST" "$U_PORT"))"
        REDIS_URL="$HUB_REDIS_URL"
        REDIS_MSG="redis: HUB_REDIS_URL"
    elif redis_ping_local "$REDIS_STANDARD_PORT"; then
        REDIS_URL="redis://127.0.0.1:$REDIS_STANDARD_PORT/0"
        REDIS_MSG="redis: local server on 127.0.0.1:$REDIS_STANDARD_PORT"
    else
        redis_private
    fi
}

# ---------------------------------------------------------------- main

setup_postgres
setup_redis

# The Makefile sources this file with sh: single-quote values that are not
# plain (e.g. '&' in a query string). Generated URLs are always plain.
env_value() {
    if [[ $1 =~ ^[A-Za-z0-9_@%+=:,./?-]*$ ]]; then
        printf '%s' "$1"
    else
        printf "'%s'" "${1//\'/\'\\\'\'}"
    fi
}

tmp="$(mktemp "$HUB/services.env.XXXXXX")"
printf 'HUB_DATABASE_URL=%s\nHUB_REDIS_URL=%s\n' "$(env_value "$PG_URL")" "$(env_value "$REDIS_URL")" >"$tmp"
chmod 600 "$tmp" # URLs may carry passwords
mv -f "$tmp" "$ENV_FILE"

note "$PG_MSG"
note "$REDIS_MSG"

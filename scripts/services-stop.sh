#!/usr/bin/env bash
# Stop the private PostgreSQL/Redis instances started by scripts/services.sh
# under .hub/. Never touches system servers (it only acts on .hub/pg/data and
# the pid in .hub/redis.pid). Data is kept; rm -rf .hub/pg .hub/redis to wipe.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
HUB="$ROOT/.hub"
status=0

note() {
    printf '%s\n' "$*" >&2
}

as_pg() {
    if [[ $EUID -eq 0 ]]; then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

# ---- postgres
if [[ -e $HUB/pg ]]; then
    data="$(readlink -f "$HUB/pg")/data"
    if [[ -f $data/PG_VERSION ]]; then
        ver="$(<"$data/PG_VERSION")"
        pg_ctl="/usr/lib/postgresql/$ver/bin/pg_ctl"
        if [[ ! -x $pg_ctl ]]; then
            note "services-stop: $pg_ctl missing; cannot stop .hub/pg"
            status=1
        elif as_pg "$pg_ctl" status -D "$data" >/dev/null 2>&1; then
            if as_pg "$pg_ctl" stop -D "$data" -m fast -w -t 60 >/dev/null 2>&1; then
                note "postgres: private instance .hub/pg stopped"
            else
                note "services-stop: could not stop private PostgreSQL in $data (see .hub/pg.log)"
                status=1
            fi
        else
            note "postgres: private instance .hub/pg not running"
        fi
    fi
fi

# ---- redis
pidfile="$HUB/redis.pid"
if [[ -f $pidfile ]]; then
    pid="$(<"$pidfile")"
    if [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null &&
        [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == redis-server* ]]; then
        kill -TERM "$pid"
        for ((i = 0; i < 100; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            note "services-stop: private redis-server (pid $pid) did not exit"
            status=1
        else
            note "redis: private instance .hub/redis stopped"
        fi
    else
        note "redis: private instance .hub/redis not running"
    fi
    [[ $status -ne 0 ]] || rm -f "$pidfile"
fi

exit "$status"

#!/usr/bin/env bash
# suite-at.sh WHEN [PYTEST_ARGS...]: run the test suite as if the clock read WHEN (UTC).
#
# Shows that no test depends on today's date. Every clock moves together: a private
# PostgreSQL is started under libfaketime with the same offset as pytest and every process it
# starts, so SQL now() and Python agree (a private Redis keeps the real clock; see below).
# Monotonic clocks are left real (timeouts and sleeps behave). The standard servers are not
# touched.
#
#   scripts/suite-at.sh "2026-12-31 23:55:00"            # the suite across a new year
#   scripts/suite-at.sh "2028-02-29 12:00:00" tests/hub   # a leap day, part of the suite
#
# Needs root (faketime from Debian, the postgres system user); run `make install` first.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
[[ $# -ge 1 ]] || {
    sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 2
}
WHEN="$1"
shift

"$ROOT/scripts/apt-ensure.sh" faketime faketime libfaketime
LIB="$(dpkg -L libfaketime 2>/dev/null | grep '/libfaketime.so.1$' | head -1)"
[[ -n $LIB ]] || { echo "suite-at: libfaketime is not installed" >&2; exit 1; }
target=$(date -u -d "$WHEN" +%s) || { echo "suite-at: cannot read the time '$WHEN'" >&2; exit 2; }
OFFSET=$((target - $(date -u +%s)))

BIN="$(dirname "$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/initdb' | sort -V | tail -1)")"
BASE="$(mktemp -d /tmp/hub-suite-at.XXXXXX)"
chmod 0755 "$BASE"
PG_PORT=$((20000 + RANDOM % 20000))
REDIS_PORT=$((PG_PORT + 1))

# Every process below sees the same shifted wall clock.
export LD_PRELOAD="$LIB" FAKETIME="+${OFFSET}" DONT_FAKE_MONOTONIC=1 FAKETIME_DONT_FAKE_MONOTONIC=1

as_pg() { (cd / && runuser -u postgres -- env LD_PRELOAD="$LIB" FAKETIME="$FAKETIME" \
    DONT_FAKE_MONOTONIC=1 FAKETIME_DONT_FAKE_MONOTONIC=1 "$@"); }

cleanup() {
    as_pg "$BIN/pg_ctl" stop -D "$BASE/pg" -m immediate >/dev/null 2>&1 || true
    [[ -f $BASE/redis.pid ]] && kill "$(cat "$BASE/redis.pid")" 2>/dev/null || true
    rm -rf "$BASE"
}
trap cleanup EXIT

chown postgres "$BASE"
as_pg "$BIN/initdb" -D "$BASE/pg" -U postgres -A trust -E UTF8 --no-locale >"$BASE/initdb.log" 2>&1
as_pg "$BIN/pg_ctl" start -D "$BASE/pg" -w -l "$BASE/pg.log" \
    -o "-p $PG_PORT -k $BASE -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" >/dev/null
# Redis keeps the real clock: its jemalloc clashes with libfaketime (clock_gettime recursion).
# The hub reads Redis time only inside Lua scripts (rate limits, lockouts), where every
# comparison is against Redis's own clock, so the skew changes no outcome.
env -u LD_PRELOAD redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
    --logfile "$BASE/redis.log" --dir "$BASE" &
echo $! >"$BASE/redis.pid"
for _ in $(seq 50); do env -u LD_PRELOAD redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

printf 'suite-at: clock %s (offset %+d s); PostgreSQL says %s\n' "$(date -u '+%F %T')" "$OFFSET" \
    "$(psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -Atc "SELECT now() AT TIME ZONE 'UTC'")"

cd "$ROOT"
export HUB_DATABASE_URL="postgresql://postgres@127.0.0.1:$PG_PORT/postgres"
export HUB_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
set +e
.venv/bin/python -m pytest -p no:cacheprovider "$@"
status=$?
printf 'suite-at: finished with the clock at %s\n' "$(date -u '+%F %T')"
exit $status

#!/usr/bin/env bash
# cluster.sh: the hub on several "hosts" of this machine, each a Linux network namespace.
#
#   scripts/cluster.sh up          build everything (idempotent: a running rig is left alone)
#   scripts/cluster.sh down        remove everything `up` created (namespaces, bridge, data)
#   scripts/cluster.sh status      one line per host
#   scripts/cluster.sh kill HOST   SIGKILL every process of HOST (a crashed host)
#   scripts/cluster.sh start HOST  start HOST's service again (api1, api2, worker1, worker2,
#                                  redis1, redis2, agency, lb)
#   scripts/cluster.sh restart HOST  SIGTERM HOST's hub process (it drains) and wait for the
#                                  new one its supervisor starts (a rolling upgrade's step)
#   scripts/cluster.sh freeze HOST SIGSTOP every process of HOST (a hung host) ...
#   scripts/cluster.sh thaw HOST   ... and SIGCONT
#   scripts/cluster.sh cut HOST    take HOST's network link down (a partition) ...
#   scripts/cluster.sh restore HOST  ... and up again
#   scripts/cluster.sh promote     stop the PostgreSQL primary (immediate) and its PgBouncer,
#                                  promote the replica and restart the replica's PgBouncer
#   scripts/cluster.sh env         print the HUB_* settings every hub process gets
#
# Topology (docs/cluster.md): namespaces hubc-<host> joined by veth pairs to the bridge
# hubc-br0 on 10.231.0.0/24. The bridge carries 10.231.0.1 so tests on this machine reach the
# hosts; nothing else in the root namespace is touched. All state lives in .hub/cluster/
# (PostgreSQL data owned by the postgres user, as scripts/services.sh does). Needs root,
# iproute2, PostgreSQL, pgbouncer, redis-server, redis-sentinel and haproxy (installed with
# scripts/apt-ensure.sh when missing).
#
# Each PostgreSQL host also runs a PgBouncer in transaction mode on port 6432; the API hosts
# reach PostgreSQL only through them (HUB_DB_STATEMENT_CACHE_SIZE=0), the workers and
# `hub migrate` directly (session advisory locks need a session; docs/deploy.md).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
STATE="$ROOT/.hub/cluster"
BIN="$ROOT/.venv/bin"
NET=10.231.0
BRIDGE=hubc-br0
DB_NAME=hub_cluster
PREFIX="hubc:"
SENTINEL_MASTER=hubc
# host -> last octet of its address
declare -A HOSTS=(
    [pg1]=11 [pg2]=12 [redis1]=21 [redis2]=22 [sentinel]=23 [lb]=30
    [api1]=31 [api2]=32 [worker1]=41 [worker2]=42 [edge]=50 [agency]=60
)
ORDER=(pg1 pg2 redis1 redis2 sentinel agency api1 api2 worker1 worker2 lb edge)

die() {
    printf 'cluster: %s\n' "$*" >&2
    exit 1
}
note() { printf 'cluster: %s\n' "$*" >&2; }
ip_of() { printf '%s.%s' "$NET" "${HOSTS[$1]}"; }
ns() { printf 'hubc-%s' "$1"; }
in_ns() { # HOST CMD...: run CMD in HOST's namespace
    local host=$1
    shift
    ip netns exec "$(ns "$host")" "$@"
}
pg_bin() {
    find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/initdb' 2>/dev/null |
        sort -V | tail -n 1 | xargs -r dirname
}
as_pg() { (cd / && runuser -u postgres -- "$@"); }

# wait_for SECONDS DESCRIPTION CMD...: retry CMD every 0.2 s until it succeeds.
wait_for() {
    local seconds=$1 what=$2 i
    shift 2
    for ((i = 0; i < seconds * 5; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    die "timed out after ${seconds}s waiting for $what"
}

preflight() {
    [[ $EUID -eq 0 ]] || die "needs root (network namespaces)"
    command -v ip >/dev/null || die "iproute2 is missing"
    "$ROOT/scripts/apt-ensure.sh" cluster iproute2 haproxy redis-server redis-sentinel postgresql pgbouncer
    for tool in haproxy redis-server redis-sentinel pgbouncer curl; do
        command -v "$tool" >/dev/null || die "$tool is missing (apt-get install it)"
    done
    [[ -n "$(pg_bin)" ]] || die "no PostgreSQL server binaries under /usr/lib/postgresql"
    [[ -x $BIN/hub ]] || die "$BIN/hub is missing: run 'make install' first"
    id -u postgres >/dev/null 2>&1 || die "system user 'postgres' is missing"
}

# ---------------------------------------------------------------- network

net_up() {
    if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
        ip route show | grep -q "^$NET\.0/24" && die "$NET.0/24 is already routed here"
        ip link add "$BRIDGE" type bridge
        ip addr add "$NET.1/24" dev "$BRIDGE"
        ip link set "$BRIDGE" up
    fi
    local host
    for host in "${ORDER[@]}"; do
        ip netns list | grep -qw "$(ns "$host")" && continue
        ip netns add "$(ns "$host")"
        # A namespace deleted a moment ago may still hold its veth (the kernel frees it later).
        if ip link show "hc-$host" >/dev/null 2>&1; then ip link delete "hc-$host"; fi
        ip link add "hc-$host" type veth peer name eth0 netns "$(ns "$host")"
        ip link set "hc-$host" master "$BRIDGE" up
        in_ns "$host" ip addr add "$(ip_of "$host")/24" dev eth0
        in_ns "$host" ip link set eth0 up
        in_ns "$host" ip link set lo up
    done
}

net_down() {
    local name
    for name in $(ip netns list | awk '{print $1}' | grep '^hubc-' || true); do
        ip netns delete "$name"
    done
    for name in "${ORDER[@]}"; do # veths a dying namespace has not released yet
        if ip link show "hc-$name" >/dev/null 2>&1; then ip link delete "hc-$name" 2>/dev/null || true; fi
    done
    if ip link show "$BRIDGE" >/dev/null 2>&1; then ip link delete "$BRIDGE"; fi
}

# ---------------------------------------------------------------- processes

# spawn HOST NAME CMD...: run CMD detached in HOST's namespace; pid in run/NAME.pid.
spawn() {
    local host=$1 name=$2
    shift 2
    # Appended, not truncated: a restarted host's log keeps what its old process said while
    # it stopped (a slow shutdown is otherwise lost with the file).
    printf '=== %s start %s\n' "$name" "$(date -u +%FT%TZ)" >>"$STATE/log/$name.log"
    in_ns "$host" setsid "$@" >>"$STATE/log/$name.log" 2>&1 </dev/null &
    printf '%s\n' "$!" >"$STATE/run/$name.pid"
}

alive() { # NAME
    local pid
    pid="$(cat "$STATE/run/$1.pid" 2>/dev/null)" || return 1
    kill -0 "$pid" 2>/dev/null
}

# kill_host HOST SIGNAL: signal every process living in HOST's namespace.
kill_host() {
    local pids
    pids="$(ip netns pids "$(ns "$1")" 2>/dev/null || true)"
    [[ -z $pids ]] || kill "-$2" $pids 2>/dev/null || true
}

# ---------------------------------------------------------------- postgres

pg_conf() { # DATA ADDRESS
    as_pg tee -a "$1/postgresql.conf" >/dev/null <<EOF

# hub cluster rig (scripts/cluster.sh)
listen_addresses = '$2'
port = 5432
unix_socket_directories = ''
max_connections = 80
shared_buffers = 32MB
wal_level = replica
max_wal_senders = 4
wal_keep_size = 128MB
hot_standby = on
EOF
}

pg_up() {
    local bin data1="$STATE/pg1/data" data2="$STATE/pg2/data"
    bin="$(pg_bin)"
    if [[ -f $data2/PG_VERSION && ! -f $data2/standby.signal ]]; then
        die "pg2 was promoted: restarting pg1 would make two primaries; run '$0 down' then '$0 up'"
    fi
    if [[ ! -f $data1/PG_VERSION ]]; then
        install -d -o postgres -g postgres -m 700 "$STATE/pg1" "$STATE/pg2"
        as_pg "$bin/initdb" -D "$data1" -U postgres -A trust -E UTF8 --no-locale >"$STATE/log/initdb.log" 2>&1 ||
            die "initdb failed, see $STATE/log/initdb.log"
        pg_conf "$data1" "$(ip_of pg1)"
        printf 'host all all %s.0/24 trust\nhost replication all %s.0/24 trust\n' "$NET" "$NET" |
            as_pg tee -a "$data1/pg_hba.conf" >/dev/null
    fi
    as_pg "$bin/pg_ctl" status -D "$data1" >/dev/null 2>&1 ||
        in_ns pg1 runuser -u postgres -- "$bin/pg_ctl" start -D "$data1" -l "$STATE/pg1/server.log" -w -t 60 >/dev/null
    if [[ ! -f $data2/PG_VERSION ]]; then
        in_ns pg2 runuser -u postgres -- "$bin/pg_basebackup" -h "$(ip_of pg1)" -U postgres \
            -D "$data2" -R -X stream -c fast >"$STATE/log/basebackup.log" 2>&1 ||
            die "pg_basebackup failed, see $STATE/log/basebackup.log"
        printf "listen_addresses = '%s'\nprimary_conninfo = 'host=%s port=5432 user=postgres application_name=hubc_pg2'\n" \
            "$(ip_of pg2)" "$(ip_of pg1)" | as_pg tee -a "$data2/postgresql.auto.conf" >/dev/null
    fi
    as_pg "$bin/pg_ctl" status -D "$data2" >/dev/null 2>&1 ||
        in_ns pg2 runuser -u postgres -- "$bin/pg_ctl" start -D "$data2" -l "$STATE/pg2/server.log" -w -t 60 >/dev/null
    # Synchronous replication: a commit the API acknowledged is on the replica too, so a
    # promotion loses no accepted event (the price: writes wait while the replica is away).
    wait_for 60 "the replica to stream" psql_at pg1 \
        "select 1 from pg_stat_replication where application_name = 'hubc_pg2' and state = 'streaming'"
    psql -X -q -v ON_ERROR_STOP=1 -h "$(ip_of pg1)" -U postgres -d postgres \
        -c "alter system set synchronous_standby_names = 'hubc_pg2'" -c "select pg_reload_conf()" >/dev/null
}

psql_at() { # HOST SQL -> first column of the result; fails when empty
    local out
    out="$(psql -X -q -t -A -v ON_ERROR_STOP=1 -h "$(ip_of "$1")" -U postgres -d postgres -c "$2" 2>/dev/null)" || return 1
    [[ -n $out ]] || return 1
    printf '%s\n' "$out"
}

promote() {
    local bin
    bin="$(pg_bin)"
    as_pg "$bin/pg_ctl" stop -D "$STATE/pg1/data" -m immediate >/dev/null 2>&1 || true
    # The old primary's PgBouncer goes with it: alive, it would accept logins it can only
    # fail, and asyncpg tries the next host of the URL only when a connect fails outright.
    bouncer_stop pg1
    as_pg "$bin/pg_ctl" promote -D "$STATE/pg2/data" -w -t 60 >/dev/null
    # PgBouncer hands every new client the server parameters of its pool's first login
    # (in_hot_standby passes through), so the replica's could go on saying "standby" to
    # target_session_attrs=read-write: a fresh one logs in to the promoted server.
    bouncer_stop pg2
    bouncer_start pg2
    wait_for 60 "pg2's PgBouncer" bouncer_answers pg2
    note "primary pg1 and its PgBouncer stopped; pg2 promoted, its PgBouncer restarted"
}

# ---------------------------------------------------------------- pgbouncer

# A PgBouncer in transaction mode beside each PostgreSQL server, for the API hosts: four
# server connections serve every API host's pool (HUB_DB_POOL_MAX clients each).
bouncer_conf() { # HOST
    local dir="$STATE/$1-bouncer"
    mkdir -p "$dir"
    printf '"postgres" ""\n' >"$dir/users.txt"
    cat >"$dir/pgbouncer.ini" <<EOF
[databases]
* = host=$(ip_of "$1") port=5432
[pgbouncer]
listen_addr = $(ip_of "$1")
listen_port = 6432
unix_socket_dir =
auth_type = trust
auth_file = $dir/users.txt
admin_users = postgres
pool_mode = transaction
default_pool_size = 4
max_client_conn = 200
log_connections = 0
log_disconnections = 0
EOF
    chown -R postgres "$dir"
}

bouncer_start() { # HOST
    bouncer_conf "$1"
    spawn "$1" "$1-bouncer" pgbouncer -u postgres "$STATE/$1-bouncer/pgbouncer.ini"
}

# bouncer_pids HOST: the PgBouncer of HOST (run/HOST-bouncer.pid holds its launcher's pid).
bouncer_pids() {
    local pid
    for pid in $(ip netns pids "$(ns "$1")" 2>/dev/null); do
        [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == pgbouncer ]] && printf '%s\n' "$pid"
    done
    return 0
}

bouncer_stop() { # HOST
    local pids
    pids="$(bouncer_pids "$1")"
    [[ -n $pids ]] || return 0
    # shellcheck disable=SC2086  # one pid per word
    kill -KILL $pids 2>/dev/null || true
    wait_for 10 "$1's PgBouncer to exit" no_bouncer "$1"
}

no_bouncer() { [[ -z "$(bouncer_pids "$1")" ]]; }

bouncer_answers() { # HOST: its admin console answers
    psql -X -q -t -A -h "$(ip_of "$1")" -p 6432 -U postgres -d pgbouncer -c "show version"
}

bouncers_up() {
    local host
    for host in pg1 pg2; do
        [[ -n "$(bouncer_pids "$host")" ]] || bouncer_start "$host"
        wait_for 30 "$host's PgBouncer" bouncer_answers "$host"
    done
}

# ---------------------------------------------------------------- redis

redis_start() { # redis1 | redis2
    local host=$1 extra=()
    mkdir -p "$STATE/$host"
    [[ $host == redis2 ]] && extra=(--replicaof "$(ip_of redis1)" 6379)
    spawn "$host" "$host" redis-server --bind "$(ip_of "$host")" --port 6379 --protected-mode no \
        --save "" --appendonly no --dir "$STATE/$host" "${extra[@]}"
}

sentinel_start() {
    local i conf
    for i in 1 2 3; do
        conf="$STATE/sentinel/s$i.conf"
        mkdir -p "$STATE/sentinel"
        [[ -f $conf ]] || cat >"$conf" <<EOF
port $((26378 + i))
bind $(ip_of sentinel)
protected-mode no
dir $STATE/sentinel
sentinel monitor $SENTINEL_MASTER $(ip_of redis1) 6379 2
sentinel down-after-milliseconds $SENTINEL_MASTER 2000
sentinel failover-timeout $SENTINEL_MASTER 10000
sentinel parallel-syncs $SENTINEL_MASTER 1
EOF
        alive "sentinel$i" || spawn sentinel "sentinel$i" redis-sentinel "$conf"
    done
}

redis_up() {
    alive redis1 || redis_start redis1
    wait_for 60 "redis1" redis-cli -h "$(ip_of redis1)" ping
    alive redis2 || redis_start redis2
    wait_for 60 "redis2 to replicate" bash -c \
        "redis-cli -h $(ip_of redis2) info replication | grep -q 'master_link_status:up'"
    sentinel_start
    wait_for 60 "the sentinels" bash -c \
        "redis-cli -h $(ip_of sentinel) -p 26379 sentinel get-master-addr-by-name $SENTINEL_MASTER | grep -q ."
}

# ---------------------------------------------------------------- the hub

# Every HUB_* setting of every hub process, explicitly (nothing inherited from the caller).
hub_env() {
    cat <<EOF
HUB_DATABASE_URL=postgresql://postgres@$(ip_of pg1):5432,$(ip_of pg2):5432/$DB_NAME?target_session_attrs=read-write
HUB_DATABASE_REPLICA_URL=postgresql://postgres@$(ip_of pg2):5432/$DB_NAME
HUB_DATABASE_REPLICA_MAX_LAG_SECONDS=5
HUB_DB_CONNECT_TIMEOUT_SECONDS=3
HUB_DB_POOL_MIN=1
HUB_DB_POOL_MAX=4
HUB_REDIS_URL=redis://$(ip_of redis1):6379/0
HUB_REDIS_SENTINELS=$(ip_of sentinel):26379,$(ip_of sentinel):26380,$(ip_of sentinel):26381
HUB_REDIS_SENTINEL_MASTER=$SENTINEL_MASTER
HUB_REDIS_PREFIX=$PREFIX
HUB_ENVIRONMENT=development
HUB_API_PORT=8000
HUB_API_WORKERS=1
HUB_PUBLIC_BASE_URL=http://$(ip_of lb):8000
HUB_MEDIA_DIR=$STATE/shared/media
HUB_SECRETS_DIR=$STATE/shared/keys
HUB_API_TOKENS_FILE=$STATE/shared/api-tokens.toml
HUB_POLICY_VERIFY_KEYS_FILE=$STATE/shared/policy-keys.toml
HUB_POLICY_DIR=$ROOT/policies
HUB_AGENCY_ALLOWED_NETWORKS=$NET.0/24
HUB_LOG_JSON=false
HUB_LOG_LEVEL=warning
HUB_WORKER_MAX_JOBS=20
HUB_DELIVERY_JOB_TIMEOUT_SECONDS=10
HUB_WORKER_MAINTENANCE_TIMEOUT_SECONDS=20
HUB_SHUTDOWN_GRACE_SECONDS=1
EOF
}

# The API hosts' writes go through the PgBouncers (env(1) lets the later value win); the
# statement cache is off, as PgBouncer in transaction mode needs.
api_db_env() {
    cat <<EOF
HUB_DATABASE_URL=postgresql://postgres@$(ip_of pg1):6432,$(ip_of pg2):6432/$DB_NAME?target_session_attrs=read-write
HUB_DB_STATEMENT_CACHE_SIZE=0
EOF
}

# hub_run HOST NAME ARGS...: `hub ARGS` in HOST's namespace with only the rig's settings,
# restarted a second after it exits, as systemd's Restart=always would (arq's worker exits
# when Redis fails under a pipeline; a killed host takes its supervisor with it).
hub_run() {
    local host=$1 name=$2 env=()
    shift 2
    mapfile -t env < <(hub_env)
    mkdir -p "$STATE/$host/prometheus"
    [[ $host == api* ]] && mapfile -t -O "${#env[@]}" env < <(api_db_env)
    # shellcheck disable=SC2016  # expanded by the supervisor shell
    spawn "$host" "$name" bash -c 'while :; do "$@"; echo "supervisor: exited with $?; restarting in 1 s"; sleep 1; done' \
        _ env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root "${env[@]}" \
        "HUB_API_HOST=$(ip_of "$host")" "HUB_METRICS_DIR=$STATE/$host/prometheus" \
        "HUB_CONSOLE_API_URL=http://$(ip_of lb):8000" \
        "$BIN/python" -m hub.cli.main "$@"
}

hub_once() { # HOST ARGS...: run a hub command to completion in HOST's namespace
    local host=$1 env=()
    shift
    mapfile -t env < <(hub_env)
    (cd "$ROOT" && in_ns "$host" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root "${env[@]}" \
        "HUB_API_HOST=$(ip_of "$host")" "HUB_METRICS_DIR=$STATE/$host/prometheus" "$@")
}

start_host() {
    case $1 in
    api1 | api2)
        (cd "$ROOT" && hub_run "$1" "$1" api --host "$(ip_of "$1")" --port 8000)
        ;;
    worker1 | worker2) (cd "$ROOT" && hub_run "$1" "$1" worker) ;;
    agency)
        (cd "$ROOT" && hub_run agency agency demo-agency --kind rest --host "$(ip_of agency)" \
            --port 8101 --secret-file "$STATE/shared/webhook-secret")
        ;;
    redis1 | redis2) redis_start "$1" ;;
    lb) spawn lb lb haproxy -f "$STATE/haproxy.cfg" -db ;;
    *) die "cannot start '$1' (api1, api2, worker1, worker2, agency, redis1, redis2, lb)" ;;
    esac
}

# hub_pids HOST: the hub processes of HOST (python, not their supervisor shell).
hub_pids() {
    local pid
    for pid in $(ip netns pids "$(ns "$1")" 2>/dev/null); do
        [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == python* ]] && printf '%s\n' "$pid"
    done
    return 0
}

has_hub() { [[ -n "$(hub_pids "$1")" ]]; }

# restart_host HOST: SIGTERM to HOST's hub process (an API drains first); its supervisor
# starts the new one; returns once an API answers /readyz again or a worker is back.
restart_host() {
    local host=$1 old
    old="$(hub_pids "$host")"
    [[ -n $old ]] || die "no hub process on $host"
    # shellcheck disable=SC2086  # one pid per word
    kill -TERM $old
    wait_for 60 "$host's old process to exit" bash -c "! kill -0 $old 2>/dev/null"
    case $host in
    api1 | api2) wait_for 120 "$host to be ready" curl -fsS -m 2 "http://$(ip_of "$host"):8000/readyz" ;;
    *) wait_for 120 "$host to be back" has_hub "$host" ;;
    esac
}

haproxy_conf() {
    cat >"$STATE/haproxy.cfg" <<EOF
global
    maxconn 1000
defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    retries 2
    option redispatch
frontend api
    bind $(ip_of lb):8000
    default_backend apis
backend apis
    balance roundrobin
    # Replays are harmless (events are idempotent per node and event id), so a request
    # whose API host died before answering is sent to the other one.
    retry-on conn-failure empty-response response-timeout
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter 500ms fall 2 rise 2
    server api1 $(ip_of api1):8000 check
    server api2 $(ip_of api2):8000 check
EOF
}

hub_up() {
    mkdir -p "$STATE/shared/media" "$STATE/shared/keys" "$STATE/edge"
    chmod 700 "$STATE/shared/keys"
    [[ -f $STATE/shared/webhook-secret ]] ||
        printf 'whsec_%s\n' "$(head -c 24 /dev/urandom | base64)" >"$STATE/shared/webhook-secret"
    chmod 600 "$STATE/shared/webhook-secret"
    hub_once api1 "$BIN/python" -m hub.cli.main migrate >"$STATE/log/migrate.log" 2>&1 ||
        die "hub migrate failed, see $STATE/log/migrate.log"
    alive agency || start_host agency
    wait_for 120 "the demo agency" curl -fsS -m 2 "http://$(ip_of agency):8101/_inbox/"
    hub_once api1 "$BIN/python" "$ROOT/scripts/cluster/seed.py" \
        --agency-url "http://$(ip_of agency):8101/rest/events" \
        --secret-file "$STATE/shared/webhook-secret" --out "$STATE/edge" >"$STATE/log/seed.log" 2>&1 ||
        die "seeding failed, see $STATE/log/seed.log"
    local host
    for host in api1 api2 worker1 worker2; do alive "$host" || start_host "$host"; done
    haproxy_conf
    alive lb || start_host lb
    wait_for 180 "the API through HAProxy" in_ns edge curl -fsS -m 2 "http://$(ip_of lb):8000/readyz"
}

# ---------------------------------------------------------------- commands

cmd_up() {
    preflight
    mkdir -p "$STATE/run" "$STATE/log"
    net_up
    pg_up
    bouncers_up
    redis_up
    hub_up
    note "up: API http://$(ip_of lb):8000 (HAProxy), agency inbox http://$(ip_of agency):8101/_inbox/"
}

cmd_down() {
    local host
    for host in "${ORDER[@]}"; do kill_host "$host" TERM; done
    sleep 1
    for host in "${ORDER[@]}"; do kill_host "$host" KILL; done
    net_down
    rm -rf "$STATE"
    note "down: namespaces, bridge and $STATE removed"
}

cmd_status() {
    local host state
    ip link show "$BRIDGE" >/dev/null 2>&1 || { note "down"; return 0; }
    for host in "${ORDER[@]}"; do
        state="$(ip netns pids "$(ns "$host")" 2>/dev/null | wc -l) processes"
        in_ns "$host" ip link show eth0 2>/dev/null | grep -q 'state UP' || state+=", link down"
        case $host in
        pg1 | pg2) state+=", recovery=$(psql_at "$host" 'select pg_is_in_recovery()' || echo '?')" ;;
        redis1 | redis2) state+=", $(redis-cli -h "$(ip_of "$host")" info replication 2>/dev/null | grep -o '^role:[a-z]*' || echo 'role:?')" ;;
        esac
        printf '%-9s %-12s %s\n' "$host" "$(ip_of "$host")" "$state"
    done
}

main() {
    local cmd=${1:-}
    case $cmd in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    kill) kill_host "${2:?host}" KILL ;;
    start) start_host "${2:?host}" ;;
    restart) restart_host "${2:?host}" ;;
    freeze) kill_host "${2:?host}" STOP ;;
    thaw) kill_host "${2:?host}" CONT ;;
    cut) in_ns "${2:?host}" ip link set eth0 down ;;
    restore) in_ns "${2:?host}" ip link set eth0 up ;;
    promote) promote ;;
    env) hub_env ;;
    *) die "usage: $0 up|down|status|kill|start|restart|freeze|thaw|cut|restore HOST|promote|env" ;;
    esac
}

main "$@"

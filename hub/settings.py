"""The hub's settings: the only module that reads environment variables.

Values come from an optional TOML file (``HUB_SETTINGS_FILE``) overlaid by ``HUB_*``
environment variables, and are validated once at start-up. A wrong value stops the process
with one line naming the setting, never a traceback.
"""

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

import msgspec

PREFIX = "HUB_"

Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]
Positive = Annotated[int, msgspec.Meta(ge=1)]
# Comma-separated host:port pairs (IPv6 hosts in brackets), or nothing.
_HOST = r"(\[[0-9A-Fa-f:.]+\]|[^\s,:\[\]]+):[0-9]{1,5}"
_SENTINELS = rf"^$|^\s*{_HOST}(\s*,\s*{_HOST})*\s*$"


class SettingsError(Exception):
    """A setting is missing or has a wrong value; the message is one line for the operator."""


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Everything the hub can be configured with; see the README for each value."""

    # Writes go here. Several hosts (`postgresql://u@h1:5432,h2:5432/hub?target_session_attrs=
    # read-write`) let a new connection find whichever is primary after a promotion.
    database_url: str = "postgresql://postgres@127.0.0.1:5432/hub"
    # A streaming replica for reads that tolerate staleness (empty: they use the primary);
    # used only while its replay lag is at most database_replica_max_lag_seconds.
    database_replica_url: str = ""
    database_replica_max_lag_seconds: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 5.0
    # asyncpg's prepared-statement cache per connection; 0 behind PgBouncer (transaction mode).
    db_statement_cache_size: Annotated[int, msgspec.Meta(ge=0, le=10_000)] = 100
    # Longest a new connection may take (all hosts of a multi-host URL together).
    db_connect_timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=120)] = 10.0
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Sentinels (comma-separated host:port) that name the Redis master; when set, the master
    # comes from them (redis_url then gives only the db index and password).
    redis_sentinels: Annotated[str, msgspec.Meta(pattern=_SENTINELS)] = ""
    redis_sentinel_master: str = "mymaster"
    # Prefix for every Redis key the hub owns, so several hubs (and test runs) share one server.
    redis_prefix: str = "hub:"
    environment: Literal["development", "test", "production"] = "development"
    api_host: str = "127.0.0.1"
    api_port: Port = 8000
    api_workers: Positive = 1
    # Requests a keep-alive connection serves before the API closes it, so that its client
    # reconnects to the least busy API worker process (ADR 0031); 0 keeps connections open.
    api_keepalive_requests: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] = 100
    # The file through which API workers sharing a socket see each other's load (ADR 0040).
    # `hub api --workers N` makes one and sets this for its workers; empty: no board.
    api_load_board: str = ""
    # Public base URL the edge signs (@target-uri) and the WSDL names; required (https) in
    # production. Empty elsewhere: the address the API listens on, never the Host header.
    public_base_url: str = ""
    db_pool_min: Annotated[int, msgspec.Meta(ge=0)] = 2
    db_pool_max: Positive = 10
    max_body_bytes: Positive = 1024 * 1024
    max_media_bytes: Positive = 10 * 1024 * 1024
    max_batch_events: Annotated[int, msgspec.Meta(ge=1, le=500)] = 500
    signature_max_skew_seconds: Annotated[int, msgspec.Meta(ge=1, le=3600)] = 300
    # How far in the future a capture time may lie (edge clocks drift) before it is rejected.
    capture_future_tolerance_seconds: Annotated[int, msgspec.Meta(ge=0)] = 300
    # How old a capture time may be before the event is rejected (no partition for year 1).
    ingest_max_age_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] = 30
    media_dir: str = ".hub/media"
    # Hashes of static bearer tokens (until OAuth2 arrives); re-read when the file changes.
    api_tokens_file: str = ".hub/api-tokens.toml"
    partitions_ahead_months: Annotated[int, msgspec.Meta(ge=1, le=36)] = 3
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_json: bool = True
    # Folder of the default policy bundle, loaded when no bundle has been activated yet.
    policy_dir: str = "policies"
    # Decision records buffered in memory before `record()` waits (back-pressure).
    decision_log_buffer: Positive = 10_000
    # How often buffered decision records are written (they also go when a batch is full).
    decision_log_flush_ms: Annotated[int, msgspec.Meta(ge=10, le=60_000)] = 200
    # Budget of one policy evaluation; a slower one is treated as failed (fail closed).
    policy_eval_timeout_ms: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 50
    # Authz answers cached per bundle on (subject, request); 0 turns the cache off.
    policy_cache_size: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] = 10_000
    # Refuse policy bundles without a valid `.signatures.json`. Always on in production;
    # development and test may turn it off (hub.policy.bundles.config.signing_required).
    policy_signing_required: bool = True
    # Trusted bundle signing keys by key id (TOML or JSON); re-read on every upload.
    policy_verify_keys_file: str = ".hub/policy-keys.toml"
    # Largest policy bundle archive an upload may carry (413 above it).
    max_bundle_bytes: Positive = 8 * 1024 * 1024
    # Keys the hub derives per-recipient hashes (release redactions) from; created 0600.
    secrets_dir: str = ".hub/keys"
    # Delivery: attempts before a dead letter; backoff base and cap (full jitter, doubling).
    delivery_max_attempts: Annotated[int, msgspec.Meta(ge=1, le=100)] = 8
    delivery_backoff_base_seconds: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 1.0
    delivery_backoff_max_seconds: Annotated[float, msgspec.Meta(gt=0, le=86_400)] = 600.0
    # The longest wait an agency's Retry-After may impose on a retry (a longer one is cut).
    delivery_retry_after_max_seconds: Annotated[float, msgspec.Meta(gt=0, le=86_400)] = 3600.0
    # Longest one attempt may take (adapter timeouts are shorter); also the lease on a
    # claimed row, after which reconcile hands it to another worker.
    delivery_job_timeout_seconds: Annotated[int, msgspec.Meta(ge=5, le=600)] = 30
    # Reconcile re-enqueues rows due for longer than this (the queue normally has them).
    delivery_reconcile_grace_seconds: Annotated[int, msgspec.Meta(ge=1, le=3600)] = 5
    delivery_reconcile_batch: Annotated[int, msgspec.Meta(ge=10, le=100_000)] = 5_000
    # Circuit breaker per agency: open after this many consecutive failures, probe after.
    breaker_failure_threshold: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 5
    breaker_open_seconds: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 30.0
    # An agency failing without a success for this long is paused (and an alert logged).
    agency_auto_pause_seconds: Annotated[int, msgspec.Meta(ge=10)] = 900
    # Networks (comma-separated CIDRs) agency endpoints may resolve to besides public
    # addresses, e.g. "127.0.0.1/32" for a receiver on this machine; checked at registration
    # and at every connect.
    agency_allowed_networks: str = ""
    # Back-pressure: ingest answers 503 when due-but-undelivered rows or queued jobs pass these.
    backpressure_max_backlog: Positive = 100_000
    backpressure_max_queue: Positive = 100_000
    backpressure_retry_after_seconds: Annotated[int, msgspec.Meta(ge=1, le=3600)] = 10
    # Concurrent jobs per worker process.
    worker_max_jobs: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 50
    # Timeout of scheduled jobs (partitions, reconcile). arq keeps a killed worker's jobs
    # "in progress" for the longest job timeout + 10 s, so this also bounds how long the
    # deliveries a crashed worker held wait before another worker takes them.
    worker_maintenance_timeout_seconds: Annotated[int, msgspec.Meta(ge=5, le=3600)] = 120

    # Identity
    # Access tokens (ES256 JWTs): issuer and audience claims, lifetime, clock leeway.
    jwt_issuer: str = "hub"
    jwt_audience: str = "hub-api"
    access_token_ttl_seconds: Annotated[int, msgspec.Meta(ge=30, le=3600)] = 300
    refresh_token_ttl_seconds: Annotated[int, msgspec.Meta(ge=60, le=30 * 86_400)] = 8 * 3600
    jwt_leeway_seconds: Annotated[int, msgspec.Meta(ge=0, le=300)] = 30
    # mTLS: comma-separated path prefixes that require a verified client certificate (e.g.
    # "/v1/edge,/v1/feeds"); the CA that issues client certificates; the API's own TLS pair.
    mtls_required_prefixes: str = ""
    mtls_ca_file: str = ""
    tls_cert_file: str = ""
    tls_key_file: str = ""
    # Reverse proxies (comma-separated IPs or CIDRs) whose client-certificate header is
    # trusted; from any other peer the header is ignored.
    trusted_proxies: str = ""
    mtls_proxy_header: str = "x-client-cert"
    # Rate limit per client and route (GCRA in Redis): requests per period, burst = requests.
    # Policy data `hub.config.ratelimits` may override it per route or per client.
    ratelimit_enabled: bool = True
    ratelimit_requests: Positive = 600
    ratelimit_period_seconds: Annotated[int, msgspec.Meta(ge=1, le=86_400)] = 60
    # Feeds
    # Messages queued per live-feed WebSocket before the subscriber is dropped (close 4008).
    feeds_live_buffer: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 1_000
    # Live sockets one subject may hold open at once, over every API process (Redis leases).
    feeds_live_max_sockets_per_subject: Annotated[int, msgspec.Meta(ge=1, le=1_000)] = 10
    # How often an open live socket's credential, agency and authorisation are checked again
    # (also at the access token's expiry and as soon as this process runs a new bundle).
    feeds_live_recheck_seconds: Annotated[float, msgspec.Meta(ge=0.1, le=300)] = 5.0
    # Group commit of feed sequencing (ADR 0033): while a run is under way, the next one waits
    # this long after it for more committed batches to join (a page that needs positions
    # starts it at once; a lone batch on a quiet process never waits). 0 = no wait.
    feeds_sequence_linger_ms: Annotated[float, msgspec.Meta(ge=0, le=1000)] = 30.0
    # Each process vacuums `feed_pending` after sequencing this many rows (0 = leave it to
    # autovacuum): every sequenced row leaves a dead entry in the queue's index, which the
    # next run's scan walks past until a vacuum, and autovacuum comes at most once a minute.
    feeds_pending_vacuum_rows: Annotated[int, msgspec.Meta(ge=0, le=10_000_000)] = 20_000
    # A feed audience (a reader's offers) no reader has looked at for this long is pruned by
    # the hourly job, as is one whose agency is gone or disabled; a later reader refills it.
    feeds_audience_idle_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] = 7
    # Admission of feed page work per API process (REST and SOAP pages, media; not live
    # pushes), so readers never crowd out ingest (ADR 0026): pages in progress at once, pages
    # waiting for a turn (more are refused at once) and how long one waits before it is
    # refused with 503 `feeds_busy` and Retry-After.
    feeds_page_concurrency: Annotated[int, msgspec.Meta(ge=1, le=256)] = 4
    feeds_page_queue: Annotated[int, msgspec.Meta(ge=0, le=10_000)] = 32
    feeds_page_max_wait_seconds: Annotated[float, msgspec.Meta(ge=0, le=10)] = 0.5
    # Event-loop CPU that feed requests may use, in ms per second per process: the first
    # while ingest does not press on the process, the second while it does: it accepted an
    # ingest batch within the last second and, besides the feeds, used at least
    # `feeds_page_ingest_busy_percent` of a core over the last half second (ingest has
    # priority; 1000 = no limit; ADR 0026). While ingest presses and the host has less than
    # `feeds_page_host_idle_percent` of its CPU idle, pages get 1 ms per second (0 = never).
    feeds_page_cpu_ms_per_second: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 700
    feeds_page_cpu_ms_beside_ingest: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 10
    feeds_page_ingest_busy_percent: Annotated[int, msgspec.Meta(ge=0, le=100)] = 20
    feeds_page_host_idle_percent: Annotated[int, msgspec.Meta(ge=0, le=100)] = 20

    # Audit
    # The sealer signs a checkpoint (tree size, root, time) of the audit log this often.
    audit_checkpoint_seconds: Annotated[int, msgspec.Meta(ge=1, le=86_400)] = 60
    # Outside witness of checkpoints: a file (one JSON checkpoint appended per line) or an
    # http(s) URL each is POSTed to; empty: checkpoints are kept in the database only.
    audit_witness: str = ""
    # Group commit of audit appends that have no transaction of their own (feed pages, live
    # fan-out, sign-in lockouts, token revocations; ADR 0025): each process collects them into
    # one multi-row INSERT of at most `audit_append_batch` entries, sent at once when no INSERT
    # is under way, else after at most `audit_append_linger_ms` or as soon as a batch is full,
    # with at most `audit_append_flushes` INSERTs in flight. A caller returns only after its
    # entry committed. At most `audit_append_queue` entries wait; a caller that finds no room
    # for `audit_append_wait_seconds` gets 503 `audit_busy`. An INSERT that takes longer than
    # `audit_append_timeout_seconds` fails its callers (their entries may or may not be in).
    audit_append_batch: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 256
    audit_append_linger_ms: Annotated[float, msgspec.Meta(ge=0, le=1_000)] = 1.0
    audit_append_flushes: Annotated[int, msgspec.Meta(ge=1, le=64)] = 2
    audit_append_queue: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 10_000
    audit_append_wait_seconds: Annotated[float, msgspec.Meta(ge=0, le=300)] = 2.0
    audit_append_timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=300)] = 10.0

    # Retention
    # Rows one sweep batch deletes in one transaction, and the pause between batches that
    # leaves ingest its share of the disk. bench/retention.py: 1,000 rows with 100 ms pauses
    # disturb ingest p99 less than 5,000 rows with 20 ms (+12 % against +88 % at 1 M rows),
    # but not always within the 20 % goal (+108 % at 2 M rows on a busy machine).
    retention_batch_size: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 1_000
    retention_batch_pause_ms: Annotated[int, msgspec.Meta(ge=0, le=60_000)] = 100
    # Media uploads are refused (507) once the media volume is fuller than this; nothing
    # is ever deleted to make room.
    media_disk_max_used_percent: Annotated[float, msgspec.Meta(gt=0, le=100)] = 90.0
    # PII envelope encryption: master keys live in this folder (empty: <secrets_dir>/pii) as
    # master-<id>.key; new data keys are wrapped by the current id (rotate: change it, then
    # `hub privacy rotate`).
    pii_keys_dir: str = ""
    pii_master_key_id: Annotated[str, msgspec.Meta(pattern="^[A-Za-z0-9_-]{1,32}$")] = "1"

    # Observability
    # Prometheus multiprocess folder shared by this host's `hub api` and `hub worker`
    # processes (empty: each process only exposes its own registry). Empty it at boot.
    metrics_dir: str = ".hub/prometheus"
    # OTLP/HTTP traces endpoint (e.g. http://collector:4318/v1/traces); empty: no export.
    otlp_endpoint: str = ""
    trace_sample_ratio: Annotated[float, msgspec.Meta(ge=0, le=1)] = 1.0
    # On SIGTERM the API answers /readyz with 503 this long while still serving, then
    # stops accepting and finishes in-flight requests.
    shutdown_grace_seconds: Annotated[float, msgspec.Meta(ge=0, le=300)] = 5.0
    slo_file: str = "deploy/slo.yaml"
    # Prometheus base URL for `GET /v1/ops/slo` (empty: burn rates from this host's counters).
    prometheus_url: str = ""
    # `hub migrate --check` treats tables with at least this many rows as big.
    migrate_big_table_rows: Annotated[int, msgspec.Meta(ge=0)] = 100_000

    # Console
    # `hub console` serves the Streamlit console here; it calls the API at console_api_url
    # with each officer's own token (never the database).
    console_host: str = "127.0.0.1"
    console_port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 8501
    console_api_url: str = "http://127.0.0.1:8000"
    # A console session ends after this long without a request (tokens are refreshed meanwhile).
    console_idle_seconds: Annotated[int, msgspec.Meta(ge=60, le=86_400)] = 1800

    def __post_init__(self) -> None:
        """Production must say where it is reachable: no address is ever taken from `Host`."""
        if self.environment == "production" and not self.public_base_url.startswith("https://"):
            raise ValueError(
                "HUB_PUBLIC_BASE_URL: an https:// URL is required when HUB_ENVIRONMENT=production"
            )


def load_settings(
    environ: Mapping[str, str] | None = None, *, file: Path | None = None
) -> Settings:
    """Build validated settings from a TOML file (optional) and ``HUB_*`` variables."""
    env = os.environ if environ is None else environ
    values: dict[str, object] = {}
    path = file or (
        Path(env[f"{PREFIX}SETTINGS_FILE"]) if f"{PREFIX}SETTINGS_FILE" in env else None
    )
    if path is not None:
        values.update(_read_file(path))
    values.update(_read_environ(env))
    try:
        return msgspec.convert(values, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(f"invalid setting: {_name_setting(str(exc))}") from None


def _read_file(path: Path) -> dict[str, object]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise SettingsError(f"cannot read settings file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"settings file {path} is not valid TOML: {exc}") from None


def _read_environ(env: Mapping[str, str]) -> dict[str, object]:
    known = set(Settings.__struct_fields__)
    values: dict[str, object] = {}
    for key, raw in env.items():
        if not key.startswith(PREFIX) or key == f"{PREFIX}SETTINGS_FILE":
            continue
        name = key[len(PREFIX) :].lower()
        if name not in known:
            raise SettingsError(f"unknown setting {key} (known: see README 'Configuration')")
        values[name] = raw
    return values


def _name_setting(message: str) -> str:
    """Turn msgspec's `... - at `$.api_port`` into `HUB_API_PORT: ...`."""
    text, _, where = message.partition(" - at `$.")
    if not where:
        return text
    return f"{PREFIX}{where.rstrip('`').upper()}: {text}"

"""Pure parts of observability: long-lock rules, the SLO file and its generated rules, burn
rates."""

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from hub.observability.lock_rules import find_long_locks, split_statements
from hub.observability.slo import (
    BURN_ALERTS,
    Slo,
    burn_rate,
    load_spec,
    prometheus_rules,
    render_rules,
    sli_totals,
)
from tests.support import repo_root

ROOT = repo_root()
BIG = {"detection_event": 5_000_000, "delivery": 2_000_000, "tiny": 10}


def rules_of(sql: str) -> list[tuple[str, str]]:
    found = find_long_locks("m1", sql, table_rows=BIG, big_rows=100_000)
    return [(f.table, f.rule) for f in found]


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        (
            "CREATE INDEX ix ON delivery (agency_id)",
            [("delivery", "create_index_without_concurrently")],
        ),
        ("CREATE INDEX CONCURRENTLY ix ON delivery (agency_id)", []),
        (
            "CREATE UNIQUE INDEX IF NOT EXISTS ix ON public.delivery (x)",
            [("delivery", "create_index_without_concurrently")],
        ),
        (
            "ALTER TABLE delivery ADD COLUMN token uuid DEFAULT gen_random_uuid()",
            [("delivery", "add_column_volatile_default")],
        ),
        ("ALTER TABLE delivery ADD COLUMN seen_at timestamptz DEFAULT now()", []),
        ("ALTER TABLE delivery ADD COLUMN note text DEFAULT 'x' NOT NULL", []),
        (
            "ALTER TABLE delivery ADD COLUMN n bigserial",
            [("delivery", "add_column_volatile_default")],
        ),
        ("ALTER TABLE delivery ALTER COLUMN note SET NOT NULL", [("delivery", "set_not_null")]),
        (
            "ALTER TABLE delivery ALTER COLUMN note TYPE varchar(10)",
            [("delivery", "alter_column_type")],
        ),
        (
            "ALTER TABLE delivery ADD CONSTRAINT fk FOREIGN KEY (a) REFERENCES agency (id)",
            [("delivery", "add_constraint_without_not_valid")],
        ),
        ("ALTER TABLE delivery ADD CONSTRAINT fk FOREIGN KEY (a) REFERENCES agency NOT VALID", []),
        (
            "ALTER TABLE delivery ADD CONSTRAINT c CHECK (attempts >= 0)",
            [("delivery", "add_constraint_without_not_valid")],
        ),
        (
            "ALTER TABLE delivery ADD CONSTRAINT u UNIQUE (x)",
            [("delivery", "add_unique_without_index")],
        ),
        ("ALTER TABLE delivery ADD CONSTRAINT u UNIQUE USING INDEX ux", []),
        ("VACUUM FULL detection_event", [("detection_event", "exclusive_maintenance")]),
        # Small tables and tables the migration creates are never refused.
        ("CREATE INDEX ix ON tiny (x)", []),
        ("CREATE TABLE delivery (id int); CREATE INDEX ix ON delivery (id)", []),
    ],
)
def test_long_lock_rules(sql: str, expected: list[tuple[str, str]]) -> None:
    assert rules_of(sql) == expected


def test_statements_split_outside_quotes_comments_and_dollar_bodies() -> None:
    sql = """-- CREATE INDEX ON delivery (x);
    CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql;
    /* ALTER TABLE delivery ALTER COLUMN x SET NOT NULL; */
    INSERT INTO t VALUES ('a;b');"""
    statements = split_statements(sql)
    assert len(statements) == 2
    assert rules_of(sql) == []


def test_several_actions_in_one_alter_are_judged_each() -> None:
    sql = "ALTER TABLE delivery ADD COLUMN a int, ALTER COLUMN b SET NOT NULL"
    assert rules_of(sql) == [("delivery", "set_not_null")]


def test_the_shipped_migrations_parse() -> None:
    for path in sorted((ROOT / "migrations" / "sql").glob("*.sql")):
        assert split_statements(path.read_text(encoding="utf-8")), path


# --- SLOs -----------------------------------------------------------------------------------


def spec_file() -> Path:
    return ROOT / "deploy" / "slo.yaml"


def test_slo_file_names_the_four_objectives() -> None:
    spec = load_spec(spec_file())
    assert {s.name for s in spec.slos} == {
        "ingest-availability",
        "ingest-latency",
        "delivery-latency",
        "feed-availability",
    }


def test_generated_rules_have_multiwindow_burn_alerts_and_runbooks() -> None:
    spec = load_spec(spec_file())
    rules = prometheus_rules(spec)
    alerts = [r for g in rules["groups"] for r in g["rules"] if "alert" in r]
    records = [r for g in rules["groups"] for r in g["rules"] if "record" in r]
    assert {r["record"] for r in records} == {
        f"slo:sli_error:ratio_rate{w}" for w in ("5m", "30m", "1h", "6h", "3d")
    }
    assert sorted(a["alert"] for a in alerts) == sorted(spec.alert_names())
    for alert in alerts:
        url = alert["annotations"]["runbook_url"]
        assert url.endswith(f"/{alert['alert']}.md")
        assert (ROOT / "runbooks" / f"{alert['alert']}.md").is_file(), alert["alert"]
        assert alert["labels"]["severity"] in {"page", "ticket"}
    page = next(a for a in alerts if a["alert"] == "IngestAvailabilityBudgetBurn")
    # 99.9 %: budget 0.001; 14.4x over 1h and 5m, 6x over 6h and 30m.
    assert 'ratio_rate1h{slo="ingest-availability"} > 0.0144' in page["expr"]
    assert 'ratio_rate5m{slo="ingest-availability"} > 0.0144' in page["expr"]
    assert 'ratio_rate6h{slo="ingest-availability"} > 0.006' in page["expr"]
    assert 'ratio_rate30m{slo="ingest-availability"} > 0.006' in page["expr"]
    ticket = next(a for a in alerts if a["alert"] == "IngestAvailabilityBudgetBurnSlow")
    assert "ratio_rate3d" in ticket["expr"]
    assert "ratio_rate6h" in ticket["expr"]
    assert [f for f, *_ in BURN_ALERTS] == [14.4, 6.0, 1.0]
    delivery = next(r for r in records if r["labels"]["slo"] == "delivery-latency")
    assert "by (agency)" in delivery["expr"]
    assert 'le="5.0"' in delivery["expr"]


def test_generated_rules_pass_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package `prometheus`); YAML checked above")
    path = tmp_path / "rules.yaml"
    path.write_text(render_rules(load_spec(spec_file())), encoding="utf-8")
    done = subprocess.run(  # noqa: S603 - promtool found on PATH, our own file
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]


def test_burn_rate_from_counter_samples() -> None:
    spec = load_spec(spec_file())
    route = "/v1/edge/events"
    samples = [
        ("hub_http_request_seconds_count", {"route": route, "status": "200"}, 990.0),
        ("hub_http_request_seconds_count", {"route": route, "status": "503"}, 10.0),
        ("hub_http_request_seconds_bucket", {"route": route, "status": "200", "le": "0.25"}, 900.0),
        ("hub_http_request_seconds_bucket", {"route": route, "status": "503", "le": "0.25"}, 10.0),
        ("hub_http_request_seconds_count", {"route": "/readyz", "status": "503"}, 50.0),
        ("hub_delivery_attempt_seconds_count", {"agency": "police"}, 100.0),
        ("hub_delivery_attempt_seconds_bucket", {"agency": "police", "le": "5.0"}, 98.0),
    ]
    totals = sli_totals(spec, samples)
    assert totals[("ingest-availability", "")] == (10.0, 1000.0)
    assert totals[("ingest-latency", "")] == (90.0, 1000.0)
    assert totals[("delivery-latency", "police")] == (2.0, 100.0)
    availability: Slo = next(s for s in spec.slos if s.name == "ingest-availability")
    # 1 % errors against a 0.1 % budget: burning 10x.
    assert burn_rate(availability, (10.0, 1000.0), None) == pytest.approx(10.0)
    assert burn_rate(availability, (10.0, 1000.0), (10.0, 500.0)) == 0.0
    assert burn_rate(availability, (10.0, 1000.0), (10.0, 1000.0)) is None

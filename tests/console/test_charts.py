"""Burn-rate cells are judged against the alert that reads their window (pure)."""

import pytest

from console.charts import burn_level, burn_style, burn_table


@pytest.mark.parametrize(
    ("window", "rate", "level"),
    [
        ("5m", 14.4, "alert"),
        ("5m", 14.3, "burning"),
        ("1h", 20.0, "alert"),
        ("30m", 6.0, "alert"),
        ("6h", 5.9, "burning"),
        ("3d", 1.0, "alert"),
        ("3d", 0.99, "ok"),
        ("5m", 0.0, "ok"),
        ("1h", None, None),
    ],
)
def test_burn_level_follows_the_window_threshold(
    window: str, rate: float | None, level: str | None
) -> None:
    assert burn_level(window, rate) == level


def test_burn_table_one_row_per_slo_and_agency_in_window_order() -> None:
    report = {
        "source": "process",
        "slos": [
            {"slo": "ingest", "agency": None, "objective": 99.9, "burn_rates": {"5m": 0.123}},
            {
                "slo": "delivery-latency",
                "agency": "police-north",
                "objective": 99.0,
                "burn_rates": {"3d": 2, "5m": None},
            },
        ],
    }
    rows = burn_table(report)
    assert [r["SLO"] for r in rows] == ["ingest", "delivery-latency (police-north)"]
    assert list(rows[0]) == ["SLO", "objective %", "5m", "30m", "1h", "6h", "3d"]
    assert rows[0]["5m"] == 0.12
    assert rows[1]["3d"] == 2.0
    assert "f8c9c4" in burn_style(rows[1]["3d"], window="3d")
    assert burn_style(None, window="5m") == ""
    assert burn_style(float("nan"), window="5m") == ""  # pandas' missing value

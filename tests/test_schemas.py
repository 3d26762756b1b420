"""The JSON Schema committed in schemas/ is the one the code generates (no drift)."""

import json
from pathlib import Path

from hub.contracts.detection_v1 import json_schema

ROOT = Path(__file__).resolve().parents[1]


def test_committed_schema_matches_the_structs() -> None:
    committed = json.loads((ROOT / "schemas" / "hub.detection.v1.schema.json").read_text())
    assert committed == json.loads(json.dumps(json_schema())), "run `make schemas` and commit"

"""The ingest port on the real default bundle: groups judged once, minimums applied per event."""

import uuid
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from hub.contracts.detection_v1 import BoundingBox, Detection, DetectionEvent
from hub.ingest.decider import PolicyIngestDecider
from hub.ingest.rules import PreparedEvent, prepare
from hub.policy.bundle import load_bundle_dir
from hub.policy.engines import load_engine
from hub.policy.schemas import DecisionRecord
from hub.policy.service import PolicyService

BUNDLE = Path(__file__).resolve().parents[3] / "policies"
BOX = BoundingBox(x=0.1, y=0.1, width=0.2, height=0.2)


class Sink:
    def __init__(self) -> None:
        self.records: list[DecisionRecord] = []

    async def record(self, record: DecisionRecord) -> None:
        self.records.append(record)


def event(camera: str, *scores_by_label: tuple[str, float]) -> PreparedEvent:
    return prepare(
        DetectionEvent(
            event_id=uuid.uuid4(),
            camera_id=camera,
            captured_at=datetime.now(UTC),
            model_name="demo-synthetic",
            model_version="1",
            detections=[
                Detection(label=label, confidence=score, box=BOX)
                for label, score in scores_by_label
            ],
        )
    )


async def test_groups_are_judged_once_and_minimums_apply_per_event() -> None:
    sink = Sink()
    policy = PolicyService(load_engine(load_bundle_dir(BUNDLE)), sink=sink, eval_budget_ms=1000)
    events = [
        event("demo-cam-1", ("person", 0.9)),
        event("demo-cam-1", ("person", 0.3)),  # below person's 0.5
        event("cam-lab-02", ("person", 0.9)),  # a quarantined camera
        event("demo-cam-1", ("person", 0.55), ("face", 0.55)),  # most lenient minimum: 0.5
        event("demo-cam-1", ("face", 0.55)),  # face alone needs 0.6
        event("demo-cam-1", ("dog", 0.99)),  # a class nobody accepts
    ]
    verdicts = await PolicyIngestDecider(policy).decide(node_id=uuid.uuid4(), events=events)
    assert verdicts.dispositions == ["accept", "drop", "quarantine", "accept", "drop", "drop"]
    (record,) = sink.records
    assert verdicts.decision_id == record.decision_id
    assert len(record.input["groups"]) == 5  # the two plain person events share one group


async def test_without_a_bundle_every_event_is_quarantined() -> None:
    policy = PolicyService(None, sink=Sink(), eval_budget_ms=1000)
    events = [event("demo-cam-1", ("person", 0.9)), event("demo-cam-2", ("vehicle", 0.9))]
    verdicts = await PolicyIngestDecider(policy).decide(node_id=uuid.uuid4(), events=events)
    assert verdicts.dispositions == ["quarantine", "quarantine"]


async def test_groups_carry_the_registry_jurisdiction_of_their_camera() -> None:
    sink = Sink()
    policy = PolicyService(load_engine(load_bundle_dir(BUNDLE)), sink=sink, eval_budget_ms=1000)
    events = [event("demo-cam-1", ("person", 0.9)), event("demo-cam-2", ("person", 0.9))]
    where = {"demo-cam-1": "north", "demo-cam-2": "central"}
    await PolicyIngestDecider(policy).decide(
        node_id=uuid.uuid4(), events=events, jurisdictions=where
    )
    (record,) = sink.records
    assert {g["camera_id"]: g["jurisdiction"] for g in record.input["groups"]} == where


class CountingEngine:
    """The real engine, noting the groups of every ingest evaluation."""

    def __init__(self) -> None:
        self.engine = load_engine(load_bundle_dir(BUNDLE))
        self.judged: list[list[str]] = []

    @property
    def revision(self) -> str:
        return self.engine.revision

    def evaluate(self, entrypoint: str, input_json: bytes) -> bytes:
        if entrypoint == "hub/ingest/decision":
            groups = msgspec.json.decode(input_json)["groups"]
            self.judged.append([g["camera_id"] + ":" + ",".join(g["classes"]) for g in groups])
        return self.engine.evaluate(entrypoint, input_json)


async def test_a_group_is_evaluated_once_per_bundle_and_every_batch_is_logged_whole() -> None:
    sink, engine = Sink(), CountingEngine()
    policy = PolicyService(engine, sink=sink, eval_budget_ms=1000)
    decider = PolicyIngestDecider(policy)
    first = [event("demo-cam-1", ("person", 0.9)), event("cam-lab-02", ("person", 0.9))]
    second = [
        event("demo-cam-1", ("person", 0.3)),  # a judged group: its minimum still applies
        event("demo-cam-1", ("face", 0.9)),  # a new group
        event("cam-lab-02", ("person", 0.9)),
    ]
    await decider.decide(node_id=uuid.uuid4(), events=first)
    verdicts = await decider.decide(node_id=uuid.uuid4(), events=second)
    assert verdicts.dispositions == ["drop", "accept", "quarantine"]
    assert engine.judged == [
        ["demo-cam-1:person", "cam-lab-02:person"],
        ["demo-cam-1:face"],
    ]
    logged = sink.records[-1]
    assert [g["classes"] for g in logged.input["groups"]] == [["person"], ["face"], ["person"]]
    assert [g["action"] for g in logged.result["groups"]] == ["accept", "accept", "quarantine"]
    fresh = CountingEngine()
    policy.activate(fresh)  # a new bundle judges every group again
    await decider.decide(node_id=uuid.uuid4(), events=first)
    assert fresh.judged == [["demo-cam-1:person", "cam-lab-02:person"]]

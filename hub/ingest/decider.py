"""The ingest port implemented with policy `hub/ingest/decision` (one evaluation per batch)."""

from uuid import UUID

from hub.contracts.detection_v1 import DetectionEvent
from hub.ingest.ports import IngestVerdicts
from hub.policy.guard import Decider
from hub.policy.schemas import IngestEvent, IngestInput, IngestNode, IngestResult


class PolicyIngestDecider:
    """Asks the policy what to do with each event; the policy service fails closed
    (quarantine: stored for review, never routed) when evaluation fails."""

    def __init__(self, decider: Decider) -> None:
        self.decider = decider

    async def decide(self, *, node_id: UUID, events: list[DetectionEvent]) -> IngestVerdicts:
        """One verdict per event, in order, and the decision id."""
        if not events:
            return IngestVerdicts(dispositions=[])
        policy_input = IngestInput(
            node=IngestNode(id=str(node_id), status="active"),
            events=[_summary(e) for e in events],
        )
        result, record = await self.decider.decide(
            "hub/ingest/decision", policy_input, result_type=IngestResult
        )
        if len(result.events) != len(events):
            # A policy answering for the wrong number of events is broken: hold them all.
            return IngestVerdicts(
                dispositions=["quarantine"] * len(events), decision_id=record.decision_id
            )
        return IngestVerdicts(
            dispositions=[v.action for v in result.events], decision_id=record.decision_id
        )


def _summary(event: DetectionEvent) -> IngestEvent:
    """What ingest policy sees of an event: no attribute values, so no personal data."""
    confidences = [d.confidence for d in event.detections]
    return IngestEvent(
        event_id=str(event.event_id),
        camera_id=event.camera_id,
        captured_at=event.captured_at,
        classes=sorted({d.label for d in event.detections}),
        max_confidence=max(confidences),
        min_confidence=min(confidences),
        model_name=event.model_name,
    )

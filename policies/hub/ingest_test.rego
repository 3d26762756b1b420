package hub.ingest_test

import rego.v1

import data.hub.ingest

active_node := {"id": "node-7", "name": "gate-east", "status": "active"}

event(overrides) := object.union(
	{
		"event_id": "0b9f3d1e-8c1a-4c7e-9f57-3f1f3b0c9a11",
		"camera_id": "demo-cam-1",
		"captured_at": "2026-11-22T10:17:42.512Z",
		"classes": ["person", "vehicle"],
		"max_confidence": 0.91,
		"min_confidence": 0.62,
		"model_name": "demo-synthetic",
	},
	overrides,
)

# Inputs are replaced key by key: rego-cpp 1.5.2 aborts on `with input as {...}` when the
# policy calls functions on the input.
verdicts(node, events) := result.events if {
	result := ingest.decision with input.node as node with input.events as events
}

only_verdict(overrides) := verdict if {
	[verdict] := verdicts(active_node, [event(overrides)])
}

test_plain_event_accepted if {
	only_verdict({}) == {"action": "accept", "reason": "accepted"}
}

test_revoked_node_drops_every_event if {
	revoked := object.union(active_node, {"status": "revoked"})
	verdicts(revoked, [event({}), event({"camera_id": "cam-lab-02"})]) == [
		{"action": "drop", "reason": "node not active"},
		{"action": "drop", "reason": "node not active"},
	]
}

test_node_without_status_drops if {
	unsure := object.remove(active_node, ["status"])
	verdicts(unsure, [event({})]) == [{"action": "drop", "reason": "node not active"}]
}

test_blocked_camera_dropped if {
	only_verdict({"camera_id": "cam-decommissioned-01"}) == {"action": "drop", "reason": "camera blocked: decommissioned"}
}

test_blocklist_wins_over_quarantine_and_model if {
	result := only_verdict({"camera_id": "cam-private-garden", "model_name": "mystery"})
	result == {"action": "drop", "reason": "camera blocked: faces private property"}
}

test_quarantined_camera_quarantined if {
	only_verdict({"camera_id": "cam-lab-02"}) == {"action": "quarantine", "reason": "camera quarantined: recalibration pending"}
}

test_unknown_model_quarantined if {
	only_verdict({"model_name": "yolo-homebrew"}) == {"action": "quarantine", "reason": "unknown model yolo-homebrew"}
}

test_unknown_model_quarantined_before_class_checks if {
	only_verdict({"model_name": "yolo-homebrew", "classes": ["dog"]}).action == "quarantine"
}

test_event_without_classes_dropped if {
	only_verdict({"classes": []}) == {"action": "drop", "reason": "no classes"}
}

test_unaccepted_classes_dropped_and_named_in_order if {
	result := only_verdict({"classes": ["person", "dog", "cat"]})
	result == {"action": "drop", "reason": "classes not accepted: cat, dog"}
}

test_below_class_minimum_dropped if {
	result := only_verdict({"classes": ["person"], "max_confidence": 0.45})
	result == {"action": "drop", "reason": "below confidence threshold: 0.45 < 0.5"}
}

test_score_at_minimum_accepted if {
	only_verdict({"classes": ["person"], "max_confidence": 0.5}).action == "accept"
}

test_most_lenient_class_minimum_applies if {
	# vehicle's minimum is 0.4: a 0.45 event may hold a vehicle worth keeping.
	only_verdict({"classes": ["person", "vehicle"], "max_confidence": 0.45}).action == "accept"
}

test_face_needs_higher_confidence if {
	result := only_verdict({"classes": ["face"], "max_confidence": 0.55})
	result == {"action": "drop", "reason": "below confidence threshold: 0.55 < 0.6"}
}

test_threshold_compares_numbers_not_text if {
	# Tens of percent as whole numbers: text order would put 10 before 9.
	classes := {"a": {"min_confidence": 9}, "b": {"min_confidence": 10}}
	result := only_verdict({"classes": ["a", "b"], "max_confidence": 9.5}) with data.hub.config.ingest.classes as classes
	result.action == "accept"
}

test_malformed_event_dropped if {
	verdicts(active_node, [{"event_id": "x", "camera_id": "demo-cam-1"}]) == [{"action": "drop", "reason": "event not evaluable"}]
}

test_empty_batch_gives_no_verdicts if {
	verdicts(active_node, []) == []
}

test_verdicts_keep_input_order if {
	events := [
		event({"camera_id": "cam-lab-02"}),
		event({}),
		event({"classes": ["dog"]}),
		event({"camera_id": "cam-decommissioned-01"}),
		event({"max_confidence": 0.1}),
		event({"model_name": "other"}),
	]
	[v.action | some v in verdicts(active_node, events)] == ["quarantine", "accept", "drop", "drop", "drop", "quarantine"]
}

test_one_verdict_per_event_in_a_large_batch if {
	events := [event({"event_id": format_int(n, 10), "max_confidence": n / 120}) | some n in numbers.range(1, 120)]
	result := verdicts(active_node, events)
	count(result) == 120
	# Scores rise with the index: everything below 0.4 comes first, then accepts.
	[v.action | some v in array.slice(result, 0, 3)] == ["drop", "drop", "drop"]
	result[119].action == "accept"
	every idx in numbers.range(0, 118) {
		rank(result[idx].action) <= rank(result[idx + 1].action)
	}
}

rank("drop") := 0

rank("accept") := 1

test_every_class_has_a_minimum_between_zero_and_one if {
	every cls in data.hub.config.ingest.classes {
		cls.min_confidence >= 0
		cls.min_confidence <= 1
	}
}

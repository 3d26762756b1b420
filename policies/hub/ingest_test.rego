package hub.ingest_test

import rego.v1

import data.hub.ingest

active_node := {"id": "node-7", "name": "gate-east", "status": "active"}

group(overrides) := object.union(
	{"camera_id": "demo-cam-1", "model_name": "demo-synthetic", "classes": ["person", "vehicle"]},
	overrides,
)

# Inputs are replaced key by key: rego-cpp 1.5.2 aborts on `with input as {...}` when the
# policy calls functions on the input.
verdicts(node, groups) := result.groups if {
	result := ingest.decision with input.node as node with input.groups as groups
}

only_verdict(overrides) := verdict if {
	[verdict] := verdicts(active_node, [group(overrides)])
}

test_plain_group_accepted_with_its_minimum if {
	only_verdict({}) == {"action": "accept", "reason": "accepted", "min_confidence": 0.4}
}

test_revoked_node_drops_every_group if {
	revoked := object.union(active_node, {"status": "revoked"})
	verdicts(revoked, [group({}), group({"camera_id": "cam-lab-02"})]) == [
		{"action": "drop", "reason": "node not active"},
		{"action": "drop", "reason": "node not active"},
	]
}

test_node_without_status_drops if {
	unsure := object.remove(active_node, ["status"])
	verdicts(unsure, [group({})]) == [{"action": "drop", "reason": "node not active"}]
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

test_group_without_classes_dropped if {
	only_verdict({"classes": []}) == {"action": "drop", "reason": "no classes"}
}

test_unaccepted_classes_dropped_and_named_in_order if {
	result := only_verdict({"classes": ["person", "dog", "cat"]})
	result == {"action": "drop", "reason": "classes not accepted: cat, dog"}
}

test_person_minimum if {
	only_verdict({"classes": ["person"]}).min_confidence == 0.5
}

test_most_lenient_class_minimum_applies if {
	# vehicle's minimum is 0.4: an event may hold a vehicle worth keeping at 0.45.
	only_verdict({"classes": ["person", "vehicle"]}).min_confidence == 0.4
}

test_face_needs_higher_confidence if {
	only_verdict({"classes": ["face"]}).min_confidence == 0.6
}

test_minimum_compares_numbers_not_text if {
	# Whole numbers: text order would put 10 before 9.
	classes := {"a": {"min_confidence": 9}, "b": {"min_confidence": 10}}
	result := only_verdict({"classes": ["a", "b"]}) with data.hub.config.ingest.classes as classes
	result.min_confidence == 9
}

test_malformed_group_dropped if {
	verdicts(active_node, [{"camera_id": "demo-cam-1"}]) == [{"action": "drop", "reason": "group not evaluable"}]
}

test_empty_batch_gives_no_verdicts if {
	verdicts(active_node, []) == []
}

test_verdicts_keep_input_order if {
	groups := [
		group({"camera_id": "cam-lab-02"}),
		group({}),
		group({"classes": ["dog"]}),
		group({"camera_id": "cam-decommissioned-01"}),
		group({"model_name": "other"}),
	]
	[v.action | some v in verdicts(active_node, groups)] == ["quarantine", "accept", "drop", "drop", "quarantine"]
}

test_one_verdict_per_group_in_a_large_batch if {
	groups := [group({"camera_id": sprintf("cam-%d", [n])}) | some n in numbers.range(1, 60)]
	result := verdicts(active_node, groups)
	count(result) == 60
	every v in result {
		v.action == "accept"
	}
}

test_every_class_has_a_minimum_between_zero_and_one if {
	every cls in data.hub.config.ingest.classes {
		cls.min_confidence >= 0
		cls.min_confidence <= 1
	}
}

package hub.retention_test

import rego.v1

import data.hub.retention

# Inputs are replaced key by key: rego-cpp 1.5.2 aborts on `with input as {...}` when the
# policy calls functions on the input.
keep(data_class, jurisdiction, agency, hold) := result if {
	result := retention.decision with input.data_class as data_class
		with input.jurisdiction as jurisdiction
		with input.agency as agency
		with input.legal_hold as hold
}

test_class_default_applies if {
	keep("detection_event", "central", null, false) == {"keep_days": 30, "hold": false, "reason": "30 days (detection_event default)"}
}

test_jurisdiction_override_applies if {
	keep("detection_event", "north", null, false) == {"keep_days": 90, "hold": false, "reason": "90 days (jurisdiction north override)"}
}

test_jurisdiction_override_may_shorten if {
	keep("pii_attribute", "central", null, false).keep_days == 2
}

test_agency_override_wins_over_jurisdiction if {
	result := keep("snapshot", "north", "police-north", false)
	result == {"keep_days": 90, "hold": false, "reason": "90 days (agency police-north override)"}
}

test_agency_without_override_uses_jurisdiction if {
	keep("snapshot", "north", "transit-authority", false).keep_days == 30
}

test_agency_override_is_per_class if {
	keep("detection_event", "central", "police-north", false).keep_days == 30
}

test_legal_hold_wins if {
	result := keep("snapshot", "central", null, true)
	result == {"keep_days": 7, "hold": true, "reason": "legal hold: kept until released (otherwise 7 days (snapshot default))"}
}

test_legal_hold_wins_over_every_override if {
	result := keep("snapshot", "north", "police-north", true)
	result.hold == true
	result.keep_days == 90
}

test_legal_hold_must_be_true_not_truthy if {
	keep("snapshot", "central", null, "yes").hold == false
}

test_missing_legal_hold_means_none if {
	result := retention.decision with input.data_class as "decision_log" with input.jurisdiction as "central"
	result == {"keep_days": 365, "hold": false, "reason": "365 days (decision_log default)"}
}

test_unknown_class_held_for_review_for_the_longest_period if {
	result := keep("face_embedding", "north", null, false)
	result == {"keep_days": 2555, "hold": true, "reason": "unknown data class face_embedding: held for review"}
}

test_missing_class_held_by_default if {
	result := retention.decision with input.jurisdiction as "north"
	result == {"keep_days": 0, "hold": true, "reason": "retention request not understood: held"}
}

test_audit_keeps_the_longest if {
	audit := keep("audit_entry", "north", "police-north", false).keep_days
	audit == retention.longest
	every days in retention.all_periods {
		days <= audit
	}
}

test_longest_compares_numbers_not_text if {
	# As text, "9" sorts after "10"; the policy must still find 10.
	classes := {"a": {"keep_days": 9, "jurisdictions": {}}, "b": {"keep_days": 10, "jurisdictions": {}}}
	longest := retention.longest with data.hub.config.retention.classes as classes
		with data.hub.config.retention.agencies as {}
	longest == 10
}

test_every_table_class_is_covered if {
	every name in ["detection_event", "snapshot", "pii_attribute", "delivery_attempt", "decision_log", "audit_entry"] {
		data.hub.config.retention.classes[name].keep_days > 0
	}
}

# The sweep asks per camera: with no jurisdiction in the input, the camera's one applies.
test_camera_jurisdiction_applies_when_none_given if {
	result := retention.decision with input.data_class as "detection_event"
		with input.jurisdiction as ""
		with input.camera_id as "demo-cam-1"
		with input.agency as null
		with input.legal_hold as false
	result == {"keep_days": 90, "hold": false, "reason": "90 days (jurisdiction north override)"}
}

test_unknown_camera_uses_class_default if {
	result := retention.decision with input.data_class as "pii_attribute"
		with input.jurisdiction as ""
		with input.camera_id as "cam-nowhere"
		with input.agency as null
		with input.legal_hold as false
	result.keep_days == 7
}

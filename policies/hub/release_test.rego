package hub.release_test

import rego.v1

import data.hub.release

# A detection event (hub.detection.v1) from a central camera: a car, its plate, a pedestrian.
record := {
	"event_id": "0b9f3d1e-8c1a-4c7e-9f57-3f1f3b0c9a11",
	"camera_id": "demo-cam-2",
	"captured_at": "2026-11-22T10:17:42.512Z",
	"model_name": "demo-synthetic",
	"model_version": "0.1",
	"detections": [
		{
			"label": "vehicle", "confidence": 0.91,
			"box": {"x": 0.1, "y": 0.2, "width": 0.3, "height": 0.2},
			"track_id": "v7", "attributes": {"vehicle_type": "car"},
		},
		{
			"label": "plate", "confidence": 0.88,
			"box": {"x": 0.2, "y": 0.35, "width": 0.06, "height": 0.02},
			"track_id": "v7", "attributes": {"plate_text": "AB-123-CD"},
		},
		{
			"label": "person", "confidence": 0.77,
			"box": {"x": 0.6, "y": 0.3, "width": 0.08, "height": 0.3},
			"track_id": "p3", "attributes": {},
		},
	],
	"media": [{"sha256": "5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef", "kind": "snapshot", "content_type": "image/jpeg"}],
}

north_record := object.union(record, {"camera_id": "demo-cam-1"})

police := {"id": "police-north", "kind": "agency", "jurisdictions": ["north"], "clearance": 3}

transit := {"id": "transit-authority", "kind": "agency", "jurisdictions": ["central"], "clearance": 2}

analytics := {"id": "city-analytics", "kind": "agency", "jurisdictions": ["central"], "clearance": 1}

# Inputs are replaced key by key: rego-cpp 1.5.2 aborts on `with input as {...}` when the
# policy calls functions on the input.
release_for(recipient, purpose, data_class, rec) := result if {
	result := release.decision with input.recipient as recipient
		with input.purpose as purpose
		with input.data_class as data_class
		with input.record as rec
}

# What every profile that blurs faces removes besides: the face's landmarks.
face_geometry := [r |
	some name in data.hub.config.release.identifying_geometry.face
	r := {"path": concat("", ["/detections/*/attributes/", name]), "op": "remove", "params": {}}
]

refused(result, reason) if {
	result == {"allow": false, "reason": reason, "redactions": [], "media": []}
}

# The three demo agencies

test_police_gets_plates_in_clear_faces_blurred if {
	result := release_for(police, "investigation", "detection_event", north_record)
	result == {
		"allow": true,
		"reason": "release to police-north for investigation under profile plates_in_clear",
		"redactions": face_geometry,
		"media": [{"op": "blur", "classes": ["face"]}],
	}
}

test_transit_gets_hashed_plates_faces_and_plates_blurred if {
	result := release_for(transit, "traffic", "detection_event", record)
	result.allow == true
	hashed := [{"path": "/detections/*/attributes/plate_text", "op": "hash", "params": {}}]
	result.redactions == array.concat(hashed, face_geometry)
	result.media == [{"op": "blur", "classes": ["face", "plate"]}]
}

test_analytics_gets_neither_plates_nor_tracks_nor_exact_time if {
	result := release_for(analytics, "statistics", "detection_event", record)
	result.allow == true
	anonymised := [
		{"path": "/detections/*/attributes/plate_text", "op": "remove", "params": {}},
		{"path": "/detections/*/track_id", "op": "remove", "params": {}},
		{"path": "/captured_at", "op": "generalize", "params": {"time_seconds": 3600}},
	]
	result.redactions == array.concat(anonymised, face_geometry)
	result.media == [{"op": "blur", "classes": ["person", "face", "plate"]}]
}

# Face landmarks follow the face

test_face_landmarks_cover_the_five_centerface_points if {
	count(face_geometry) == 10
	every part in ["left_eye", "right_eye", "nose", "mouth_left", "mouth_right"] {
		concat("", ["/detections/*/attributes/", part, "_x"]) in {r.path | some r in face_geometry}
		concat("", ["/detections/*/attributes/", part, "_y"]) in {r.path | some r in face_geometry}
	}
}

test_every_profile_that_blurs_faces_removes_face_landmarks if {
	results := [
		release_for(police, "investigation", "detection_event", north_record),
		release_for(transit, "traffic", "snapshot", record),
		release_for(analytics, "statistics", "detection_event", record),
	]
	# One comprehension, not nested `every` (rego-cpp 1.5.2 can abort on it).
	missing := [geometry |
		some result in results
		some geometry in face_geometry
		not geometry in result.redactions
	]
	missing == []
	every result in results {
		result.allow == true
		"face" in result.media[0].classes
	}
}

test_a_profile_showing_faces_in_clear_keeps_landmarks if {
	profiles := object.union(data.hub.config.release.profiles, {"plates_hashed": {"min_clearance": 0, "redactions": [], "blur": ["plate"]}})
	result := release_for(transit, "traffic", "detection_event", record) with data.hub.config.release.profiles as profiles
	result.allow == true
	result.redactions == []
}

test_identifying_geometry_of_another_class_follows_that_class if {
	geometry := {"face": [], "person": ["pose_nose_x"]}
	result := release_for(analytics, "statistics", "detection_event", record) with data.hub.config.release.identifying_geometry as geometry
	{"path": "/detections/*/attributes/pose_nose_x", "op": "remove", "params": {}} in result.redactions
	transit_result := release_for(transit, "traffic", "detection_event", record) with data.hub.config.release.identifying_geometry as geometry
	not {"path": "/detections/*/attributes/pose_nose_x", "op": "remove", "params": {}} in transit_result.redactions
}

test_snapshots_released_under_the_same_profile if {
	result := release_for(transit, "traffic", "snapshot", record)
	result.allow == true
	result.media == [{"op": "blur", "classes": ["face", "plate"]}]
}

test_police_may_receive_pii_attributes if {
	release_for(police, "investigation", "pii_attribute", north_record).allow == true
}

# Denials, in the order they are checked

test_unknown_recipient_denied if {
	stranger := object.union(police, {"id": "press-office"})
	refused(release_for(stranger, "investigation", "detection_event", north_record), "unknown recipient")
}

test_recipient_kind_must_match if {
	officer := object.union(police, {"kind": "user"})
	refused(release_for(officer, "investigation", "detection_event", north_record), "recipient police-north is not of kind user")
}

test_purpose_not_allowed_for_recipient if {
	refused(release_for(police, "traffic", "detection_event", north_record), "purpose traffic not allowed for police-north")
}

test_analytics_cannot_claim_investigation if {
	refused(release_for(analytics, "investigation", "detection_event", record), "purpose investigation not allowed for city-analytics")
}

test_data_class_not_allowed if {
	refused(release_for(transit, "traffic", "pii_attribute", record), "data class pii_attribute not allowed for transit-authority")
}

test_unknown_camera_without_jurisdiction_denied if {
	elsewhere := object.union(record, {"camera_id": "cam-unlisted"})
	refused(release_for(transit, "traffic", "detection_event", elsewhere), "record jurisdiction unknown")
}

test_record_outside_recipient_jurisdiction_denied if {
	refused(release_for(police, "investigation", "detection_event", record), "record jurisdiction central outside recipient jurisdictions")
}

test_record_jurisdiction_field_wins_over_camera_table if {
	moved := object.union(record, {"jurisdiction": "north"})
	release_for(police, "investigation", "detection_event", moved).allow == true
	refused(release_for(transit, "traffic", "detection_event", moved), "record jurisdiction north outside recipient jurisdictions")
}

test_registry_must_also_grant_the_jurisdiction if {
	# The policy grants police-north "north"; the registry no longer does.
	narrowed := object.union(police, {"jurisdictions": ["south"]})
	refused(release_for(narrowed, "investigation", "detection_event", north_record), "record jurisdiction north outside recipient jurisdictions")
}

test_registry_cannot_widen_jurisdictions if {
	widened := object.union(transit, {"jurisdictions": ["central", "north"]})
	refused(release_for(widened, "traffic", "detection_event", north_record), "record jurisdiction north outside recipient jurisdictions")
}

test_missing_registry_jurisdictions_deny if {
	unplaced := object.remove(transit, ["jurisdictions"])
	refused(release_for(unplaced, "traffic", "detection_event", record), "record jurisdiction central outside recipient jurisdictions")
}

test_lower_registry_clearance_applies if {
	downgraded := object.union(police, {"clearance": 2})
	refused(release_for(downgraded, "investigation", "detection_event", north_record), "clearance 2 below profile minimum 3")
}

test_missing_registry_clearance_counts_as_zero if {
	unknown := object.remove(analytics, ["clearance"])
	refused(release_for(unknown, "statistics", "detection_event", record), "clearance 0 below profile minimum 1")
}

test_higher_registry_clearance_is_capped_by_policy if {
	inflated := object.union(transit, {"clearance": 5})
	release.clearance == 2 with input.recipient as inflated
}

test_profile_missing_denied if {
	recipients := object.union(data.hub.config.release.recipients, {"transit-authority": object.union(data.hub.config.release.recipients["transit-authority"], {"profile": "gone"})})
	result := release_for(transit, "traffic", "detection_event", record) with data.hub.config.release.recipients as recipients
	refused(result, "redaction profile gone missing")
}

test_profile_without_blur_gives_no_media_obligation if {
	profiles := object.union(data.hub.config.release.profiles, {"plates_hashed": {"min_clearance": 0, "redactions": [], "blur": []}})
	result := release_for(transit, "traffic", "detection_event", record) with data.hub.config.release.profiles as profiles
	result.allow == true
	result.media == []
}

test_missing_record_denied if {
	# A local, not the rule: rego-cpp 1.5.2 gives undefined for `with ... as <rule>`.
	recipient := police
	result := release.decision with input.recipient as recipient
		with input.purpose as "investigation"
		with input.data_class as "detection_event"
	refused(result, "record jurisdiction unknown")
}

test_missing_recipient_denied if {
	result := release.decision with input.purpose as "investigation"
	refused(result, "unknown recipient")
}

# The demo data itself

test_three_agencies_with_different_jurisdictions_and_clearances if {
	recipients := data.hub.config.release.recipients
	count(recipients) >= 3
	count({r.clearance | some r in recipients}) >= 3
	count({j | some r in recipients; some j in r.jurisdictions}) >= 2
}

test_every_recipient_names_an_existing_profile if {
	every r in data.hub.config.release.recipients {
		data.hub.config.release.profiles[r.profile]
	}
}

test_every_redaction_uses_a_known_operator_and_pointer if {
	# One comprehension, not nested `every`: rego-cpp 1.5.2 can abort on nested `every`.
	specs := [spec | some prof in data.hub.config.release.profiles; some spec in prof.redactions]
	count(specs) > 0
	every spec in specs {
		spec.op in {"remove", "mask", "hash", "generalize"}
		startswith(spec.path, "/")
	}
}

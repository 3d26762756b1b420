package system.log_test

import rego.v1

import data.system.log

masked(entrypoint) := pointers if {
	pointers := log.mask with input.entrypoint as entrypoint
}

test_release_masks_attributes_tracks_and_media if {
	masked("hub/release/decision") == {
		"/input/record/detections/*/attributes",
		"/input/record/detections/*/track_id",
		"/input/record/media",
	}
}

test_release_mask_covers_plate_text if {
	plate := "/input/record/detections/*/attributes/plate_text"
	some pointer in masked("hub/release/decision")
	startswith(plate, concat("", [pointer, "/"]))
}

test_authz_input_is_logged_as_is if {
	masked("hub/authz/decision") == set()
}

test_ingest_input_is_logged_as_is if {
	# Ingest sees classes and scores, never attribute values.
	masked("hub/ingest/decision") == set()
}

test_retention_input_is_logged_as_is if {
	masked("hub/retention/decision") == set()
}

test_unknown_entrypoint_masks_whole_input if {
	masked("hub/new/decision") == {"/input"}
}

test_missing_entrypoint_masks_whole_input if {
	log.mask == {"/input"}
}

test_every_pointer_is_under_input if {
	pointers := [p | some listed in data.hub.config.log.mask; some p in listed]
	every p in pointers {
		startswith(p, "/input/")
	}
}

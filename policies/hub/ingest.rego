# What the hub does with each uploaded event: accept, drop or quarantine.
#
# Quarantined events are stored but never routed to agencies. Checks run in this order and
# the first that applies decides: node status, camera blocklist, camera quarantine, model,
# classes, confidence. The tunables live in data.hub.config.ingest.
#
# Entrypoint: hub/ingest/decision -> {"events": [{"action", "reason"}, ...]}, one verdict per
# input event, in input order.
#
# Written for rego-cpp's costs: the events of a batch share a few cameras and class lists,
# so what depends only on those is judged once per batch (the tables below) and each event
# costs a few lookups. An `else` chain per event would cost about twice as much (rego-cpp's
# else chains grow faster than linearly with their length).
package hub.ingest

import rego.v1

config := data.hub.config.ingest

node_status := object.get(object.get(input, "node", {}), "status", "missing")

accepted := {"action": "accept", "reason": "accepted"}

# Per event: the issues found, in check order, then the score's verdict; the first one wins.
# An event missing a field matches nothing and is dropped as not evaluable.
decision := {"events": [drop("node not active") | some _ in input.events]} if {
	node_status != "active"
} else := {"events": [verdict |
	some idx
	ev := input.events[idx]
	found := array.concat(
		array.concat(
			[issue | issue := camera_issues[ev.camera_id]],
			[issue | not known_models[ev.model_name]; issue := quarantine(concat("", ["unknown model ", ev.model_name]))],
		),
		array.concat(
			[issue | issue := class_issues[ev.classes]],
			[outcome | minimum := floors[ev.classes]; outcome := scored(ev.max_confidence, minimum)],
		),
	)
	verdict := array.concat(found, [drop("event not evaluable")])[0]
]}

# Per batch: each distinct camera, model and class list once.
batch_cameras := {ev.camera_id | some ev in input.events}

batch_classes := {ev.classes | some ev in input.events}

known_models := {ev.model_name | some ev in input.events; ev.model_name in config.models}

camera_issues := {cam: issue | some cam in batch_cameras; issue := camera_issue(cam)}

camera_issue(cam) := drop(concat("", ["camera blocked: ", note])) if {
	note := config.cameras.blocked[cam]
} else := quarantine(concat("", ["camera quarantined: ", note])) if {
	note := config.cameras.quarantined[cam]
}

class_issues := {labels: issue | some labels in batch_classes; issue := class_issue(labels)}

class_issue(labels) := drop("no classes") if {
	count(labels) == 0
} else := drop(concat("", ["classes not accepted: ", concat(", ", sort(unaccepted))])) if {
	unaccepted := {label | some label in labels; not config.classes[label]}
	count(unaccepted) > 0
}

floors := {labels: minimum | some labels in batch_classes; minimum := confidence_floor(labels)}

# The most lenient minimum among the event's classes: the event carries only its best score,
# so it is dropped only when no detection in it can reach its own class's minimum.
# (Not min(): rego-cpp's min() compares numbers as text, so min({9, 10}) is 10.)
confidence_floor(labels) := low if {
	minimums := {config.classes[label].min_confidence | some label in labels}
	some low in minimums
	every other in minimums { low <= other }
}

# Reasons are built with concat (see hub.authz: rego-cpp's sprintf quotes computed strings).
scored(score, minimum) := accepted if {
	score >= minimum
} else := drop(concat("", ["below confidence threshold: ", sprintf("%v", [score]), " < ", sprintf("%v", [minimum])])) if {
	score < minimum
}

drop(reason) := {"action": "drop", "reason": reason}

quarantine(reason) := {"action": "quarantine", "reason": reason}

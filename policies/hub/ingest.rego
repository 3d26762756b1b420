# What the hub does with the events of a batch, judged per group of events that share a
# camera, a model and a class list: accept (with the minimum confidence an event of the group
# needs), drop or quarantine. The hub applies the minimum to each event's best score.
#
# Quarantined events are stored but never routed to agencies. Checks run in this order and
# the first that applies decides: node status, camera blocklist, camera quarantine, model,
# classes. The tunables live in data.hub.config.ingest.
#
# Entrypoint: hub/ingest/decision -> {"groups": [{"action", "reason", "min_confidence"?}, ...]},
# one verdict per input group, in input order.
package hub.ingest

import rego.v1

config := data.hub.config.ingest

node_status := object.get(object.get(input, "node", {}), "status", "missing")

decision := {"groups": [drop("node not active") | some _ in input.groups]} if {
	node_status != "active"
} else := {"groups": [group_verdict(group) | some group in input.groups]}

group_verdict(group) := issue if {
	issue := camera_issue(group.camera_id)
} else := quarantine(concat("", ["unknown model ", group.model_name])) if {
	not group.model_name in config.models
} else := issue if {
	issue := class_issue(group.classes)
} else := {"action": "accept", "reason": "accepted", "min_confidence": confidence_floor(group.classes)} if {
	true
} else := drop("group not evaluable")

camera_issue(cam) := drop(concat("", ["camera blocked: ", note])) if {
	note := config.cameras.blocked[cam]
} else := quarantine(concat("", ["camera quarantined: ", note])) if {
	note := config.cameras.quarantined[cam]
}

class_issue(labels) := drop("no classes") if {
	count(labels) == 0
} else := drop(concat("", ["classes not accepted: ", concat(", ", sort(unaccepted))])) if {
	unaccepted := {label | some label in labels; not config.classes[label]}
	count(unaccepted) > 0
}

# The most lenient minimum among the group's classes: an event carries only its best score,
# so it is dropped only when no detection in it can reach its own class's minimum.
# (Not min(): rego-cpp's min() compares numbers as text, so min({9, 10}) is 10.)
confidence_floor(labels) := low if {
	minimums := {config.classes[label].min_confidence | some label in labels}
	some low in minimums
	every other in minimums { low <= other }
}

drop(reason) := {"action": "drop", "reason": reason}

quarantine(reason) := {"action": "quarantine", "reason": reason}

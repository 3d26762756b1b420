# Whether a record may be released to a recipient, and in what form.
#
# Recipients are listed in data.hub.config.release.recipients, keyed by id: the purposes and
# data classes they may receive, the jurisdictions and clearance the policy grants them and
# a redaction profile. The registry's view (input.recipient) and the policy's view must both
# grant a jurisdiction or a clearance for it to count: the narrower of the two applies.
#
# Entrypoint: hub/release/decision -> {"allow", "reason", "redactions", "media"}. Redaction
# paths are JSON pointers into the record where `*` stands for every array element; the hub
# applies them (hash is a keyed HMAC per recipient) and blurs image regions of the listed
# classes before anything leaves.
package hub.release

import rego.v1

config := data.hub.config.release

default decision := {
	"allow": false,
	"reason": "denied: request not understood",
	"redactions": [],
	"media": [],
}

decision := {"allow": false, "reason": failure, "redactions": [], "media": []}

decision := {
	"allow": true,
	"reason": grant_reason,
	"redactions": redactions,
	"media": media,
} if {
	not failure
	releasable
}

entry := config.recipients[input.recipient.id]

profile := config.profiles[entry.profile]

# Jurisdictions both the registry and the policy grant; the lower of the two clearances.
jurisdictions := {j | some j in object.get(input.recipient, "jurisdictions", []); j in entry.jurisdictions}

registry_clearance := object.get(input.recipient, "clearance", 0)

# (Not min(): rego-cpp's min() compares numbers as text, so min({9, 10}) is 10.)
clearance := registry_clearance if registry_clearance <= entry.clearance

clearance := entry.clearance if registry_clearance > entry.clearance

# The record's own jurisdiction wins; otherwise its camera's, from the camera table.
record_jurisdiction := input.record.jurisdiction

record_jurisdiction := config.camera_jurisdictions[input.record.camera_id] if {
	not input.record.jurisdiction
}

# Reasons use concat, not sprintf (see hub.authz).
failure := "unknown recipient" if {
	not entry
} else := concat(" ", ["recipient", input.recipient.id, "is not of kind", input.recipient.kind]) if {
	input.recipient.kind != entry.kind
} else := concat(" ", ["purpose", input.purpose, "not allowed for", input.recipient.id]) if {
	not input.purpose in entry.purposes
} else := concat(" ", ["data class", input.data_class, "not allowed for", input.recipient.id]) if {
	not input.data_class in entry.data_classes
} else := "record jurisdiction unknown" if {
	not record_jurisdiction
} else := concat(" ", ["record jurisdiction", record_jurisdiction, "outside recipient jurisdictions"]) if {
	not record_jurisdiction in jurisdictions
} else := concat(" ", ["redaction profile", entry.profile, "missing"]) if {
	not profile
} else := concat(" ", ["clearance", sprintf("%v", [clearance]), "below profile minimum", sprintf("%v", [profile.min_clearance])]) if {
	clearance < profile.min_clearance
}

releasable if {
	input.purpose in entry.purposes
	input.data_class in entry.data_classes
	record_jurisdiction in jurisdictions
	clearance >= profile.min_clearance
}

grant_reason := concat(" ", [
	"release to", input.recipient.id, "for", input.purpose,
	"under profile", entry.profile,
])

# Profiles may leave `params` out; the contract always carries it.
profile_redactions := [r |
	some spec in profile.redactions
	r := {"path": spec.path, "op": spec.op, "params": object.get(spec, "params", {})}
]

# Geometry that identifies a person (face landmarks: eyes, nose, mouth corners) follows the
# policy of its class: wherever a class is blurred, its identifying attributes are removed,
# so a blurred face never travels with the points that would let it be matched again.
# The attribute names per class are data (`release.identifying_geometry`).
geometry_redactions := [r |
	some blurred in profile.blur
	some name in object.get(object.get(config, "identifying_geometry", {}), blurred, [])
	r := {"path": concat("", ["/detections/*/attributes/", name]), "op": "remove", "params": {}}
]

redactions := array.concat(profile_redactions, geometry_redactions)

media := [{"op": "blur", "classes": profile.blur}] if {
	count(profile.blur) > 0
} else := []

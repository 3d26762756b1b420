# How long the hub keeps each kind of data.
#
# data.hub.config.retention.classes gives each data class a default number of days and
# per-jurisdiction overrides; `agencies` gives per-agency overrides, which win over both.
# A legal hold always wins: the data is kept until the hold is released. A data class the
# table does not know is never deleted on a guess: it is held, for a person to decide.
#
# Entrypoint: hub/retention/decision -> {"keep_days": int, "hold": bool, "reason": string}.
package hub.retention

import rego.v1

config := data.hub.config.retention

class_entry := config.classes[input.data_class]

legal_hold := object.get(input, "legal_hold", false) == true

# The jurisdiction asked about; when the input names none, the camera's (the sweep asks per
# camera, with `camera_id`), looked up in the release table of camera jurisdictions.
jurisdiction := j if {
	j := object.get(input, "jurisdiction", "")
	j != ""
} else := j if {
	j := data.hub.config.release.camera_jurisdictions[object.get(input, "camera_id", "")]
} else := ""

# The longest period in the table (audit entries): what an unknown class is kept for.
# (Not max(): rego-cpp's max() compares numbers as text, so max({9, 10}) is 9.)
longest := high if {
	some high in all_periods
	every other in all_periods { high >= other }
}

all_periods contains table.keep_days if some table in config.classes

all_periods contains days if {
	some table in config.classes
	some days in table.jurisdictions
}

all_periods contains days if {
	some overrides in config.agencies
	some days in overrides
}

default decision := {"keep_days": 0, "hold": true, "reason": "retention request not understood: held"}

decision := {
	"keep_days": longest,
	"hold": true,
	"reason": concat("", ["unknown data class ", input.data_class, ": held for review"]),
} if {
	not class_entry
} else := {
	"keep_days": period.days,
	"hold": true,
	"reason": concat("", ["legal hold: kept until released (otherwise ", period.source, ")"]),
} if {
	legal_hold
} else := {
	"keep_days": period.days,
	"hold": false,
	"reason": period.source,
}

period := {"days": days, "source": explain(days, concat(" ", ["agency", input.agency, "override"]))} if {
	days := config.agencies[input.agency][input.data_class]
} else := {"days": days, "source": explain(days, concat(" ", ["jurisdiction", jurisdiction, "override"]))} if {
	days := class_entry.jurisdictions[jurisdiction]
} else := {"days": class_entry.keep_days, "source": explain(class_entry.keep_days, concat(" ", [input.data_class, "default"]))}

# Reasons use concat, not sprintf (see hub.authz).
explain(days, scope) := concat("", [sprintf("%v", [days]), " days (", scope, ")"])

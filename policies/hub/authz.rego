# Who may call which route of the hub.
#
# RBAC: data.hub.config.authz.routes maps route templates to the methods and roles allowed on
# them. A template ending in "/**" covers everything below it; the most specific template
# governs a request (an exact template first, then the longest "/**" one). ABAC: a template
# with an `abac` block also requires a purpose it lists, a minimum clearance, a resource
# jurisdiction the subject holds and, when the request names an agency, the subject's own.
#
# Entrypoint: hub/authz/decision -> {"allow": bool, "reason": string}. Anything not allowed
# explicitly is denied, always with a reason.
package hub.authz

import rego.v1

routes := data.hub.config.authz.routes

default decision := {"allow": false, "reason": "denied: request not understood"}

# Allowed only when every check passes; otherwise the first failing check is the reason.
decision := {"allow": true, "reason": grant_reason} if {
	subject_status == "active"
	granted
} else := {"allow": false, "reason": failure}

# Litestar writes typed path parameters ("{sha256:str}"); the route table uses bare names.
request_route := regex.replace(input.request.route, `\{([A-Za-z_][A-Za-z0-9_]*):[^}]*\}`, "{$1}") if {
	contains(input.request.route, ":")
} else := input.request.route

request_method := upper(input.request.method)

subject_status := object.get(object.get(input, "subject", {}), "status", "missing")

# The governing template: the exact one, else the longest "/**" template covering the route
# (compared by length with `every`: rego-cpp's max() compares numbers as text).
template := request_route if {
	routes[request_route]
} else := pattern if {
	some pattern in covering
	every other in covering { count(pattern) >= count(other) }
}

# "/v1/admin/**" covers "/v1/admin" and everything below it.
covering contains pattern if {
	some pattern in object.keys(routes)
	endswith(pattern, "/**")
	startswith(concat("", [request_route, "/"]), trim_suffix(pattern, "**"))
}

matched := routes[template]

method_allowed if "*" in matched.methods

method_allowed if request_method in matched.methods

granted_roles := {role | some role in input.subject.roles; role in matched.roles}

kind_allowed if not matched.kinds

kind_allowed if input.subject.kind in matched.kinds

# The first check that fails names the reason; the order puts identity before the route.
# Reasons are built with concat: rego-cpp's sprintf quotes computed strings when given
# several arguments (and then emits invalid JSON), so sprintf only ever formats one number.
failure := "subject revoked" if {
	subject_status == "revoked"
} else := concat(" ", ["subject status", subject_status, "is not active"]) if {
	subject_status != "active"
} else := "no rule for route" if {
	not template
} else := concat(" ", ["method", request_method, "not allowed on", template]) if {
	not method_allowed
} else := concat(" ", ["no role of the subject may", request_method, template]) if {
	count(granted_roles) == 0
} else := concat(" ", ["subject kind", input.subject.kind, "not allowed on", template]) if {
	not kind_allowed
} else := abac_failure

granted if {
	method_allowed
	count(granted_roles) > 0
	kind_allowed
	not abac_failure
}

grant_reason := concat(" ", ["role", concat(",", sort(granted_roles)), "may", request_method, template])

abac_failure := abac_violation if matched.abac

abac_violation := "purpose required" if {
	not subject_purpose
} else := concat(" ", ["purpose", subject_purpose, "not allowed on", template]) if {
	not subject_purpose in matched.abac.purposes
} else := concat(" ", ["clearance", sprintf("%v", [subject_clearance]), "below required", sprintf("%v", [matched.abac.min_clearance])]) if {
	subject_clearance < matched.abac.min_clearance
} else := "subject has no agency" if {
	not subject_agency
} else := concat(" ", ["resource jurisdiction", jurisdiction, "outside subject jurisdictions"]) if {
	jurisdiction := input.request.resource.jurisdiction
	not jurisdiction in object.get(input.subject, "jurisdictions", [])
} else := "resource belongs to another agency" if {
	input.request.resource.agency != subject_agency
}

subject_purpose := input.subject.purpose if {
	is_string(input.subject.purpose)
	input.subject.purpose != ""
}

subject_agency := input.subject.agency if {
	is_string(input.subject.agency)
	input.subject.agency != ""
}

subject_clearance := object.get(input.subject, "clearance", 0)

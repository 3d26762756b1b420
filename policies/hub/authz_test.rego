package hub.authz_test

import rego.v1

import data.hub.authz

# Subjects and requests as the hub's guard builds them.

edge_node := {
	"id": "node-7",
	"kind": "edge_node",
	"roles": ["edge_node"],
	"jurisdictions": [],
	"clearance": 0,
	"status": "active",
}

police := {
	"id": "client-police-north",
	"kind": "client",
	"roles": ["agency"],
	"agency": "police-north",
	"jurisdictions": ["north"],
	"clearance": 3,
	"purpose": "investigation",
	"status": "active",
}

analytics := object.union(police, {
	"id": "client-city-analytics",
	"agency": "city-analytics",
	"jurisdictions": ["central"],
	"clearance": 1,
	"purpose": "statistics",
})

admin := {"id": "ada", "kind": "user", "roles": ["admin"], "status": "active"}

officer := {"id": "olga", "kind": "user", "roles": ["compliance_officer"], "status": "active"}

operator := {"id": "otto", "kind": "user", "roles": ["operator"], "status": "active"}

request(method, route) := {"method": method, "route": route, "path": route, "resource": {}}

feed_request(resource) := {
	"method": "GET",
	"route": "/v1/feeds/{agency:str}/events",
	"path": "/v1/feeds/police-north/events",
	"resource": resource,
}

media_request := {
	"method": "GET",
	"route": "/v1/feeds/{agency:str}/media/{sha256:str}",
	"path": "/v1/feeds/police-north/media/ab12",
	"resource": {"agency": "police-north"},
}

# Inputs are replaced key by key: rego-cpp 1.5.2 aborts on `with input as {...}` when the
# policy calls functions on the input.
ask(subject, req) := result if {
	result := authz.decision with input.subject as subject
		with input.request as req
		with input.time as "2026-11-22T10:00:00Z"
}

allowed(subject, req) if ask(subject, req).allow == true

denied(subject, req, reason) if {
	result := ask(subject, req)
	result.allow == false
	result.reason == reason
}

# Edge routes

test_edge_node_posts_events if {
	result := ask(edge_node, request("POST", "/v1/edge/events"))
	result == {"allow": true, "reason": "role edge_node may POST /v1/edge/events"}
}

test_edge_node_posts_media_with_typed_route_parameter if {
	allowed(edge_node, request("POST", "/v1/edge/media/{sha256:str}"))
}

test_edge_node_posts_media_with_bare_route_parameter if {
	allowed(edge_node, request("POST", "/v1/edge/media/{sha256}"))
}

test_method_is_case_insensitive if {
	allowed(edge_node, request("post", "/v1/edge/events"))
}

test_edge_node_cannot_get_events if {
	denied(edge_node, request("GET", "/v1/edge/events"), "method GET not allowed on /v1/edge/events")
}

test_revoked_node_denied if {
	revoked := object.union(edge_node, {"status": "revoked"})
	denied(revoked, request("POST", "/v1/edge/events"), "subject revoked")
}

test_revoked_admin_denied_even_on_admin_routes if {
	revoked := object.union(admin, {"status": "revoked"})
	denied(revoked, request("GET", "/v1/admin/policy/status"), "subject revoked")
}

test_unknown_status_denied if {
	odd := object.union(edge_node, {"status": "suspended"})
	denied(odd, request("POST", "/v1/edge/events"), "subject status suspended is not active")
}

test_missing_status_denied if {
	unsure := object.remove(edge_node, ["status"])
	denied(unsure, request("POST", "/v1/edge/events"), "subject status missing is not active")
}

test_user_holding_edge_role_denied_by_kind if {
	impostor := object.union(admin, {"roles": ["edge_node"]})
	denied(impostor, request("POST", "/v1/edge/events"), "subject kind user not allowed on /v1/edge/events")
}

test_missing_kind_falls_to_default_deny if {
	nameless := object.remove(edge_node, ["kind"])
	denied(nameless, request("POST", "/v1/edge/events"), "denied: request not understood")
}

# Route table

test_unknown_route_denied if {
	denied(admin, request("GET", "/v1/secrets"), "no rule for route")
}

test_route_prefix_without_wildcard_does_not_match_siblings if {
	denied(admin, request("GET", "/v1/administrators"), "no rule for route")
}

test_missing_request_denied if {
	result := authz.decision with input.subject as admin
	result == {"allow": false, "reason": "no rule for route"}
}

template_for(route) := found if {
	found := authz.template with input.request.route as route
}

test_templates_cover_their_subtree if {
	template_for("/metrics") == "/metrics"
	template_for("/v1/admin/nodes/{node_id}") == "/v1/admin/**"
	template_for("/v1/admin") == "/v1/admin/**"
	not template_for("/v1/adminx")
	not template_for("/metrics/extra")
}

test_typed_parameters_are_normalised if {
	template_for("/v1/feeds/{agency:str}/media/{sha256:str}") == "/v1/feeds/{agency}/media/{sha256}"
}

test_exact_template_wins_over_wildcard if {
	template_for("/v1/feeds/{agency}/media/{sha256}") == "/v1/feeds/{agency}/media/{sha256}"
	template_for("/v1/feeds/{agency}/events") == "/v1/feeds/**"
}

test_longest_wildcard_governs if {
	# Lengths 8 and 12: compared as text, "8" would beat "12".
	table := {
		"/abcd/**": {"methods": ["*"], "roles": ["admin"]},
		"/abcd/efg/**": {"methods": ["*"], "roles": ["operator"]},
	}
	inner := ask(operator, request("GET", "/abcd/efg/h")) with data.hub.config.authz.routes as table
	inner == {"allow": true, "reason": "role operator may GET /abcd/efg/**"}
	outer := ask(operator, request("GET", "/abcd/x")) with data.hub.config.authz.routes as table
	outer.allow == false
}

# Admin routes

test_admin_manages_bundles if {
	allowed(admin, request("POST", "/v1/admin/policy/bundles"))
}

test_admin_deletes_node if {
	allowed(admin, request("DELETE", "/v1/admin/nodes/{node_id:uuid}"))
}

test_agency_denied_admin if {
	denied(police, request("POST", "/v1/admin/policy/bundles"), "no role of the subject may POST /v1/admin/**")
}

test_operator_denied_admin if {
	denied(operator, request("GET", "/v1/admin/agencies"), "no role of the subject may GET /v1/admin/**")
}

# Feeds: roles plus ABAC

test_agency_reads_own_feed if {
	result := ask(police, feed_request({"agency": "police-north", "jurisdiction": "north"}))
	result == {"allow": true, "reason": "role agency may GET /v1/feeds/**"}
}

test_agency_without_resource_attributes_allowed if {
	allowed(analytics, feed_request({}))
}

test_admin_denied_feeds if {
	denied(admin, feed_request({}), "no role of the subject may GET /v1/feeds/**")
}

test_agency_without_purpose_denied if {
	aimless := object.remove(police, ["purpose"])
	denied(aimless, feed_request({}), "purpose required")
}

test_agency_with_null_purpose_denied if {
	aimless := object.union(police, {"purpose": null})
	denied(aimless, feed_request({}), "purpose required")
}

test_agency_with_empty_purpose_denied if {
	aimless := object.union(police, {"purpose": ""})
	denied(aimless, feed_request({}), "purpose required")
}

test_agency_with_wrong_purpose_denied if {
	curious := object.union(police, {"purpose": "marketing"})
	denied(curious, feed_request({}), "purpose marketing not allowed on /v1/feeds/**")
}

test_agency_with_low_clearance_denied if {
	junior := object.union(police, {"clearance": 0})
	denied(junior, feed_request({}), "clearance 0 below required 1")
}

test_agency_with_missing_clearance_denied if {
	junior := object.remove(police, ["clearance"])
	denied(junior, feed_request({}), "clearance 0 below required 1")
}

test_agency_subject_without_agency_denied if {
	orphan := object.remove(police, ["agency"])
	denied(orphan, feed_request({}), "subject has no agency")
}

test_agency_outside_jurisdiction_denied if {
	denied(police, feed_request({"jurisdiction": "central"}), "resource jurisdiction central outside subject jurisdictions")
}

test_agency_without_jurisdictions_denied_on_located_resource if {
	nowhere := object.remove(police, ["jurisdictions"])
	denied(nowhere, feed_request({"jurisdiction": "north"}), "resource jurisdiction north outside subject jurisdictions")
}

test_agency_reading_other_agency_feed_denied if {
	denied(police, feed_request({"agency": "transit-authority"}), "resource belongs to another agency")
}

test_media_feed_is_the_more_specific_entry if {
	result := ask(police, media_request)
	result == {"allow": true, "reason": "role agency may GET /v1/feeds/{agency}/media/{sha256}"}
}

test_media_feed_needs_clearance_two if {
	junior := object.union(police, {"clearance": 1})
	denied(junior, media_request, "clearance 1 below required 2")
}

test_media_feed_refuses_statistics if {
	stats := object.union(police, {"purpose": "statistics"})
	denied(stats, media_request, "purpose statistics not allowed on /v1/feeds/{agency}/media/{sha256}")
}

test_media_feed_refuses_post if {
	denied(police, object.union(media_request, {"method": "POST"}), "method POST not allowed on /v1/feeds/{agency}/media/{sha256}")
}

test_feeds_accept_soap_post if {
	allowed(police, object.union(feed_request({}), {"method": "POST"}))
}

# Audit, incidents, operations

test_officer_reads_audit if {
	allowed(officer, request("GET", "/v1/audit/entries"))
}

test_officer_cannot_write_audit if {
	denied(officer, request("DELETE", "/v1/audit/entries"), "method DELETE not allowed on /v1/audit/**")
}

test_admin_denied_audit if {
	denied(admin, request("GET", "/v1/audit/entries"), "no role of the subject may GET /v1/audit/**")
}

test_officer_places_legal_hold if {
	allowed(officer, request("POST", "/v1/incidents/{incident_id:uuid}/holds"))
}

test_operator_denied_incidents if {
	denied(operator, request("GET", "/v1/incidents"), "no role of the subject may GET /v1/incidents/**")
}

test_operator_uses_ops if {
	allowed(operator, request("POST", "/v1/ops/deliveries/{delivery_id}/replay"))
}

test_admin_uses_ops if {
	allowed(admin, request("GET", "/v1/ops/queues"))
}

test_agency_denied_ops if {
	denied(police, request("GET", "/v1/ops/queues"), "no role of the subject may GET /v1/ops/**")
}

test_operator_reads_metrics if {
	result := ask(operator, request("GET", "/metrics"))
	result == {"allow": true, "reason": "role operator may GET /metrics"}
}

test_several_granting_roles_are_all_named if {
	both := object.union(operator, {"roles": ["operator", "admin"]})
	result := ask(both, request("GET", "/metrics"))
	result.reason == "role admin,operator may GET /metrics"
}

test_edge_node_denied_metrics if {
	denied(edge_node, request("GET", "/metrics"), "no role of the subject may GET /metrics")
}

# The route table itself

test_every_route_entry_is_complete if {
	every template, entry in data.hub.config.authz.routes {
		startswith(template, "/")
		count(entry.methods) > 0
		count(entry.roles) > 0
	}
}

test_every_abac_entry_names_purposes_and_clearance if {
	every entry in data.hub.config.authz.routes {
		abac_complete(entry)
	}
}

abac_complete(entry) if not entry.abac

abac_complete(entry) if {
	count(entry.abac.purposes) > 0
	entry.abac.min_clearance >= 0
}

# Compliance console (issue 8)

test_officer_exports_audit if {
	allowed(officer, request("POST", "/v1/audit/export"))
}

test_officer_cannot_post_other_audit_routes if {
	denied(officer, request("POST", "/v1/audit/entries"), "method POST not allowed on /v1/audit/**")
}

test_operator_cannot_export_audit if {
	denied(operator, request("POST", "/v1/audit/export"), "no role of the subject may POST /v1/audit/export")
}

test_officer_reads_and_replays_decisions if {
	allowed(officer, request("GET", "/v1/decisions/{decision_id:str}"))
	allowed(officer, request("POST", "/v1/decisions/{decision_id:str}/replay"))
}

test_admin_replays_decisions if {
	allowed(admin, request("POST", "/v1/decisions/{decision_id:str}/replay"))
}

test_agency_denied_decisions if {
	denied(police, request("GET", "/v1/decisions"), "no role of the subject may GET /v1/decisions/**")
}

test_decisions_cannot_be_deleted if {
	denied(officer, request("DELETE", "/v1/decisions/{decision_id:str}"), "method DELETE not allowed on /v1/decisions/**")
}

test_officer_reads_ops_overview_only if {
	allowed(officer, request("GET", "/v1/ops/overview"))
	denied(officer, request("GET", "/v1/ops/deliveries/{delivery_id:uuid}/preview"), "no role of the subject may GET /v1/ops/**")
}

test_operator_still_reads_ops_overview if {
	allowed(operator, request("GET", "/v1/ops/overview"))
}

test_officer_runs_incidents_root if {
	allowed(officer, request("POST", "/v1/incidents"))
	allowed(officer, request("POST", "/v1/incidents/evidence/verify"))
}

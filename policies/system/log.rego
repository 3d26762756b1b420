# What the hub masks in its decision log, so the log explains decisions without holding PII.
#
# The input is {"entrypoint": ...} only (the hub caches the answer per entrypoint and bundle);
# `mask` is a set of JSON pointers into the logged event {"entrypoint", "input", "result"}
# (`*` stands for every array element). The pointers per entrypoint live in
# data.hub.config.log.mask. An entrypoint the table does not list has its whole input masked:
# what the policy cannot vouch for is not written down.
#
# Entrypoint: system/log/mask -> ["/input/...", ...].
package system.log

import rego.v1

pointers := data.hub.config.log.mask

mask contains pointer if {
	some pointer in pointers[input.entrypoint]
}

mask contains "/input" if {
	not pointers[input.entrypoint]
}

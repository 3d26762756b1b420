"""The one error of bundle management: a `BundleError` with a stable code per cause.

Codes (the problem `type` is `/problems/<code>`):

| code | status | cause |
| --- | --- | --- |
| `bundle_malformed` | 400 | not a gzip'd tar; a broken data file or `.signatures.json` |
| `bundle_manifest_invalid` | 400 | no `.manifest`, or one without a usable `revision` |
| `bundle_path_unsafe` | 400 | an entry named outside the bundle, a link, a device, a duplicate |
| `bundle_too_large` | 400 | archive, file, file count or unpacked total over its limit |
| `bundle_unsigned` | 400 | no `.signatures.json` while signatures are required |
| `bundle_signature_invalid` | 400 | the JWT or a file hash does not verify |
| `bundle_invalid` | 422 | the bundle is intact but will not load (compiler error, no policy) |
| `bundle_tests_failed` | 422 | a `test_*` rule failed; `failed_tests` lists them |
| `bundle_not_found` | 404 | no bundle with that revision |
| `bundle_revision_exists` | 409 | another bundle already holds that revision |
| `bundle_not_activatable` | 409 | rejected, or not an earlier active one (rollback) |
"""

from hub.kit.errors import HubError

_STATUS = {
    "bundle_invalid": 422,
    "bundle_tests_failed": 422,
    "bundle_not_found": 404,
    "bundle_revision_exists": 409,
    "bundle_not_activatable": 409,
}
_TITLES = {
    400: "Policy bundle refused",
    404: "Policy bundle not found",
    409: "Policy bundle conflict",
    422: "Policy bundle rejected",
}


class BundleError(HubError):
    """A bundle was refused or cannot be found; the active bundle is never affected."""

    status = 400
    code = "bundle_malformed"
    title = "Policy bundle refused"

    def __init__(self, detail: str, *, code: str, extra: dict[str, object] | None = None) -> None:
        super().__init__(detail, code=code, extra=extra)
        self.status = _STATUS.get(code, 400)
        self.title = _TITLES[self.status]


class SigningKeysError(HubError):
    """The configured verify-keys file cannot be read: an operator must fix it."""

    status = 500
    code = "policy_keys_unreadable"
    title = "Policy signing keys unreadable"

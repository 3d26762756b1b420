"""Policy bundles for admins: upload, verify, test, activate and roll back OPA bundles.

It owns `policy_bundles` and the activation notices on Redis. It never changes the active
bundle on upload; only `activate_bundle` and `rollback` do, in one transaction, and every
process follows PostgreSQL (through `BundleWatcher`), never the notice alone.
"""

from hub.policy.bundles.archive import (
    ArchiveLimits,
    BundleArchive,
    BundleFiles,
    BundleManifest,
    build_archive,
    read_archive,
    read_bundle_dir,
    write_archive,
)
from hub.policy.bundles.config import signing_required, upload_rules
from hub.policy.bundles.errors import BundleError
from hub.policy.bundles.notices import (
    activation_channel,
    read_process_revisions,
    report_process_revision,
)
from hub.policy.bundles.schemas import (
    BundleRead,
    PolicyStatus,
    ProcessRevision,
    RegoTestSummary,
    RollbackRequest,
    UploadResult,
)
from hub.policy.bundles.service import (
    Actor,
    UploadRules,
    activate_bundle,
    active_revision,
    bundle_status,
    list_bundles,
    load_active,
    rollback,
    upload_bundle,
)
from hub.policy.bundles.signing import SignatureCheck, sign_bundle, verify_bundle
from hub.policy.bundles.watcher import BundleWatcher, build_watcher

__all__ = [
    "Actor",
    "ArchiveLimits",
    "BundleArchive",
    "BundleError",
    "BundleFiles",
    "BundleManifest",
    "BundleRead",
    "BundleWatcher",
    "PolicyStatus",
    "ProcessRevision",
    "RegoTestSummary",
    "RollbackRequest",
    "SignatureCheck",
    "UploadResult",
    "UploadRules",
    "activate_bundle",
    "activation_channel",
    "active_revision",
    "build_archive",
    "build_watcher",
    "bundle_status",
    "list_bundles",
    "load_active",
    "read_archive",
    "read_bundle_dir",
    "read_process_revisions",
    "report_process_revision",
    "rollback",
    "sign_bundle",
    "signing_required",
    "upload_bundle",
    "upload_rules",
    "verify_bundle",
    "write_archive",
]

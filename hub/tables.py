"""Every Piccolo table of the hub, bound to the process's engine at start-up."""

from piccolo.table import Table

from hub.audit.tables import AuditLog
from hub.delivery.tables import Agency, Delivery, DeliveryAttempt
from hub.feeds.tables import FeedAck, FeedAudience, FeedEntry, FeedOffer, FeedPending
from hub.identity.tables import ConsoleUser, EdgeNode, JwtSigningKey, OAuthClient, RefreshToken
from hub.ingest.tables import DetectionEvent, MediaObject
from hub.policy.tables import PolicyBundle, PolicyDecision

ALL_TABLES: tuple[type[Table], ...] = (
    EdgeNode,
    Agency,
    DetectionEvent,
    MediaObject,
    Delivery,
    DeliveryAttempt,
    AuditLog,
    PolicyDecision,
    PolicyBundle,
    OAuthClient,
    ConsoleUser,
    RefreshToken,
    JwtSigningKey,
    FeedPending,
    FeedEntry,
    FeedAck,
    FeedAudience,
    FeedOffer,
)

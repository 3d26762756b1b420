"""Agency feeds: pull (REST, SOAP), live (WebSocket) and media, for registered agencies.

It owns `feed_pending`, `feed_entry` (the commit-ordered feed positions) and `feed_ack`.
Nothing leaves through a feed without passing `release()` for the reader's own agency; a
denied item is left out, and every access is audited with ids and decision ids, never
payloads.
"""

from hub.feeds.kit import FeedKit, FeedPublisher

__all__ = ["FeedKit", "FeedPublisher"]

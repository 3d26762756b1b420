"""Edge ingest: authenticate signed uploads and store each detection event exactly once.

It owns `detection_event` (and its monthly partitions) and `media_object`. It never stores
anything from a request whose signature, digest, freshness or nonce failed.
"""

"""Deliveries to agencies: the agency registry and the delivery ledger (outbox).

It owns `agency` and `delivery`. Routing, adapters and the worker arrive with the delivery
issue; the ledger's shape is fixed now so ingest can write outbox rows in its transaction.
"""

"""Incidents and legal holds.

Holds (`legal_hold`) protect events from the retention sweep, whatever policy says, until a
second officer confirms the release another officer asked for (four-eyes).
"""

"""The hub: policy-driven integration hub for edge-to-cloud video AI."""

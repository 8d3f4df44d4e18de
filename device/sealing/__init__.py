"""Capture-time sealing and its verifier (used by the dock, archive and courts).

The formats are specified in docs/format.md.
"""

"""The recorder the officer wears: capture, sealing, controls and health."""

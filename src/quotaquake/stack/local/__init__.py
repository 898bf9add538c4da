"""The ``local`` provider: the embedded stack as real processes on loopback (no Docker needed)."""

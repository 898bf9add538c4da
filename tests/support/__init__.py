"""Test-only helpers: a simulated limiter that writes synthetic run folders, a direct-response Envoy."""

"""What verification reads: the run folder loaded once (``RunData``) and arrays derived from it."""

"""Quota models the checks replay a history against: token bucket, fixed window, Kong 3.9."""

"""The ``docker`` provider: Kong 3.9 and its dependencies as containers, through Testcontainers."""

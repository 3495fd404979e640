"""tidings: real-time per-user notifications over GraphQL."""

__version__ = "0.1.0"

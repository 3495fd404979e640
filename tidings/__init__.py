"""tidings: real-time per-user notifications over GraphQL."""

from importlib.metadata import version

__version__ = version("tidings")  # pyproject.toml's, the one place it is stated

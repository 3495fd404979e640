"""The project's own bench: `make bench` (bench/README.md)."""

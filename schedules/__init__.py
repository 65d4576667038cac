"""Yuan schedules package (see docs/design.md)."""

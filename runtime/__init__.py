"""Yuan runtime package (see docs/design.md)."""

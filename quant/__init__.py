"""Yuan quant package (see docs/design.md)."""

"""Errors of the build step (passes, lowering and IR errors live next to their code)."""


class BuildError(RuntimeError):
    """Compiling or exporting the model failed."""

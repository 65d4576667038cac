"""Op implementations: `Function` subclasses plus the functional wrappers that
validate arguments and call them. `frontend.functional` re-exports the public ones."""

# The op modules need Tensor and tensor.py needs them: load tensor.py first so
# the cycle always resolves the same way, whichever module is imported first.
from .. import tensor as _tensor  # noqa: E402,F401

"""`python -m yuan ...` is the `yuan` command."""
from .cli import main

main()

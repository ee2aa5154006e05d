"""`python -m ganbatch.cli ...`: the `ganbatch` command."""
from ganbatch.cli import main

main()

"""``python -m deploy build:1.2.4,1.3.6-Resurface``: the same as our ``fab`` entry point."""
from deploy.cli import main

main()

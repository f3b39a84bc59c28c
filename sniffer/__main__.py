"""`python -m sniffer` runs the command-line interface."""
import sys

from sniffer.cli import main

sys.exit(main())

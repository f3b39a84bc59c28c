"""The one exception the release tasks raise on purpose.

Strategy: anything the maintainer can fix (credentials, config, a failed build) becomes a
``ReleaseError`` whose message says what went wrong and what to do; the ``build`` task turns
it into ``invoke.Exit`` so ``fab`` prints the message without a traceback. Other exceptions
are bugs and keep their traceback. Cleanup runs in either case.
"""
from __future__ import annotations


class ReleaseError(Exception):
    """A release failure with a message meant for the maintainer."""

"""Reporter output format (dry-run marker, numbering, indentation)."""
from __future__ import annotations

import io

from deploy.report import Reporter


def test_steps_are_numbered_and_commands_name_their_host():
    out = Reporter(dry_run=True, stream=io.StringIO())
    out.step("pack")
    out.command("amd64", "uname -m")
    out.step("build")
    out.note("done")
    assert out.stream.getvalue().splitlines() == [
        "==> [dry-run] 1. pack", "    [amd64]$ uname -m", "==> [dry-run] 2. build", "    done"]

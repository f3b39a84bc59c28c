"""fabric tasks that release the multi-arch image (``fab build:TAG,VERSION``).

``ns`` is the collection fabric loads (via the root ``fabfile.py`` or ``fab -c deploy``); its
defaults come from ``deploy/fabric.yaml`` and can be overridden by ``FABRIC_DEPLOY_*``
environment variables or ``fab -f file.yaml``. This package imports neither ``sniffer`` nor
``workers``: it is a separate tool with the ``[deploy]`` extra's dependencies.
"""
from __future__ import annotations

from pathlib import Path

import yaml
from invoke import Collection

from deploy import tasks

DEFAULTS_FILE = Path(__file__).with_name("fabric.yaml")

ns = Collection(tasks.build)
ns.configure(yaml.safe_load(DEFAULTS_FILE.read_text()))

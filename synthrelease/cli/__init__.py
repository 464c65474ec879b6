"""The ``synthrelease`` command line: a thin click layer over :mod:`synthrelease.api`.

:mod:`.app` holds the group, the shared options and the error handling; each command group
lives in its own module and registers itself on import: :mod:`.release` (release, demo),
:mod:`.model` (train, sample), :mod:`.report` (audit-privacy, report), :mod:`.bundle`
(verify, keys), :mod:`.ledger`, :mod:`.metadata` (metadata, policy).
"""

from synthrelease.cli import bundle, ledger, metadata, model, release, report  # noqa: F401  (registration)
from synthrelease.cli.app import cli, main

__all__ = ["cli", "main"]

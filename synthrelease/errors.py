"""The one error hierarchy of synthrelease.

Every error a user can cause derives from :class:`SynthreleaseError` and carries the
exit code the CLI returns for it::

    SynthreleaseError (exit 2: bad input or usage)
    ├── InputFileError          a file is missing, unreadable or malformed
    ├── MetadataError           the metadata file is invalid or unreviewed
    ├── DataValidationError     the private table does not match its metadata
    ├── PolicyError             the policy file is invalid
    ├── PrivacyParameterError   ε, δ or a training setting is impossible
    ├── BudgetExceededError     the ledger would overspend a lifetime cap
    ├── ModelFileError          a saved model is missing, corrupt or unsafe
    ├── BundleError             a release bundle cannot be written or read
    ├── VerificationError       (exit 1) a bundle fails verification
    └── GateRefused             (exit 1) the release gate rejected the release
    InternalError (exit 70)     a bug in synthrelease, never the user's fault

Messages name the file, column or clause and never contain private values.
"""

from __future__ import annotations

from typing import Any

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 70


class SynthreleaseError(Exception):
    """Base class of every error synthrelease raises on purpose."""

    exit_code: int = EXIT_BAD_INPUT


class InputFileError(SynthreleaseError):
    """A user file is missing, unreadable or malformed."""


class MetadataError(SynthreleaseError):
    """The metadata file is invalid, or not marked as reviewed."""


class DataValidationError(SynthreleaseError):
    """The private table does not match its declared metadata.

    Attributes:
        problems: one line per failed check (column, check, count of rows); no values.
    """

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems or [])


class PolicyError(SynthreleaseError):
    """The policy file is invalid."""


class PrivacyParameterError(SynthreleaseError):
    """ε, δ or a training setting is impossible (ε ≤ 0, δ ≥ 1/n, ...)."""


class BudgetExceededError(SynthreleaseError):
    """Spending the requested ε would exceed a lifetime cap in the ledger."""


class ModelFileError(SynthreleaseError):
    """A saved model is missing, corrupt, or would need unsafe deserialisation."""


class BundleError(SynthreleaseError):
    """A release bundle cannot be written or read."""


class VerificationError(SynthreleaseError):
    """A bundle failed verification: bad signature, hash mismatch, extra or missing file."""

    exit_code = EXIT_REJECTED


class GateRefused(SynthreleaseError):
    """The release gate rejected the release; no shareable data was written.

    Attributes:
        failed_clauses: one line per failed clause with threshold and measured value.
        decision: the :class:`~synthrelease.gate.verdict.GateDecision` (clause objects with
            ``name``, ``threshold``, ``measured``, ``passed``, ``hint``), when the gate ran.
        report_path: the internal report written for the refusal (INTERNAL), if any.
    """

    exit_code = EXIT_REJECTED

    def __init__(self, message: str, failed_clauses: list[str] | None = None, *, decision: Any = None,
                 report_path: Any = None) -> None:
        super().__init__(message)
        self.failed_clauses = list(failed_clauses or [])
        self.decision = decision  # the GateDecision: every clause with threshold, measured, passed, hint
        self.report_path = report_path  # the internal report (INTERNAL), when one was written


class InternalError(Exception):
    """A bug in synthrelease. This is never the user's fault; please report it."""

    exit_code = EXIT_INTERNAL

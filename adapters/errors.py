"""Errors raised by training, evaluation, merging and export."""

from __future__ import annotations

from typing import Any

from loradock.registry.errors import ConflictError, GateError


class AdaptersError(Exception):
    """Base class for loradock's model-side errors."""


class BaseModelError(AdaptersError, FileNotFoundError):
    """The base model cannot be found or does not match an adapter."""


class DataError(AdaptersError, ValueError):
    """Training or evaluation data that cannot be used; nothing was trained."""


class TrainingInterrupted(AdaptersError):
    """Training stopped (Ctrl-C); nothing was registered."""


class ParityError(AdaptersError, GateError):
    """A merged or exported model disagrees with the adapter beyond tolerance."""


class AccuracyGateRefused(ParityError):
    """An export lost accuracy beyond noise and beyond its limit (registry/gate_stats.py); `gate` holds the verdict."""

    def __init__(self, message: str, gate: dict[str, Any]) -> None:
        super().__init__(message)
        self.gate = gate


class QualityGateFailed(AdaptersError, GateError):
    """A trained version did not pass its quality gate; it is registered, marked failed, and no alias moved."""


class ExportError(AdaptersError):
    """An export that cannot be made; nothing was written."""


class TrainingOptionsError(AdaptersError, ValueError):
    """A training option out of range or in conflict with another; nothing was trained."""


class NoCheckpointError(AdaptersError, FileNotFoundError):
    """`--resume` asked for, but no interrupted run with these settings left a checkpoint."""


class HubError(AdaptersError):
    """A push to or pull from a Hugging Face Hub endpoint failed; the local registry is unchanged."""


class HubRepoNotFoundError(HubError, LookupError):
    """The Hub repo does not exist, or the token in use cannot see it."""


class HubRevisionNotFoundError(HubError, LookupError):
    """The repo exists but has no such tag, branch or commit."""


class HubFileNotFoundError(HubError, FileNotFoundError):
    """A file the adapter needs is missing from the Hub repo at that revision."""


class HubIntegrityError(HubError):
    """Downloaded bytes do not match the hashes the pushed metadata records."""


class HubConflictError(HubError, ConflictError):
    """The Hub repo already holds something else under the name we would write."""


class HubNetworkError(HubError, ConnectionError):
    """The endpoint could not be reached or dropped the connection, even after retries."""


class HubAuthError(HubError, PermissionError):
    """The endpoint refused the credentials (or their absence) for this operation."""


class HubRecordError(HubError, ValueError):
    """A Hub repo's loradock.json or files are malformed, unsafe or too large; nothing was registered."""


class HubLocalBaseError(HubError, ValueError):
    """A version to push names its base by a local path, which a pull elsewhere could not use; nothing was pushed."""


class PredictInputError(AdaptersError, ValueError):
    """Texts to predict that cannot be read (no texts, a missing CSV column, not UTF-8); nothing was predicted."""


class NoExportError(ExportError, LookupError):
    """An ONNX export was asked for (`predict --backend onnx`) but the version has none."""


class WrongTaskError(AdaptersError, ValueError):
    """A version of one task asked to do another's work (a generation adapter loaded as a classifier)."""


class AdapterWeightsError(AdaptersError, ValueError):
    """A version's files that cannot be read as LoRA pairs and a head (an unserved PEFT feature, a stray tensor)."""

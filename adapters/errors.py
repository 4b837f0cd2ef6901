"""Errors raised by training, evaluation, merging and export."""

from __future__ import annotations


class AdaptersError(Exception):
    """Base class for loradock's model-side errors."""


class BaseModelError(AdaptersError, FileNotFoundError):
    """The base model cannot be found or does not match an adapter."""


class DataError(AdaptersError, ValueError):
    """Training or evaluation data that cannot be used; nothing was trained."""


class TrainingInterrupted(AdaptersError):
    """Training stopped (Ctrl-C); nothing was registered."""


class ParityError(AdaptersError):
    """A merged or exported model disagrees with the adapter beyond tolerance."""


class ExportError(AdaptersError):
    """An export that cannot be made; nothing was written."""

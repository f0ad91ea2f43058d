"""One exception hierarchy for the whole project.

Errors are raised where they are detected and converted at the edge: the CLI prints one line and exits
non-zero, the language server answers with a JSON-RPC error or an empty result.
"""


class InfillError(Exception):
    """Base of every error the project raises on purpose; its message is one line meant for a user."""


class Cancelled(InfillError):
    """The caller's should_stop callback fired between denoising steps."""


class ContextTooLong(InfillError):
    """Nothing useful fits the model's window (e.g. the requested span alone is larger than it)."""


class ModelLoadError(InfillError):
    """A model directory is missing, incomplete, unsupported or unsafe to load."""


class DeviceError(InfillError):
    """The requested device (e.g. cuda) is not available."""


class UnsupportedLanguage(InfillError):
    """No grammar and no fallback for the file's language."""


class MarkerError(InfillError):
    """Fill markers in a file are malformed (e.g. an infill:begin without infill:end)."""


class InputError(InfillError):
    """User input is unusable: missing file, directory, binary or non-UTF-8 file, empty input, bad JSONL."""


class TrainingError(InfillError):
    """The training pipeline cannot proceed (not a git repo, no supported files, bad config...)."""

"""One error family for every stage: messages name the stage, the file, the store, the record and the field."""

from __future__ import annotations


class EtlError(Exception):
    """Base of every error the toolkit raises on purpose; the CLI prints it without a traceback."""

    stage = "etl"

    def __init__(self, message: str, *, file=None, store=None, record=None, field=None):
        self.file, self.store, self.record, self.field = file, store, record, field
        where = ", ".join(
            f"{k} {v}" for k, v in (("file", file), ("store", store), ("record", record), ("field", field)) if v is not None
        )
        super().__init__(f"{message} ({where})" if where else message)

    def __str__(self) -> str:
        return f"[{self.stage}] {super().__str__()}"


class ConfigError(EtlError):
    stage = "config"


class ServerError(EtlError):
    stage = "db"


class SchemaError(EtlError):
    stage = "schema"


class ExportError(EtlError):
    stage = "export"


class TransformError(EtlError):
    stage = "transform"


class LoadError(EtlError):
    stage = "load"


class ParityError(EtlError):
    stage = "parity"


class ValidationError(EtlError):
    stage = "validate"


class ApiError(EtlError):
    """etl serve, etl monitor, etl bench and the load through the API."""

    stage = "api"


class FlagError(EtlError):
    stage = "flags"


class CutoverError(EtlError):
    stage = "cutover"


class PlaybookError(EtlError):
    """A step of `etl migrate` found the run cannot go on (a missing prerequisite, a refused move, a breach)."""

    stage = "migrate"


class Interrupted(KeyboardInterrupt):
    """A termination signal (SIGTERM) turned into an interruption, so that what a stage was
    writing is cleaned up as after Ctrl-C. `signum` gives the exit status 128 + signum."""

    def __init__(self, signum: int):
        super().__init__(f"signal {signum}")
        self.signum = signum


# The signal that asked this process to stop, once one did. The handler raises Interrupted where
# the main thread is, but Python ignores an exception raised inside a destructor or a weakref
# callback ("Exception ignored in ..."), so a stop can be swallowed: long work checks here at its
# boundaries (each playbook step, the end of a command) and stops all the same.
_stop_signal: int | None = None


def request_stop(signum: int, frame=None) -> None:
    """Record the stop and raise Interrupted where the main thread is, except inside an import: an
    exception raised while a C extension initializes aborts the interpreter (nanobind does), so
    there the stop waits for the next boundary (raise_if_stopped)."""
    global _stop_signal
    _stop_signal = signum
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return
        frame = frame.f_back
    raise Interrupted(signum)


def stop_requested() -> int | None:
    return _stop_signal


def raise_if_stopped() -> None:
    if _stop_signal is not None:
        raise Interrupted(_stop_signal)

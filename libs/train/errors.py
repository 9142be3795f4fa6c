"""Train's errors: a run that failed for good, and resources a run can never get.

``TrainingFailedError`` is Ray Train's name. Its message reads top to bottom: what the worker
raised and where in the user's code, which worker, then how many attempts were made and how to
resume from the last checkpoint.
"""
from __future__ import annotations

from juno.air.failure import describe_failure
from juno.air.validation import ResourcesUnavailableError

__all__ = ["ResourcesUnavailableError", "TrainingFailedError"]


class TrainingFailedError(RuntimeError):
    """The run failed more often than ``FailureConfig(max_failures=...)`` allows.

    ``cause`` (also ``__cause__``) is the error ``juno.get`` raised for the failing worker's call,
    so ``isinstance(err.cause, ZeroDivisionError)`` holds when the loop divided by zero.
    """

    def __init__(self, cause: BaseException, *, rank: int | None = None, num_failures: int = 1,
                 max_failures: int = 0, checkpoint_path: str | None = None, run_path: str | None = None,
                 pid: int | None = None, node: str | None = None, trainer: str = "TorchTrainer") -> None:
        self.cause = cause
        self.rank = rank
        self.num_failures = num_failures
        self.max_failures = max_failures
        self.checkpoint_path = checkpoint_path
        self.run_path = run_path
        self.pid = pid
        self.node = node
        self.trainer = trainer
        self.__cause__ = cause
        super().__init__(self._message())

    def _message(self) -> str:
        text = describe_failure(self.cause, rank=self.rank, pid=self.pid, node=self.node)
        attempts = f"{self.num_failures} attempt{'s' if self.num_failures != 1 else ''}"
        checkpoint = self.checkpoint_path or "none (the run reported no checkpoint)"
        resume = (f"; restore with {self.trainer}.restore({self.run_path!r})" if self.run_path else "")
        return (f"{text}\nTraining failed after {attempts} (FailureConfig(max_failures={self.max_failures})). "
                f"The last checkpoint is {checkpoint}{resume}.")

    def __reduce__(self):
        # Keyword-only arguments: rebuild through a function, so the error crosses processes (Tune).
        fields = {k: getattr(self, k) for k in ("rank", "num_failures", "max_failures", "checkpoint_path",
                                                "run_path", "pid", "node", "trainer")}
        return _rebuild, (self.cause, fields)


def _rebuild(cause: BaseException, fields: dict) -> TrainingFailedError:
    return TrainingFailedError(cause, **fields)

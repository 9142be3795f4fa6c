"""``TorchCheckpoint``: Ray 2.x's torch checkpoint (``from_model``/``from_state_dict``/``get_model``),
which many tutorials still use. It is an ordinary Checkpoint with one file, ``model.pt``."""
from __future__ import annotations

import os
import tempfile
from typing import Any

from juno.air.checkpoint import Checkpoint

MODEL_FILE = "model.pt"


class TorchCheckpoint(Checkpoint):
    """A checkpoint holding a torch module or its ``state_dict`` in ``model.pt``."""

    @classmethod
    def from_state_dict(cls, state_dict: dict, *, preprocessor: Any = None) -> "TorchCheckpoint":
        return cls._saved(state_dict)

    @classmethod
    def from_model(cls, model: Any, *, preprocessor: Any = None) -> "TorchCheckpoint":
        """The whole module (unwrapped from DistributedDataParallel) is pickled with torch.save."""
        return cls._saved(getattr(model, "module", model))

    @classmethod
    def _saved(cls, value: Any) -> "TorchCheckpoint":
        import torch

        directory = tempfile.mkdtemp(prefix="juno_torch_checkpoint_")
        torch.save(value, os.path.join(directory, MODEL_FILE))
        return cls(directory)

    def get_model(self, model: Any = None) -> Any:
        """The saved module; for a saved ``state_dict``, ``model`` with the weights loaded into it."""
        import torch

        with self.as_directory() as directory:
            path = os.path.join(directory, MODEL_FILE)
            if not os.path.exists(path):
                raise ValueError(f"{self!r} has no {MODEL_FILE}: it was not made by TorchCheckpoint.from_model or "
                                 "from_state_dict; read its files with checkpoint.as_directory().")
            saved = torch.load(path, map_location="cpu", weights_only=False)
        if isinstance(saved, dict):
            if model is None:
                raise ValueError("This TorchCheckpoint holds a state_dict: pass the module to load it into, "
                                 "checkpoint.get_model(MyModel()).")
            getattr(model, "module", model).load_state_dict(saved)
            return model
        return saved

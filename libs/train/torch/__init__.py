"""``juno.train.torch``: Ray Train's torch layer: ``TorchTrainer`` and the helpers a training loop calls."""
from juno.train.torch.config import TorchConfig
from juno.train.torch.torch_checkpoint import TorchCheckpoint
from juno.train.torch.torch_trainer import TorchTrainer
from juno.train.torch.train_loop_utils import (accelerate, backward, enable_reproducibility, get_device, get_devices,
                                               prepare_data_loader, prepare_model, prepare_optimizer)

__all__ = ["TorchCheckpoint", "TorchConfig", "TorchTrainer", "accelerate", "backward", "enable_reproducibility", "get_device",
           "get_devices", "prepare_data_loader", "prepare_model", "prepare_optimizer"]

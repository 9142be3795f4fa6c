"""juno.train.torch: Ray's ``ray.train.torch`` names (the lead adds TorchTrainer when merging)."""
from juno.train.torch.config import TorchConfig
from juno.train.torch.train_loop_utils import (accelerate, backward, enable_reproducibility, get_device, get_devices,
                                               prepare_data_loader, prepare_model, prepare_optimizer)

__all__ = ["TorchConfig", "accelerate", "backward", "enable_reproducibility", "get_device", "get_devices",
           "prepare_data_loader", "prepare_model", "prepare_optimizer"]

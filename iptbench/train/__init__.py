"""Training IPT: multi-task pre-training and single-task fine-tuning (`iptbench train`).

from iptbench.train import TrainConfig, train
result = train(TrainConfig(data=("pairs.h5",), out="runs/tiny", model="ipt-tiny", steps=100))
"""

from iptbench.train.loop import StartInfo, TrainResult, clip_per_tensor, train
from iptbench.train.losses import l1_loss, supcon_loss, supcon_loss_reference
from iptbench.train.state import StepRecord, TrainConfig, epoch_lr, load_checkpoint

__all__ = [
    "StartInfo",
    "StepRecord",
    "TrainConfig",
    "TrainResult",
    "clip_per_tensor",
    "epoch_lr",
    "l1_loss",
    "load_checkpoint",
    "supcon_loss",
    "supcon_loss_reference",
    "train",
]

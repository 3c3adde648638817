"""Training IPT: multi-task pre-training and single-task fine-tuning (`iptbench train`).
May import models, pairs, benchmarks, evaluation (validation), degradations, devices, images, io, tasks.

from iptbench.train import TrainConfig, train
result = train(TrainConfig(data=("pairs.h5",), out="runs/tiny", model="ipt-tiny", steps=100))
"""

from iptbench.train.loop import ProgressInfo, StartInfo, TrainResult, train
from iptbench.train.losses import l1_loss, supcon_loss, supcon_loss_reference
from iptbench.train.state import StepRecord, TrainConfig, epoch_lr, load_checkpoint, step_lr
from iptbench.train.step import clip_per_tensor

__all__ = [
    "ProgressInfo",
    "StartInfo",
    "StepRecord",
    "TrainConfig",
    "TrainResult",
    "clip_per_tensor",
    "epoch_lr",
    "l1_loss",
    "load_checkpoint",
    "supcon_loss",
    "step_lr",
    "supcon_loss_reference",
    "train",
]

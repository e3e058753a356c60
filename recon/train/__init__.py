"""The optimisation: one `Trainer` that every stage fitting the splat drives."""

from recon.train.config import DensifyConfig, OptimizeConfig, RegularizeConfig
from recon.train.trainer import Target, Trainer, TrainLog

__all__ = ["DensifyConfig", "OptimizeConfig", "RegularizeConfig", "Target", "Trainer", "TrainLog"]

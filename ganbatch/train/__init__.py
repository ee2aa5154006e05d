"""GANimation and GANnotation training on Ray Train: data sets, losses, steps, the worker loop, export.

Runner protocol (`ganbatch.runner`): `run_train(job) -> TrainResult` and `plan_train(job) -> str`.
"""
from ganbatch.train.data import DataError, TrainingData, find_training_data
from ganbatch.train.checkpoints import latest_checkpoint
from ganbatch.train.run import TrainResult, plan_train, run_train, run_uri

__all__ = ["DataError", "TrainResult", "TrainingData", "find_training_data",
           "latest_checkpoint", "plan_train", "run_train", "run_uri"]

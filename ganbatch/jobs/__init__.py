"""The one job schema: CLI flags and YAML manifests both fill these models."""
from typing import Annotated, Union

from pydantic import Field, TypeAdapter

from ganbatch.jobs.animate import AnimateJob, TargetSpec
from ganbatch.jobs.aus import AusJob
from ganbatch.jobs.eval import EvalJob
from ganbatch.jobs.export import ExportJob
from ganbatch.jobs.chain import PipelineJob
from ganbatch.jobs.synth import SynthJob
from ganbatch.jobs.train import TrainJob

Job = Annotated[Union[AnimateJob, TrainJob, SynthJob, EvalJob, ExportJob, AusJob, PipelineJob], Field(discriminator="kind")]
JOB_ADAPTER = TypeAdapter(Job)

__all__ = ["AnimateJob", "AusJob", "TrainJob", "SynthJob", "EvalJob", "ExportJob", "PipelineJob", "TargetSpec", "Job", "JOB_ADAPTER"]

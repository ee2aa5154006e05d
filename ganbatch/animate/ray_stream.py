"""The animate stages (ganbatch.animate.stages) as a Ray Data stream: work items -> prepare (CPU tasks) -> generate
(actor pool, one model per actor) -> encode (CPU tasks) -> manifest rows.

Faults. Ray retries the stages' tasks (Ray Data's defaults: `max_retries=-1` for tasks; `max_restarts=-1` and
`max_task_retries=-1` for the actor pool), so a killed worker process or a lost node costs a retry, not an item
(the stages are idempotent).

Fusion. Ray Data fuses a map into the actor pool that follows it when their remote arguments match; the generator
asks for its `memory` (and its own CPU share and GPUs), which the CPU stages do not, so decoding never runs in the
generator's process. The execution plan (logged by Ray Data, and in `Dataset.stats()`) shows `Map(prepare)`,
`MapBatches(Generate)` and `Map(encode)` as separate operators.
"""
import ray
from ray.data import ActorPoolStrategy, DataContext, Dataset

from ganbatch.animate.plan import WorkItem
from ganbatch.animate.resources import StagePlan
from ganbatch.animate.generate import Generate
from ganbatch.animate.stages import RunSpec, encode, item_row, prepare
from ganbatch.logs import quiet_ray_data

GENERATOR_MEMORY = 512 * 1024**2  # bytes Ray reserves per generator actor: a full-size model and a batch in flight


def configure_data_context() -> None:
    """Ray Data settings for animate runs: the driver draws its own progress bar, so Ray Data's are off, and its
    console says only what the verbosity asks for (its handlers were made when it was imported)."""
    quiet_ray_data()
    context = DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False


def build_dataset(items: list[WorkItem], spec: RunSpec, plan: StagePlan) -> Dataset:
    """The run's stream (see the module doc): one block per item, so items spread over the CPU stages."""
    configure_data_context()
    return (
        ray.data.from_items([item_row(item) for item in items], override_num_blocks=len(items))
        .map(prepare, fn_kwargs={"spec": spec}, num_cpus=plan.task_cpus)
        .map_batches(Generate, fn_constructor_kwargs={"spec": spec.generator, "threads": plan.threads,
                                                      "actors_per_node": plan.actors_per_node},
                     batch_size=plan.clips_per_call, batch_format="numpy", zero_copy_batch=False,
                     compute=ActorPoolStrategy(size=plan.workers), num_cpus=plan.generator_cpus,
                     num_gpus=plan.generator_gpus or None, memory=GENERATOR_MEMORY)
        .map(encode, fn_kwargs={"spec": spec}, num_cpus=plan.task_cpus)
    )

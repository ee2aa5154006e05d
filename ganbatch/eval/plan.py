"""`ganbatch eval --dry-run`: what an evaluation would do, from the model's header and one timed generator call.

The model's family and size come from its header (`runtimes.model_info`, no weights read for ganbatch's own files); the
pair and frame counts follow the benchmark's rules (`benchmark`: the presets and `random_pairs` per identity, plus
one `path_frames` clip); the time is the generator's alone, measured on one batch of `chunk_size` frames (the AU
regressor and the metrics add to it).
"""
from ganbatch.eval.benchmark import PRESET_TARGETS
from ganbatch.families import get_family
from ganbatch.runtimes.timing import generator_seconds_per_frame
from ganbatch.progress import format_duration
from ganbatch.runtimes.source import model_info


def describe_evaluation(model_uri: str, *, identities: int, random_pairs: int, path_frames: int,
                        chunk_size: int = 16, runtime: str = "torch", device: str = "cpu",
                        trust_pickle: bool = False) -> str:
    """The dry-run text of `ganbatch eval` (see the module doc)."""
    info = model_info(model_uri, trust_pickle=trust_pickle)
    family = get_family(info.family)
    size = info.image_size or family.default_image_size
    pairs = identities * (len(PRESET_TARGETS) + random_pairs)
    frames = pairs + identities * path_frames
    per_frame = generator_seconds_per_frame(model_uri, chunk_size=chunk_size, runtime=runtime, device=device,
                                            trust_pickle=trust_pickle)
    return "\n".join([
        f"model {model_uri}: {info.describe()} (read from its {'header' if info.read == 'header' else 'file'})",
        f"{identities} held-out identities x ({len(PRESET_TARGETS)} presets + {random_pairs} random pairs) = {pairs} "
        f"pairs, animated with their {family.target_words}, plus {identities} smoothness clips of {path_frames} frames",
        f"{frames} generated frames at {size} px on {runtime} ({device})",
        f"estimate: generator {format_duration(frames * per_frame)} ({1000 * per_frame:.1f} ms per frame measured "
        f"on a batch of {chunk_size}); the AU regressor and metrics add to it",
    ])

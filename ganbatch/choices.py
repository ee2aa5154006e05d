"""The value lists that the job schema offers and the code accepts, each written once: the schema builds its
`Literal`s from them (so --help and YAML validation show these lists), and the modules that act on a value check it
against the same tuple. Plain tuples, no imports, so that the schema (and --help) loads nothing heavy to get them.
The runtime names are the engine registry's (`ganbatch.runtimes.registry.RUNTIMES`: one line per engine there).
"""

# animate: what a video is written as (io.video) and how its frames are laid out (layout)
VIDEO_FORMATS = ("mp4", "webm", "gif", "png")
OUTPUT_LAYOUTS = ("single", "side-by-side", "with-mask")
# the easing of a target path's segments (targets.schedule)
EASINGS = ("linear", "ease-in-out", "cubic", "hold")
# the face detectors (faces.detect; auto: the best one installed)
DETECTORS = ("auto", "face-alignment", "dlib", "lbp")

# the precisions a torch generator renders at (render; other runtimes may also offer int8)
PRECISIONS = ("fp32", "fp16", "bf16")

# ganbatch export: the formats a generator is written in (export) and their precisions (pt: fp32 only)
EXPORT_FORMATS = ("pt", "onnx", "openvino")
EXPORT_PRECISIONS = ("fp32", "fp16", "int8")

# ganbatch synth: the data-set layouts written (synth.dataset)
DATASET_LAYOUTS = ("ganimation", "openface", "landmarks")

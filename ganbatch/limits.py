"""Bounds on what one job may ask for, shared by the job schema (refused when validated) and the layers below it
(refused when built from files the schema cannot see, e.g. keyframe files and target CSVs)."""

MAX_FRAMES = 18_000  # frames per video (10 minutes at 30 fps)
MAX_DURATION = 600.0  # seconds per video
MAX_INTENSITY = 2.0  # scale of an expression preset (`happy:0.8`, keyframe intensity)

MAX_YAML_BYTES = 256 * 1024  # job files, keyframe files, --set values
MAX_YAML_NODES = 50_000  # YAML values (scalars, lists, mappings) after alias expansion
MAX_YAML_DEPTH = 64  # nesting of YAML lists and mappings

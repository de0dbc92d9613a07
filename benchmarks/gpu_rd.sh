#!/usr/bin/env bash
# Issue 3's RD benchmark on a GPU machine, as one prepared call of about 8-9 minutes (H200, session 10: 479 s with CLIPS=foreman,carphone SWEEP_SECONDS=300).
#
# First, here: bash benchmarks/gpu_prepare.sh   (wheels in .whl/, clips in bench-in/)
# Then the device tool: carry [".whl", "bench-in"], timeout_s 580, command
#   bash benchmarks/gpu_rd.sh "$OUT"
#
# 1. Preflight (seconds): the clips are there, the packages import, CUDA is seen.
# 2. Smoke (about two minutes): pytest's CUDA test (a CUDA-trained file decoded by a process that
#    sees no GPU), then a real clip trained on CUDA with each kind of prediction, decoded on the
#    CPU and compared bit for bit with the encoder's reconstruction; then seconds per iteration
#    and per frame at 352x288 (30 frames) and 1920x1080 (1 and 4 frames), from CUDA graphs (EAGER=1: eager too),
#    with motion (8x8 blocks), and 1, 4, 16 models trained together (benchmarks/gpu_together.py).
# 3. The sweep: Foreman QCIF 30 frames, Carphone QCIF 30, Mobile CIF 25, N06 48 (CLIPS); four lambdas
#    each; preset `full`, with TOGETHER=1 one process per clip training its four lambdas together
#    (their kernels overlap on the GPU; separate processes only take turns), else one per point,
#    JOBS processes at a time, each capped so that the sweep ends within SWEEP_SECONDS; the anchors
#    are encoded on the CPU meanwhile.
# Results: OUT/smoke.txt, OUT/speed.txt, OUT/rd/<clip>.json, OUT/rd/summary.md (RD points, BD-rates, MAC/pixel);
# the encoded files stay in WORK (default /tmp/codec_lab_gpu_rd).
# Knobs: SWEEP_SECONDS=300 CLIPS=foreman,carphone,mobile,n06 EAGER=0 (1: also time eager training) TOGETHER_SPEED=1 (0: skip the table of models trained together) JOBS=16 TOGETHER=1 PRESET=full PREDICTION=motion INTRA_PERIOD=8 KEY_PREDICTION=1 INTRA_FIRST=1 PYTEST=1 DEVICE=cuda (DEVICE=cpu: a dry run).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-${OUT:-bench-out/gpu}}"
SWEEP_SECONDS="${SWEEP_SECONDS:-300}"
JOBS="${JOBS:-16}"
PRESET="${PRESET:-full}"
PREDICTION="${PREDICTION:-motion}"
INTRA_PERIOD="${INTRA_PERIOD:-8}"  # with motion: an intra frame every 8 (one 48-frame chain trained badly on the CPU)
KEY_PREDICTION="${KEY_PREDICTION:-1}"  # 1: only frame 0 intra, each key frame predicted from the key frame before (format 6)
INTRA_FIRST="${INTRA_FIRST:-1}"  # 1: the intra frame(s) trained first, alone, 4x the iterations, then frozen (docs/codec.md, sessions 8-9)
DEVICE="${DEVICE:-cuda}"
CLIPS="${CLIPS:-foreman,carphone,mobile,n06}"  # fewer clips: each gets more of the GPU
TOGETHER="${TOGETHER:-1}"  # 1: one process per clip trains its 4 lambdas together (their kernels overlap); 0: a process per point
# seconds outside training: process start, CUDA init, motion search, finalizing, decoding (H200, a process per point: 46-58 s;
# together, a process finishes and decodes its 4 points one after the other: an estimate)
if [ "$TOGETHER" = 1 ]; then OVERHEAD=120; else OVERHEAD=60; fi
export CODEC_LAB_TESTDATA="${CODEC_LAB_TESTDATA:-$PWD/bench-in}"
export PYTHONUNBUFFERED=1
WORK="${WORK:-/tmp/codec_lab_gpu_rd}"  # encoded files stay here: the device tool brings back only a few files from OUT
mkdir -p "$OUT/rd" "$WORK"

if [ -d .whl ]; then  # the GPU image: its python3 has torch; the rest comes as wheels
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
  PY="${PY:-python3}"
else
  PY="${PY:-.venv/bin/python}"
fi

# 1. preflight: fail in seconds, not after minutes of device time
[ "$JOBS" -ge 1 ] || { echo "JOBS must be at least 1"; exit 2; }
NCLIPS=$(echo "$CLIPS" | tr ',' '\n' | grep -c .)
if [ "$TOGETHER" = 1 ]; then UNITS=$NCLIPS; else UNITS=$(( NCLIPS * 4 )); fi  # processes to run: clips, or points
WAVES=$(( (UNITS + JOBS - 1) / JOBS ))
CAP=$(( SWEEP_SECONDS / WAVES - OVERHEAD ))
[ "$CAP" -ge 10 ] || { echo "SWEEP_SECONDS=$SWEEP_SECONDS leaves ${CAP}s of training a point: raise it or JOBS"; exit 2; }
for f in S03_foreman_qcif_30f.y4m S04_mobile_cif_25f.y4m N06_src01_160x90_48f.y4m carphone_pristine.mp4; do
  [ -f "$CODEC_LAB_TESTDATA/$f" ] || { echo "missing $CODEC_LAB_TESTDATA/$f: run benchmarks/gpu_prepare.sh here and carry bench-in"; exit 2; }
done
"$PY" - "$DEVICE" <<'PY' | tee "$OUT/smoke.txt"
import sys, torch, av, constriction, thop, pytorch_msssim, bjontegaard, pydantic  # noqa: F401
import codec_lab.codec.encoder, codec_lab.codec.decoder, codec_lab.report.rd, codec_lab.baselines  # noqa: F401
print("torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else "")
assert sys.argv[1] == "cpu" or torch.cuda.is_available(), "no CUDA device"
PY

# 2. smoke: a failure is reported and kept in the exit status, but the sweep still runs (it is what the call is for)
status=0
if [ "$DEVICE" = cuda ] && [ "${PYTEST:-1}" = 1 ]; then  # PYTEST=0: skip it (when it just passed in an earlier call)
  "$PY" -m pytest tests/test_codec_roundtrip.py -q -p no:warnings -p no:cacheprovider -k cuda 2>&1 | tail -30 | tee -a "$OUT/smoke.txt" || { status=$?; echo "SMOKE: the CUDA tests failed"; }
fi
"$PY" - "$CODEC_LAB_TESTDATA/S03_foreman_qcif_30f.y4m" "$WORK" "$DEVICE" <<'PY' | tee -a "$OUT/smoke.txt" || { status=$?; echo "SMOKE: the CUDA exactness checks failed"; }
import sys, numpy as np
from dataclasses import replace
from codec_lab.video import read_clip
from codec_lab.codec.encoder import encode_clip
from codec_lab.codec.decoder import decode_file
from codec_lab.codec.presets import PRESETS, with_prediction
clip, out, device = read_clip(sys.argv[1], frames=8), sys.argv[2], sys.argv[3]
# key prediction with an intra period of 4: key frame 4 predicted from frame 0 (the gathered wave in
# training), with frame 0 trained first and frozen (intra_first)
for prediction, keyed in (("intra", False), ("previous", False), ("motion", False), ("motion", True)):
    preset = replace(with_prediction(replace(PRESETS["fast"], iterations=200), prediction, 4 if keyed else None, keyed), intra_first=keyed)
    prediction += " + key prediction + intra first" if keyed else ""
    name = prediction.replace(" + key prediction + intra first", "_key")
    res = encode_clip(clip, f"{out}/foreman_{name}.clv", lmbda=6e-4, preset=preset, device=device)
    again = encode_clip(clip, f"{out}/foreman_{name}_again.clv", lmbda=6e-4, preset=preset, device=device)
    cpu = decode_file(res.path).clip
    exact = all(np.array_equal(getattr(cpu, p), getattr(res.reconstruction, p)) for p in "yuv")
    same = res.path.read_bytes() == again.path.read_bytes()
    s_it = res.train_seconds / max(1, res.iterations)
    print(f"{prediction}: {device}-trained file decoded on the CPU equals the encoder's reconstruction: {exact}; "
          f"same file twice: {same}; CUDA graphs {res.cuda_graphs}; {s_it * 1000:.1f} ms/iteration ({s_it / 8 * 1000:.2f} ms/iteration/frame, Foreman QCIF 8 frames)")
    assert exact
# RD points trained together (their own streams, graphs and cuBLAS workspaces) give the files trained alone,
# with the presets' defaults: key prediction and intra first (whose first stage also trains together)
from codec_lab.codec.encoder import encode_clip_points
preset = with_prediction(replace(PRESETS["fast"], iterations=150), "motion", 4)
assert preset.config.key_prediction and preset.intra_first
lmbdas = (2e-4, 2e-3, 2e-2)
together = encode_clip_points(clip, [(f"{out}/together_{lm:g}.clv", lm) for lm in lmbdas], preset=preset, device=device)
alone = [encode_clip(clip, f"{out}/alone_{lm:g}.clv", lmbda=lm, preset=preset, device=device) for lm in lmbdas]
same = [t.path.read_bytes() == a.path.read_bytes() for t, a in zip(together, alone)]
print(f"trained together: the files trained alone: {same}; {together[0].train_seconds:.1f} s together, "
      f"{sum(a.train_seconds for a in alone):.1f} s alone ({together[0].iterations} iterations each)")
PY

# 2b. training speed alone at 352x288 and 1920x1080 (random frames: speed does not depend on content),
#     from CUDA graphs (the default on CUDA; EAGER=1: eagerly too); 2c. several models trained together in one
#     process: does the total grow with their number?
if [ "$DEVICE" = cuda ]; then
  if [ "${EAGER:-0}" = 1 ]; then
    "$PY" benchmarks/gpu_together.py --sizes 352x288x30,1920x1080x1,1920x1080x4 --counts 1 --eager | tee -a "$OUT/speed.txt" || status=$?
  fi
  "$PY" benchmarks/gpu_together.py --sizes 352x288x30,1920x1080x1,1920x1080x4 --counts 1 | tee -a "$OUT/speed.txt" || status=$?
  if [ "${TOGETHER_SPEED:-1}" = 1 ]; then  # TOGETHER_SPEED=0: skip it (about a minute; measured in sessions 6 and 10)
    "$PY" benchmarks/gpu_together.py --sizes 176x144x30,352x288x30 --counts 1,4,16 | tee -a "$OUT/speed.txt" || status=$?
  fi
else
  "$PY" benchmarks/gpu_together.py --device cpu --sizes 352x288x2 --counts 1 | tee -a "$OUT/speed.txt" || status=$?
fi

# 3. the sweep: 4 trainings a clip in WAVES waves, each capped at its share of the time
echo "sweep: $JOBS jobs (together: $TOGETHER), $WAVES wave(s), training capped at ${CAP}s a point, preset $PRESET, prediction $PREDICTION, intra period $INTRA_PERIOD, key prediction $KEY_PREDICTION, intra first $INTRA_FIRST" | tee -a "$OUT/smoke.txt"
if [ "$TOGETHER" = 1 ]; then NEURAL_RD_ARGS="--together ${NEURAL_RD_ARGS:-}"; fi
# both are the presets' defaults since session 9: 0 turns them off (never passed with intra)
if [ "$PREDICTION" != intra ]; then
  if [ "$KEY_PREDICTION" = 1 ]; then NEURAL_RD_ARGS="--key-prediction ${NEURAL_RD_ARGS:-}"; else NEURAL_RD_ARGS="--no-key-prediction ${NEURAL_RD_ARGS:-}"; fi
  if [ "$INTRA_FIRST" = 1 ]; then NEURAL_RD_ARGS="--intra-first ${NEURAL_RD_ARGS:-}"; else NEURAL_RD_ARGS="--no-intra-first ${NEURAL_RD_ARGS:-}"; fi
fi
# copy the results as they come: a call stopped at its limit still brings back the clips that finished
( while sleep 10; do cp "$WORK"/rd/*.json "$WORK"/rd/summary.md "$OUT/rd/" 2>/dev/null; done ) &
COPIER=$!
"$PY" benchmarks/neural_rd.py --device "$DEVICE" --preset "$PRESET" --max-seconds "$CAP" --jobs "$JOBS" --threads 1 \
  --prediction "$PREDICTION" --intra-period "$INTRA_PERIOD" --clips "$CLIPS" --out "$WORK/rd" ${NEURAL_RD_ARGS:-} || status=$?  # a failed point leaves the others' results to copy
kill "$COPIER" 2>/dev/null || true
cp "$WORK"/rd/*.json "$WORK/rd/summary.md" "$OUT/rd/" || true
echo "done (status $status): results in $OUT"
exit "$status"

#!/usr/bin/env bash
# GPU smoke test for semantic_latent (issue 3), prepared for a session that is lent a GPU.
#   bash benchmarks/gpu_smoke.sh [OUTDIR]      (about 5 minutes on an H100)
# 1. CUDA training smoke test + cross-device check: encode on CUDA, decode in a process that
#    sees no GPU, compare with the encoder's reconstruction bit for bit (pytest + a real clip).
# 2. Seconds per iteration and per frame at 352x288 and 1920x1080 (fp32/TF32 and bf16 autocast).
set -euo pipefail
OUT="${1:-${OUT:-bench-out/gpu}}"
mkdir -p "$OUT"
[ -f .venv/bin/activate ] && . .venv/bin/activate
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA'; print(torch.__version__, torch.cuda.get_device_name())" | tee -a "$OUT/gpu.txt"

# 1a. the pytest check (skipped on CPU-only machines)
python -m pytest tests/test_codec_roundtrip.py -q -p no:warnings -k cuda 2>&1 | tee "$OUT/pytest_cuda.txt"

# 1b. a real clip: train on CUDA, decode on CPU only, compare
CLIP=../shared/testdata/y4m/S03_foreman_qcif_30f.y4m
python -m codec_lab.cli encode "$CLIP" --frames 8 -o "$OUT/foreman_cuda.clv" --device cuda --preset fast --lmbda 6e-4 --quiet | tee "$OUT/encode_cuda.txt"
CUDA_VISIBLE_DEVICES="" python -m codec_lab.cli decode "$OUT/foreman_cuda.clv" -o "$OUT/foreman_cpu_decode.y4m" | tee "$OUT/decode_cpu.txt"
python - "$CLIP" "$OUT" <<'PY'
import sys, numpy as np, torch
from codec_lab.video import read_clip
from codec_lab.codec.encoder import encode_clip
from codec_lab.codec.decoder import decode_file
clip, out = read_clip(sys.argv[1], frames=8), sys.argv[2]
res = encode_clip(clip, f"{out}/foreman_cuda2.clv", lmbda=6e-4, preset="fast", device="cuda")
cpu = read_clip(f"{out}/foreman_cpu_decode.y4m")
same_file = open(f"{out}/foreman_cuda.clv", "rb").read() == open(f"{out}/foreman_cuda2.clv", "rb").read()
exact = all(np.array_equal(getattr(cpu, p), getattr(res.reconstruction, p)) for p in "yuv")
print(f"CUDA-trained file decoded on CPU equals encoder reconstruction: {exact}; same file twice on CUDA: {same_file}")
assert exact
PY

# 2. training speed
python - "$OUT" <<'PY' | tee "$OUT/speed.txt"
import json, sys, time, torch
from codec_lab.codec.encoder import LatentModel, _distortion
from codec_lab.codec.model import level_shapes
from codec_lab.codec.presets import PRESETS
cfg, dev, rows = PRESETS["fast"].config, torch.device("cuda"), []
torch.backends.cuda.matmul.allow_tf32 = True; torch.backends.cudnn.allow_tf32 = True
for (w, h, t) in [(352, 288, 8), (352, 288, 30), (1920, 1080, 1), (1920, 1080, 4)]:
    for amp in (False, True):
        torch.manual_seed(0)
        m = LatentModel(cfg, level_shapes(cfg, t, h, w)).to(dev)
        y, uv = torch.rand(t, h, w, device=dev), torch.rand(t, 2, h // 2, w // 2, device=dev)
        opt, frames = torch.optim.Adam(m.parameters(), 1e-2), list(range(t))
        def step():
            qs = m.quantized(True, 0.2, 1.0)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                yh, uvh = m.render(qs, frames)
            loss = _distortion(yh.float(), uvh.float(), y, uv) + 1e-3 * m.rate_bits(qs) / y.numel()
            opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
        for _ in range(5): step()
        torch.cuda.synchronize(); n = 30; start = time.perf_counter()
        for _ in range(n): step()
        torch.cuda.synchronize(); sec = (time.perf_counter() - start) / n
        rows.append({"size": f"{w}x{h}", "frames": t, "amp_bf16": amp, "s_per_iter": sec, "s_per_iter_per_frame": sec / t,
                     "peak_gib": torch.cuda.max_memory_allocated() / 2**30})
        print(json.dumps(rows[-1]), flush=True)
        del m, opt; torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()
json.dump(rows, open(f"{sys.argv[1]}/speed.json", "w"), indent=1)
PY
echo "done: results in $OUT"

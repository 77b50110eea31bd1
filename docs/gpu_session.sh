#!/usr/bin/env bash
# One call on a lent GPU (the session's device tool; ~15 min of device time in all), prepared so the minutes
# go to measuring and training. Not used by CI or the tests.
#
# Here, before the call (the GPU image has torch, accelerate, safetensors, tqdm, but not diffusers):
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform any -d .whl diffusers==0.42.1 importlib_metadata zipp
#   mkdir -p data && cp -r "${DDPM_DATA:-$HOME/.cache/ddpm/data}/emoji2" data/   # data/ is git-ignored
# The call (device run): command "bash docs/gpu_session.sh", carry [".whl", "data/emoji2"], timeout_s 600.
#
# 1. issue 22, item 7: the 16-image guided 20-step grid on the GPU, eager and compiled, half precision and CUDA
#    graphs, against the diffusers peer loop (target: under 30 ms).
# 2. emoji: the bundled emoji (v2, 39,000 steps on the CPU) trained on at batch 256 for what the budget leaves
#    (`--init-from emoji`: its weights start the run, a fresh warmup); its exported folder comes back as
#    $OUT/emoji2-final.tar (unpack, then measure it as ddpm/data/EMOJI_SOURCES.md says, and bundle it only if it
#    is better). The same command continues from the state in $OUT/emoji2-state.tar when that is unpacked under
#    runs/emoji2 and carried.
set -uo pipefail
OUT="${OUT:-/tmp/gpu-out}"
mkdir -p "$OUT"
python3 -m pip install -q --no-deps .whl/*.whl 2>&1 | tail -2
export DDPM_DATA="$PWD/data"
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
timeout 330 python3 -m ddpm bench --model mnist --repeats 10 --modes \
  float32,bfloat16,float16,compile-float16,aot-float16,aot-bfloat16,compile:reduce-overhead-float16,compile:reduce-overhead-bfloat16,diffusers-float16,default \
  2>&1 | grep -av "it/s" | tee "$OUT/bench.txt"
python3 -m ddpm train emoji2 --init-from emoji --batch-size 256 --steps 60000 --minutes "${TRAIN_MINUTES:-4}" --checkpoint-minutes 2 \
  --out-dir runs/emoji2 2>&1 | tr '\r' '\n' | grep -av "^$" | tail -5 | tee "$OUT/train.txt"
tar -cf "$OUT/emoji2-final.tar" -C runs/emoji2 final 2>/dev/null
tar -cf "$OUT/emoji2-state.tar" -C runs/emoji2 state samples 2>/dev/null
ls -la "$OUT"

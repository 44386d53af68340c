#!/usr/bin/env bash
# Issue #10's GPU measurements in one go (bf16 autocast): ours against the authors' code for UniFormer-S
# 16x224, UniFormerV2-B/16 8x224 and DualFormer-T 16x224 at batch 1 and 32 (inference and training step,
# speed and peak memory), and the model FLOPs utilisation of UniFormerV2-B/16 8x224 inference at large
# batches (eager and compiled). Results go to OUT as JSON plus a text summary.
#   benchmarks/stage_official.sh <UniFormer> <UniFormerV2> <dualformer>   # once, on a machine with the clones
#   benchmarks/gpu_suite.sh [.ref] [OUT] [models...]                       # on the GPU machine
# Each model takes a few minutes; pass a subset of models to stay under a per-command time limit.
set -uo pipefail
REF=${1:-.ref}; OUT=${2:-${OUT:-gpu_results}}; shift $(( $# < 2 ? $# : 2 ))
MODELS=${*:-uniformerv2_b16 uniformer_small dualformer_tiny}
mkdir -p "$OUT"
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
python -c "import torch; print(torch.__version__, torch.cuda.get_device_name())" > "$OUT/env.txt" 2>&1
declare -A REPO=([uniformer_small]=uniformer [uniformerv2_b16]=uniformerv2 [dualformer_tiny]=dualformer)
declare -A FRAMES=([uniformer_small]=16 [uniformerv2_b16]=8 [dualformer_tiny]=16)
for m in $MODELS; do
  for b in 1 32; do
    python benchmarks/compare_official.py "$m" --repo "$REF/${REPO[$m]}" --frames "${FRAMES[$m]}" --device cuda \
      --dtype bf16 --batch "$b" --iters 10 --warmup 3 --train --json-out "$OUT/${m}_bf16_b${b}.json" \
      2>&1 | tee -a "$OUT/summary.txt"
  done
  if [ "$m" = uniformerv2_b16 ]; then
    for b in 64 128; do
      videoformers bench uniformerv2_b16 --device cuda --dtype bf16 --batch "$b" --no-backward 2>&1 | tee -a "$OUT/summary.txt"
    done
    videoformers bench uniformerv2_b16 --device cuda --dtype bf16 --batch 128 --no-backward --compile 2>&1 \
      | tee -a "$OUT/summary.txt"
  fi
done
# Issue 19: GPU (NVDEC via torchcodec) vs CPU decoding of training clips; exits 0 with a note without torchcodec.
python benchmarks/gpu_decode.py --out "$OUT/gpu_decode.json" 2>&1 | tee -a "$OUT/summary.txt"

#!/usr/bin/env bash
# The GPU check of issue 16 item 5 as one prepared command for a lent device machine:
#
#     run(command="bash bench/gpu_check.sh", timeout_s=540)
#
# It uses that machine's own python3 (PyTorch with CUDA, numpy, safetensors, Pillow) and installs
# nothing: bench/gpu.py's encoder parts need no more. The indexing and query parts also need av,
# faiss and SQLAlchemy, which do not fit beside this repository in what a call may carry (the
# tracked tree is ~60 MiB of its 64), so they are left to a machine where lbsearch is installed.
# Writes to $OUT (or ./gpu-check): machine.txt, gpu.json, gpu.err.
set -u
out="${OUT:-gpu-check}"
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    nproc
    python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
} > "$out/machine.txt" 2>&1
cat "$out/machine.txt"
timeout "${GPU_CHECK_S:-480}" python3 bench/gpu.py --parts encoders,in-flight --items 256 \
    --batches 16 --work /tmp/lbsearch-gpu-check 2> "$out/gpu.err" | tee "$out/gpu.json"
status=${PIPESTATUS[0]}
tail -n 20 "$out/gpu.err"
exit "$status"

# Device call 1: keep the first half of CIFAR-10, install tomli-w, and measure whether MPS helps.
set -u
mkdir -p /tmp/webp && cp .dev/a/*.webp /tmp/webp/ && cp -r .dev/gpu /tmp/gpu
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site /tmp/gpu/whl/*.whl
export PYTHONPATH=/tmp/gpu/site:/tmp/gpu/src:/tmp/site
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; python3 -c "import torch; print(torch.__version__, torch.cuda.is_bf16_supported(), torch.backends.cudnn.allow_tf32)"
probe() { local t0=$(( $(date +%s) + 12 )); for i in $(seq "$1"); do python3 /tmp/gpu/probe.py "$t0" 6 > /tmp/p_$i 2>&1 & done; wait
  cat /tmp/p_* | awk -v n="$1" -v m="$2" '{s+=$1} END {printf "%s %d %.0f\n", m, n, s}' | tee -a /tmp/probe.txt; rm -f /tmp/p_*; }
probe 14 plain
if timeout 20 nvidia-cuda-mps-control -d && timeout 30 python3 -c "import torch; torch.ones(1).cuda().sum().item()"; then
  probe 14 mps; echo quit | timeout 20 nvidia-cuda-mps-control; sleep 2
else echo "mps unavailable"; fi
cat /tmp/probe.txt

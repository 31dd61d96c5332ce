# Device call 2: the rest of CIFAR-10, checked; then the study's remaining runs until the deadline.
set -u
kill_at=$(( $(date +%s) + ${SECONDS_FOR_RUNS:?} ))
export PYTHONPATH=/tmp/gpu/site:/tmp/gpu/src:/tmp/site PYTHONUNBUFFERED=1
cp .dev/b/* /tmp/webp/ && python3 /tmp/gpu/unpack.py /tmp/cifar/cifar-10-batches-py /tmp/webp
sum=$(python3 /tmp/gpu/checksum.py /tmp/cifar/cifar-10-batches-py); echo "pixels+labels sha256 $sum"
[ "$sum" = fd18b93bd15cbf8101362243553ef1c7de46bfdf746e7ee01936a3f94fac8d80 ] || { echo "data differs from the CPU's"; exit 1; }
export REGULAB_DATA=/tmp/cifar
python3 -c "from regulab.data import load_cifar10; load_cifar10()"  # builds the cache once, not 14 times at once
mode=$(sort -k3 -n /tmp/probe.txt | tail -1 | cut -d' ' -f1); steps=$(sort -k3 -n /tmp/probe.txt | tail -1 | cut -d' ' -f3)
[ "$mode" = mps ] && nvidia-cuda-mps-control -d
slots=$(python3 -c "print(max(1, min(14, int($steps * ($kill_at - $(date +%s)) * 0.8 / (30 * 1094 * 1.15)))))")
echo "mode $mode, $steps steps/s at 14 processes: $slots at a time"
mkdir -p /work/study/out/runs
python3 /tmp/gpu/driver.py /tmp/gpu/plan.json /work/study/out/runs "$slots" "$kill_at" 2>&1 | tee $OUT/driver.log
cd /work/study/out/runs && tar -czf $OUT/runs.tgz finished_on_gpu.json */train.log $(for k in $(python3 -c "import json; print(' '.join(json.load(open('finished_on_gpu.json'))))"); do echo $k/config.json $k/config.toml $k/history.json $k/history.csv $k/metrics.json; done)
ls -la $OUT

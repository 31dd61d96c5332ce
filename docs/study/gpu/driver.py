# Run the study's remaining trainings on one GPU, several processes at a time, in plan order, and
# stop in time: keep only as many running as the measured GPU throughput can finish by KILL_AT.
# usage: driver.py PLAN RUNS_DIR SLOTS KILL_AT   (REGULAB_DATA in the environment)
import json, os, subprocess, sys, time
from pathlib import Path
plan, runs, slots, kill_at = json.load(open(sys.argv[1])), Path(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
EPOCHS, MARGIN = 30, 25  # the study's epochs; seconds for a run's final test evaluation and writes
queue, running, done, t_begin = list(plan), [], [], time.time()

def say(*a):
    print(f"[{time.time() - t_begin:6.0f}s]", *a, flush=True)

def epochs(item):
    try:
        return len(json.loads((runs / item["key"] / "history.json").read_text()))
    except (OSError, ValueError):
        return 0

def launch(item):
    out = runs / item["key"]
    out.mkdir(parents=True, exist_ok=True)
    log = open(out / "train.log", "a")
    proc = subprocess.Popen([sys.executable, "-m", "regulab", "train", *item["args"], "--out", str(out), "--threads", "1"],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    running.append({"item": item, "proc": proc, "t0": time.time()})
    say("start", item["label"], item["key"])

while queue and len(running) < slots:
    launch(queue.pop(0))
samples = []  # (time, total epochs done by runs alive then)
while running:
    time.sleep(5)
    now = time.time()
    for r in list(running):
        rc = r["proc"].poll()
        if rc is not None:
            running.remove(r)
            ok = rc == 0 and (runs / r["item"]["key"] / "metrics.json").is_file()
            (done.append(r["item"]["key"]) if ok else None)
            say("finished" if ok else f"FAILED rc={rc}", r["item"]["label"], f"{now - r['t0']:.0f}s")
    if now > kill_at:
        for r in running:
            r["proc"].kill(); say("killed at the deadline", r["item"]["label"], f"epoch {epochs(r['item'])}")
        break
    progress = {id(r): epochs(r["item"]) for r in running}
    samples.append((now, sum(progress.values()), len(running)))
    window = [s for s in samples if now - s[0] <= 60 and s[2] == len(running)]
    if len(window) < 2 or window[-1][1] == window[0][1]:
        continue  # no rate yet at this many runs
    rate = (window[-1][1] - window[0][1]) / (window[-1][0] - window[0][0])  # epochs/s, all runs together
    budget = rate * max(0.0, kill_at - now - MARGIN) * 0.9
    need, keep = 0.0, []
    for r in running:  # plan order: the first ones are kept
        need += EPOCHS - progress[id(r)]
        if need > budget and keep:
            r["proc"].kill(); r["proc"].wait(); say("stopped: cannot finish in time", r["item"]["label"])
            samples.clear()
        else:
            keep.append(r)
    running[:] = keep
    while queue and len(running) < slots and need + EPOCHS <= budget:
        need += EPOCHS; launch(queue.pop(0)); samples.clear()
say(f"{len(done)} finished:", " ".join(done))
json.dump(done, open(runs / "finished_on_gpu.json", "w"))

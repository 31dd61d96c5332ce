# Which study runs are left, in priority order, with the `regulab train` arguments the study's sweep would pass.
import json, sys
from pathlib import Path
from regulab.sweep import plan, as_arguments
done = {p.name for p in Path(sys.argv[1]).iterdir() if (p / "metrics.json").is_file()}
skip = set(sys.argv[2].split(",")) if len(sys.argv) > 2 else set()
presets = ["seed-noreg", "seed", "seed-dropout", "seed-bn", "seed-augment", "seed-wd", "seed-all"]
l2 = {"l2": [0.0, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2]}
order = []
for seeds in (range(2), [2]):
    for groups in (plan(presets, {}, 3, {}), plan(["seed-noreg"], l2, 3, {})):
        for g in groups:
            for s in seeds:
                order.append((g.runs[s], g.label, s, ["--preset", g.preset, "--seed", str(s), *as_arguments(g.point)]))
todo, seen = [], set()
for key, label, s, args in order:
    if key in done or key in skip or key in seen:
        continue
    seen.add(key)
    todo.append({"key": key, "label": f"{label} [random seed {s}]", "args": args})
json.dump(todo, open("plan.json", "w"), indent=1)
for i, t in enumerate(todo):
    print(i, t["key"], t["label"], " ".join(t["args"]))

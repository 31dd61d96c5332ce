# Rebuild cifar-10-batches-py (official layout) from the WebP mosaics in the given folders.
import json, pickle, sys
from pathlib import Path
import numpy as np
from PIL import Image
out = Path(sys.argv[1]); out.mkdir(parents=True, exist_ok=True)
parts = [Path(p) for p in sys.argv[2:]]
info = json.loads(next(p / "labels.json" for p in parts if (p / "labels.json").exists()).read_text())
for name, labels in info["labels"].items():
    path = next(p / f"{name}.webp" for p in parts if (p / f"{name}.webp").exists())
    x = np.asarray(Image.open(path)).reshape(100, 32, 100, 32, 3).transpose(0, 2, 4, 1, 3).reshape(10000, 3072)
    pickle.dump({b"data": np.ascontiguousarray(x), b"labels": labels}, open(out / name, "wb"), protocol=2)
pickle.dump({b"label_names": [n.encode() for n in info["label_names"]]}, open(out / "batches.meta", "wb"), protocol=2)
print("unpacked", out)

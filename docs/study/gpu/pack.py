# Lossless WebP mosaics of the CIFAR-10 batches (device transfer only; never committed).
import json, pickle, sys, tarfile
import numpy as np
from PIL import Image
src = sys.argv[1]
with tarfile.open(src) as tar:
    files = {m.name.split("/")[-1]: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
labels = {}
for i, name in enumerate(["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"]):
    d = pickle.loads(files[name], encoding="bytes")
    x = np.asarray(d[b"data"], dtype=np.uint8).reshape(100, 100, 3, 32, 32).transpose(0, 3, 1, 4, 2).reshape(3200, 3200, 3)
    labels[name] = [int(v) for v in d[b"labels"]]
    Image.fromarray(x).save(f".dev/{'a' if i < 3 else 'b'}/{name}.webp", lossless=True, quality=100, method=6)
meta = pickle.loads(files["batches.meta"], encoding="bytes")
json.dump({"labels": labels, "label_names": [n.decode() for n in meta[b"label_names"]]}, open(".dev/b/labels.json", "w"))

# sha256 over the pixels and labels of a cifar-10-batches-py folder, batch by batch.
import hashlib, pickle, sys
from pathlib import Path
h = hashlib.sha256()
for name in ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"]:
    d = pickle.loads((Path(sys.argv[1]) / name).read_bytes(), encoding="bytes")
    h.update(bytes(d[b"data"].tobytes())); h.update(bytes(d[b"labels"]))
print(h.hexdigest())

# Steps/s of the seed network's training step (fp32, batch 32), timed from a shared start time.
import sys, time, torch
from regulab.models import create_model, keras_init_, kernel_penalty
start, seconds = float(sys.argv[1]), float(sys.argv[2])
model = keras_init_(create_model("seed-cnn")).to("cuda", memory_format=torch.channels_last)
opt = torch.optim.Adam(model.parameters(), lr=1e-4, eps=1e-7)
x = torch.randn(32, 3, 32, 32, device="cuda").contiguous(memory_format=torch.channels_last)
y = torch.randint(0, 10, (32,), device="cuda")
def steps(n):
    for _ in range(n):
        loss = torch.nn.functional.cross_entropy(model(x), y) + kernel_penalty(model, l2=1e-3)
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
    torch.cuda.synchronize()
steps(30)
time.sleep(max(0.0, start - time.time()))
t0, n = time.time(), 0
while time.time() - t0 < seconds:
    steps(50); n += 50
print(n / (time.time() - t0))

# Device harness only: the study trains in fp32 (the CPU it began on has no native bf16), so on the
# GPU `--precision auto` must resolve to true fp32 as well: no bf16 autocast, no TF32 convolutions.
import torch
torch.backends.cudnn.allow_tf32 = False
torch.backends.cuda.matmul.allow_tf32 = False
torch.cuda.is_bf16_supported = lambda *args, **kwargs: False

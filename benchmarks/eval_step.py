"""Images/s of evaluation: the network as it trains (eval mode) against its inference copy
with every BN folded into its conv (what `nasgal train` evaluates with), interleaved.

    python benchmarks/eval_step.py --device cpu              # DARTS_V2, 5 cells, C=16, 28x28x1, batch 512
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]  # nasgal, _args

from _args import add_network_args, network  # noqa: E402
from _interleave import interleave, machine, round_printer, summary  # noqa: E402

from nasgal.compiler import compile_network  # noqa: E402
from nasgal.compiler.fuse import folded_for_inference  # noqa: E402
from nasgal.engine.cpu import keep_freed_memory  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_network_args(p)
    p.add_argument("--batch", type=int, default=512, help="nasgal train's evaluation batch")
    p.add_argument("--device", default="cpu")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cpu":
        keep_freed_memory()
    net = network(args)
    torch.manual_seed(0)
    model = compile_network(net).to(device)
    with torch.no_grad():  # BN statistics as after training, not the identity
        for name, t in model.state_dict().items():
            if name.endswith("running_var"):
                t.uniform_(0.5, 1.5)
            elif name.endswith("running_mean"):
                t.normal_(0.0, 0.1)
    model = model.eval().to(memory_format=torch.channels_last)
    folded = folded_for_inference(model)
    x = torch.randn(args.batch, args.in_channels, args.size, args.size, device=device)
    x = x.contiguous(memory_format=torch.channels_last)

    def forward(m):
        def run():
            with torch.no_grad():
                m(x)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
        return run

    print(f"{net.name}, eval batch {args.batch}, {machine(device)}", flush=True)
    names = ["bn", "folded"]
    res = interleave({"bn": forward(model), "folded": forward(folded)}, rounds=args.rounds, steps_per_round=args.steps,
                     warmup=1, on_round=round_printer(names, "bn", args.batch))
    fig = summary(res, "bn", args.batch)
    up = fig["folded"]["speedup_vs_bn"]  # type: ignore[index]
    print(f"folded: {up['median']:.2f}x the unfolded network (rounds {up['min']:.2f}-{up['max']:.2f})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

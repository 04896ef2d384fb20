"""Time of one GAL pruning iteration against one training step of the same network and batch.

    python benchmarks/prune_step.py --device cuda --precision bf16
    python benchmarks/prune_step.py --device cpu --threads 1

One iteration is what `nasgal prune` does per batch: the frozen teacher's forward pass (the
"real" samples, shared by every critic step and the generator step), the generator's forward
pass (its "fake" samples, also shared: the generator does not change during the critic
steps), ``--critic-steps`` critic updates, and one generator update (SGD on the weights, a
FISTA step on the masks). The training step is ``nasgal.train.TrainStep`` (eager). The
network defaults to the paper's FashionMNIST net: DARTS_V2, 5 cells, C=16, 28x28x1, batch
100. Data is synthetic and already on the device. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]  # nasgal, _args

from _args import add_device_args, add_network_args, add_timing_args, network  # noqa: E402

from nasgal.compiler import compile_network  # noqa: E402
from nasgal.prune import Critic, GALStep, MaskFista  # noqa: E402
from nasgal.engine.optim import sgd  # noqa: E402
from nasgal.train.step import TrainStep  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, warmup: int, steps: int, repeats: int) -> list[float]:
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            fn()
        sync(device)
        times.append((time.perf_counter() - t0) / steps)
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_network_args(p)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--critic-steps", type=int, default=5)
    add_device_args(p)
    add_timing_args(p, warmup=3, steps=10)
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    net = network(args)
    memory = torch.channels_last if args.channels_last else torch.contiguous_format
    x = torch.randn(args.batch_size, args.in_channels, args.size, args.size, device=device)
    x = x.contiguous(memory_format=memory)
    y = torch.randint(0, args.classes, (args.batch_size,), device=device)

    # Training step of the same network and batch.
    model = compile_network(net).to(device, memory_format=memory).train()
    train_step = TrainStep(model, sgd(model, 0.01, 0.9, 3e-4, device), precision=args.precision,
                           device=device)
    t_train = timed(lambda: train_step(x, y), device, args.warmup, args.steps, args.repeats)

    # GAL iteration: teacher frozen in eval mode, generator with gates, critic, FISTA masks.
    state = model.state_dict()
    teacher = compile_network(net).to(device, memory_format=memory)
    teacher.load_state_dict(state)
    teacher.eval().requires_grad_(False)
    gen = compile_network(net, gates=True).to(device, memory_format=memory)
    gen.load_state_dict(state, strict=False)
    gen.eval()
    critic = Critic(args.classes).to(device)
    weights = [q for n, q in gen.named_parameters() if not n.endswith(".gate")]
    opt_g = torch.optim.SGD(weights, lr=0.01, momentum=0.9, weight_decay=3e-4, foreach=True)
    opt_d = torch.optim.RMSprop(critic.parameters(), lr=5e-5)
    gates = gen.gates()
    fista = MaskFista([gates[k] for k in sorted(gates)], lr=0.01)
    gal = GALStep(teacher, gen, critic, opt_g, opt_d, fista, mu=1.0, critic_steps=args.critic_steps,
                  precision=args.precision, device=device)
    t_gal = timed(lambda: gal(x, 0.02), device, args.warmup, args.steps, args.repeats)
    t_teacher = timed(lambda: gal.real(x), device, args.warmup, args.steps, args.repeats)

    train_s, gal_s = statistics.median(t_train), statistics.median(t_gal)
    print(json.dumps({
        "network": f"{args.genotype}-{args.cells}c-C{args.channels}",
        "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
        "threads": torch.get_num_threads(),
        "batch_size": args.batch_size,
        "precision": args.precision,
        "channels_last": args.channels_last,
        "critic_steps": args.critic_steps,
        "train_step_ms": round(train_s * 1e3, 3),
        "prune_iteration_ms": round(gal_s * 1e3, 3),
        "teacher_forward_ms": round(statistics.median(t_teacher) * 1e3, 3),
        "ratio": round(gal_s / train_s, 3),
        "target_ratio": 5.0,
        "reference_ratio": 5.5,
    }))


if __name__ == "__main__":
    main()

"""Does `model.backbone.norm=sync_bn` normalise over every rank's images? 2 gloo ranks against one process.

    uv run python -m benchmarks.sync_bn                   # on a GPU (both ranks on cuda:0 when there is one GPU)
    uv run python -m benchmarks.sync_bn --device cpu --norm bn   # the check itself on a CPU: unsynced BN must fail

Each rank builds the training backbone (build_backbone: ResNet-18-FPN, every stage trainable, `--norm`) from the same
initial weights and runs forward and backward on its half of one batch of 4 images. One process runs the same
weights with plain BatchNorm on the whole batch. Synced batch norm gives, within float32 rounding: each rank's
features equal to the reference's for its images, gradients summed over ranks equal to the reference's, and the
same running statistics. torch's SyncBatchNorm refuses CPU tensors, so `sync_bn` is checked on GPUs only; the ranks
talk over gloo, which carries CUDA tensors, so one GPU is enough.
"""

from __future__ import annotations

import argparse

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from detect.export.parity import relative_difference
from detect.modeling.model import SYNC_BN_NEEDS_GPUS, build_backbone
from detect.utils.errors import DetectError, exit_on_error

WORLD = 2
TOLERANCE = 1e-3  # largest relative difference accepted: float32 rounding over a ResNet-18, TF32 off


def backbone(norm: str, device: torch.device) -> nn.Module:
    torch.manual_seed(0)
    cfg = {"name": "resnet18", "norm": norm, "trainable_layers": 5, "weights": None, "fpn_channels": 32}
    return build_backbone(cfg, load_weights=False).to(device).train()


def batch() -> torch.Tensor:
    return torch.randn(4, 3, 128, 160, generator=torch.Generator().manual_seed(1))


def forward_backward(model: nn.Module, images: torch.Tensor) -> dict[str, dict[str, torch.Tensor]]:
    """Features, gradients and BN running statistics after one step, by kind; the loss sums over images, so that the
    ranks' losses add up to the whole batch's."""
    features = model(images)
    sum(f.pow(2).sum() for f in features.values()).backward()
    return {"features": {name: f.detach() for name, f in features.items()},
            "grad": {name: p.grad for name, p in model.named_parameters()},
            "running stats": {f"{name}.{key}": getattr(m, key).detach() for name, m in model.named_modules()
                              if isinstance(m, nn.modules.batchnorm._BatchNorm)
                              for key in ("running_mean", "running_var")}}


def rank_check(rank: int, port: int, device: str, norm: str, results: dict) -> None:
    """One rank's half batch under `norm`, against the whole batch with plain BN (rank 0 stores the differences)."""
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    where = torch.device(device)
    model = backbone(norm, where)
    reference = backbone("bn", where)
    reference.load_state_dict(model.state_dict())
    images = batch().to(where)
    mine = forward_backward(model, images.chunk(WORLD)[rank])
    for grad in mine["grad"].values():
        dist.all_reduce(grad)  # summed over ranks: the whole batch's gradient
    expected = forward_backward(reference, images)
    expected["features"] = {name: f.chunk(WORLD)[rank] for name, f in expected["features"].items()}
    worst = {kind: max(relative_difference(expected[kind][name], value) for name, value in tensors.items())
             for kind, tensors in mine.items()}
    gathered: list[dict[str, float] | None] = [None] * WORLD
    dist.all_gather_object(gathered, worst)
    if rank == 0:
        results.update({kind: max(w[kind] for w in gathered) for kind in worst})
    dist.destroy_process_group()


def check(device: str, norm: str = "sync_bn", port: int = 29573) -> dict[str, float]:
    """Largest relative difference from the one-process reference, per kind: features, grad, running stats."""
    if norm == "sync_bn" and torch.device(device).type == "cpu":
        raise DetectError(f"{SYNC_BN_NEEDS_GPUS}; run this on a GPU, or with --norm bn to check the check on a CPU")
    with mp.Manager() as manager:
        results = manager.dict()
        # spawn, on a CPU too: a rank forked from a process whose OpenMP threads have run hangs in its first torch op
        mp.start_processes(rank_check, args=(port, device, norm, results), nprocs=WORLD, start_method="spawn")
        return dict(results)


def verdict(differences: dict[str, float]) -> str:
    worst = max(differences.values())
    text = ", ".join(f"{kind} {value:.1e}" for kind, value in differences.items())
    return f"{'ok' if worst <= TOLERANCE else 'DIFFERS'} (largest relative difference: {text}; tolerance {TOLERANCE:g})"


def report(args: argparse.Namespace) -> None:
    differences = check(args.device, args.norm, args.port)
    print(f"norm={args.norm}, {WORLD} gloo ranks on {args.device}: {verdict(differences)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda | cuda:N | cpu (only with --norm bn)")
    parser.add_argument("--norm", default="sync_bn", choices=("sync_bn", "bn"))
    parser.add_argument("--port", type=int, default=29573, help="the gloo rendezvous port on 127.0.0.1")
    exit_on_error(report, parser.parse_args())


if __name__ == "__main__":
    main()

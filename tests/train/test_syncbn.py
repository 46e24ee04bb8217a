import torch
from torch import nn

from condgen.blocks.norm import SyncableBatchNorm2d
from condgen.train.build import convert_sync_batchnorm


def make_net() -> nn.Module:
    net = nn.Sequential(nn.Conv2d(3, 4, 3), SyncableBatchNorm2d(4), nn.Sequential(nn.BatchNorm2d(4)),
                        nn.Sequential(SyncableBatchNorm2d(4, affine=False)))
    net[1].running_mean.fill_(0.5)
    return net


def test_converts_only_the_syncable_norms_on_cuda_with_several_processes():
    net = make_net()
    weight = net[1].weight
    out = convert_sync_batchnorm(net, device_type="cuda", num_processes=2)
    assert out is net
    assert type(net[1]) is nn.SyncBatchNorm and type(net[3][0]) is nn.SyncBatchNorm
    assert type(net[2][0]) is nn.BatchNorm2d  # an explicit 'batch' norm stays per-process
    assert net[1].weight is weight  # same Parameter: optimisers stay valid
    assert torch.equal(net[1].running_mean, torch.full((4,), 0.5))
    assert not net[3][0].affine and net[3][0].weight is None
    assert net.state_dict().keys() == make_net().state_dict().keys()  # checkpoints are unchanged


def test_leaves_cpu_and_single_process_runs_alone():
    for device_type, processes in (("cpu", 4), ("cuda", 1), ("mps", 2)):
        net = make_net()
        convert_sync_batchnorm(net, device_type=device_type, num_processes=processes)
        assert type(net[1]) is SyncableBatchNorm2d, (device_type, processes)

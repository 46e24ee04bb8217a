"""Label-sparse convolutions: equal to the dense convs they replace (forward, weight and bias gradients)."""

import copy
import logging

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from condgen.blocks.cond_conv import CCResBlock
from condgen.networks.ccfpse_generator import CCFPSEGenerator
from condgen.networks.fpse_discriminator import FPSEDiscriminator
from condgen.networks.patch_discriminator import MultiscalePatchDiscriminator
from condgen.networks.spade_generator import SPADEGenerator
from condgen.ops import label_conv
from condgen.ops import layout as label_layout_module
from condgen.ops.label_conv import cat_labels, conv_labels, label_conv2d, label_layout, use_label_sparse


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _seg(b=2, nc=6, size=16, edges=True, dtype=torch.float32):
    labels = torch.randint(0, nc, (b, size // 4, size // 4)).repeat_interleave(4, 1).repeat_interleave(4, 2)
    labels[:, 0, :3] = torch.randint(0, nc, (b, 3))  # some pixel-level detail too
    seg = F.one_hot(labels, nc).permute(0, 3, 1, 2).to(dtype)
    if edges:
        seg = torch.cat([seg, (torch.rand(b, 1, size, size) > 0.7).to(dtype)], 1)
    return seg.contiguous()


@pytest.mark.parametrize(("k", "stride", "padding"), [(3, 1, 1), (4, 2, 2), (1, 1, 0), (5, 1, 2), (3, 2, 0)])
def test_op_matches_dense_conv_and_gradcheck(k, stride, padding):
    ids = torch.randint(0, 4, (2, 6, 7), dtype=torch.uint8)
    w = torch.randn(3, 4, k, k, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    one_hot = F.one_hot(ids.long(), 4).permute(0, 3, 1, 2).double()
    want, got = F.conv2d(one_hot, w, b, stride, padding), label_conv2d(ids, w, b, stride, padding)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    g = torch.randn_like(want)
    for a, c in zip(torch.autograd.grad(got, (w, b), g), torch.autograd.grad(want, (w, b), g), strict=True):
        torch.testing.assert_close(a, c, rtol=0, atol=1e-12)
    assert torch.autograd.gradcheck(lambda w, b: label_conv2d(ids, w, b, stride, padding), (w, b))
    if k == 3 and stride == 1:
        small = ids[:1, :4, :4]
        assert torch.autograd.gradgradcheck(lambda w: label_conv2d(small, w, None, 1, 1), (w[:2, :, :, :],))


@pytest.mark.parametrize(("nc", "dtype"), [(184, torch.uint8), (300, torch.int16)])
def test_fp32_within_round_off_for_coco_sized_and_int16_ids(nc, dtype):
    ids = torch.randint(0, nc, (2, 12, 12))
    w = torch.randn(8, nc, 3, 3, requires_grad=True)
    want = F.conv2d(F.one_hot(ids, nc).permute(0, 3, 1, 2).float(), w, None, 1, 1)
    got = label_conv2d(ids.to(dtype), w, None, 1, 1)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    g = torch.randn_like(want)
    torch.testing.assert_close(torch.autograd.grad(got, w, g)[0], torch.autograd.grad(want, w, g)[0],
                               rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("channels_last", [False, True])
def test_conv_labels_with_edges_features_and_resize(channels_last):
    seg, feat = _seg(), torch.randn(2, 3, 8, 8, requires_grad=True)
    conv = nn.Conv2d(7 + 3, 4, 3, padding=1)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    seg = seg.contiguous(memory_format=fmt)

    def run(mode):
        with use_label_sparse(mode):
            c = copy.deepcopy(conv)
            x = seg.clone()  # a fresh tensor: no layout attached yet
            out = conv_labels(c, cat_labels(x, feat, size=(8, 8)))
            grads = torch.autograd.grad(out.square().sum(), [c.weight, c.bias, feat])
            return out, grads

    (want, want_g), (got, got_g) = run("off"), run("on")
    assert got.is_contiguous(memory_format=torch.channels_last if want.is_contiguous(
        memory_format=torch.channels_last) and not want.is_contiguous() else torch.contiguous_format)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    for a, b in zip(got_g, want_g, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4)


@pytest.fixture
def _on():
    with use_label_sparse("on"):
        yield


def test_layout_detection_ids_and_nearest_resize(_on):
    seg = _seg(size=16)
    layout = label_layout(seg)
    assert layout.num_labels == 6 and layout.channels == 7 and layout.ids.dtype == torch.uint8
    torch.testing.assert_close(layout.ids.long(), seg[:, :6].argmax(1))
    small = layout.at((5, 7))
    resized = F.interpolate(seg, size=(5, 7), mode="nearest")
    torch.testing.assert_close(F.one_hot(small.ids.long(), 6).permute(0, 3, 1, 2).float(), resized[:, :6])
    assert layout.at((5, 7)) is small  # one id map per size
    assert label_layout(_seg(edges=False)).num_labels == 6


def test_soft_labels_fall_back_with_one_message(caplog):
    label_conv._warned.clear()
    conv = nn.Conv2d(7, 4, 3, padding=1)
    with caplog.at_level(logging.WARNING, logger="condgen.ops"):
        for _ in range(3):
            soft = torch.rand(2, 7, 8, 8)
            torch.testing.assert_close(conv_labels(conv, soft), conv(soft))
        with use_label_sparse("on"):
            soft = torch.rand(2, 7, 8, 8)
            torch.testing.assert_close(conv_labels(conv, soft), conv(soft))
    assert sum("not an exactly one-hot" in r.message for r in caplog.records) == 1
    with use_label_sparse("auto"):  # 'auto' leaves maps with few label channels dense, 'on' does not
        assert label_layout(_seg(nc=6)) is None and label_layout(_seg(nc=32)) is not None
    almost = _seg()
    almost[0, (int(almost[0, :6, 0, 0].argmax()) + 1) % 6, 0, 0] = 1e-9  # one value off: not one-hot
    assert label_layout(almost) is None


def test_switch_off_and_in_place_change_and_label_gradients(_on):
    seg = _seg()
    with use_label_sparse("off"):
        assert label_layout(seg) is None
    assert label_layout(seg) is not None
    seg[:, :6] = 0.5  # changed in place: the attached layout no longer counts
    assert label_layout(seg) is None
    assert label_layout(_seg().requires_grad_()) is None  # a map that needs a gradient stays dense


def _flatten(obj):
    return [obj] if torch.is_tensor(obj) else [t for o in obj for t in _flatten(o)]


def _step(net_fn, mode, inputs):
    with use_label_sparse(mode):
        torch.manual_seed(0)
        net = net_fn()
        args = [t.clone() for t in inputs]
        out = net(*args)
        flat = _flatten(out)
        loss = sum((t.float() ** 2).mean() for t in flat)
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in net.parameters() if p.grad is not None]


def _close(a, b, tol):
    (la, ga), (lb, gb) = a, b
    torch.testing.assert_close(la, lb, rtol=tol, atol=tol)
    assert len(ga) == len(gb)
    for x, y in zip(ga, gb, strict=True):
        assert (x - y).abs().max() <= tol * (1 + y.abs().max())


@pytest.mark.parametrize("net", ["spade", "ccfpse", "ccfpse_wo_fp", "mspatch", "fp"])
def test_networks_identical_with_switch_on_and_off(net):
    from condgen.blocks.condition import LabelMapCondition

    seg, img = _seg(size=64), torch.rand(2, 3, 64, 64) * 2 - 1
    small_cc = lambda i, o, c: CCResBlock(i, o, c, hidden=8)  # noqa: E731
    nets = {
        "spade": (lambda: SPADEGenerator(7, crop_size=64, ngf=4, use_vae=False), [seg]),
        "ccfpse": (lambda: CCFPSEGenerator(7, crop_size=64, ngf=4, use_vae=False, block=small_cc), [seg]),
        "ccfpse_wo_fp": (lambda: CCFPSEGenerator(7, crop_size=64, ngf=4, use_vae=False, block=small_cc,
                                                 condition=LabelMapCondition), [seg]),
        "mspatch": (lambda: MultiscalePatchDiscriminator(7, ndf=4, n_layers=2), [img, seg]),
        "fp": (lambda: FPSEDiscriminator(7, ndf=4, semantic_embedding=False), [img, seg]),
    }
    fn, inputs = nets[net]
    _close(_step(fn, "on", inputs), _step(fn, "off", inputs), 1e-4)


def test_sparse_path_is_taken_and_saved_memory_is_id_maps(monkeypatch):
    calls = []
    real = label_conv.label_conv2d
    monkeypatch.setattr(label_conv, "label_conv2d", lambda ids, *a: calls.append(ids.dtype) or real(ids, *a))
    from benchmarks.memory import saved_tensor_bytes

    seg = _seg(b=1, nc=100, size=64)
    saved = {}
    for mode in ("off", "on"):
        with use_label_sparse(mode):
            torch.manual_seed(0)
            G = SPADEGenerator(101, crop_size=64, ngf=4, use_vae=False)
            keep = [*G.parameters(), *G.buffers(), seg]
            _, saved[mode] = saved_tensor_bytes(lambda G=G: G(seg), exclude=keep)
    assert len(calls) == 18 and set(calls) == {torch.uint8}  # every SPADE's shared conv, uint8 ids
    assert saved["on"] < 0.8 * saved["off"], saved


def test_bf16_autocast():
    seg = _seg(size=32)
    torch.manual_seed(0)
    G0 = SPADEGenerator(7, crop_size=32, ngf=4, use_vae=False)

    def run(mode, bf16):  # a fresh copy each time: train-mode forwards advance BN and spectral-norm state
        with use_label_sparse(mode), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return copy.deepcopy(G0)(seg.clone())

    rel = lambda a, b: ((a.float() - b).norm() / b.norm()).item()  # noqa: E731
    want, dense_bf16, fast = run("off", False), run("off", True), run("on", True)
    assert fast.dtype == torch.bfloat16
    # bf16 rounding in a fresh batch-2 network is large either way: no worse than the dense bf16 run
    assert rel(fast, want) <= 1.5 * rel(dense_bf16, want) + 0.01


def test_torch_compile_keeps_the_sparse_path(monkeypatch):
    from condgen.blocks.spade import SPADEResBlock

    calls = []
    real = label_conv.label_conv2d
    monkeypatch.setattr(label_conv, "label_conv2d", lambda ids, *a: calls.append(1) or real(ids, *a))
    seg, x = _seg(size=16), torch.randn(2, 8, 8, 8)
    torch.manual_seed(0)
    block = SPADEResBlock(8, 4, 7, spectral=False).eval()
    with use_label_sparse("off"):
        want = block(x, seg)
    with use_label_sparse("on"):
        got = torch.compile(block, backend="eager")(x, seg.clone())
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    assert len(calls) == 3


def test_checkpointed_heads_keep_the_sparse_path():
    torch.manual_seed(0)
    seg = _seg(size=32, nc=10)
    block = lambda i, o, c: CCResBlock(i, o, c, hidden=8, checkpoint_heads=True)  # noqa: E731
    fn = lambda: CCFPSEGenerator(11, crop_size=32, ngf=4, use_vae=False, block=block)  # noqa: E731
    _close(_step(fn, "on", [seg]), _step(fn, "off", [seg]), 1e-4)


def test_labels_after_a_noise_map_oasis_order(_on):
    """OASIS's 3-D noise comes before the labels: cat(z, seg); the label channels are still gathered."""
    from condgen.blocks.noise import NoiseCondition

    seg = _seg(nc=40, edges=False)
    cond = NoiseCondition(40, z_dim=5)
    x = cond.label_input(seg, torch.randn(2, 5))
    layout = label_layout(x, detect=False)
    assert layout is not None and (layout.offset, layout.num_labels, layout.channels) == (5, 40, 45)
    conv = nn.Conv2d(45, 8, 3, padding=1)
    for size in [(16, 16), (8, 8)]:
        dense = conv(F.interpolate(x, size=size, mode="nearest"))
        torch.testing.assert_close(conv_labels(conv, x, size), dense, rtol=1e-5, atol=1e-5)
    out = conv_labels(conv, x, (8, 8))
    out.square().sum().backward()
    sparse_grad = conv.weight.grad.clone()
    conv.weight.grad = None
    conv(F.interpolate(x, size=(8, 8), mode="nearest")).square().sum().backward()
    torch.testing.assert_close(sparse_grad, conv.weight.grad, rtol=1e-4, atol=1e-5)


def test_cat_batch_labels_keeps_the_layout(monkeypatch):
    """[seg; seg] for the discriminator carries seg's layout (ids and edge part concatenated): the same as a
    fresh detection, without one."""
    seg = _seg(b=2, nc=40)
    with use_label_sparse("on"):
        known = label_conv.label_layout(seg)
        detections = []
        real = label_layout_module._detect  # where label_layout() looks it up
        monkeypatch.setattr(label_layout_module, "_detect", lambda x: detections.append(1) or real(x))
        both = label_conv.cat_batch_labels([seg, seg])
        got = label_conv.label_layout(both)
        assert not detections
        want, _ = real(torch.cat([seg, seg]))
    torch.testing.assert_close(both, torch.cat([seg, seg]), rtol=0, atol=0)
    assert (got.num_labels, got.channels, got.offset) == (want.num_labels, want.channels, want.offset)
    assert torch.equal(got.ids, want.ids) and torch.equal(got.ids, torch.cat([known.ids, known.ids]))
    assert [c for c, _ in got.parts] == [c for c, _ in want.parts]
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(got.parts, want.parts, strict=True))


def test_encoded_labels_carry_their_layout_and_nothing_searches_for_it(monkeypatch):
    """`encode_labels` attaches the ids it one-hot encoded: the sparse conv, the channels-last copy of
    training and OASIS's class map read them; the one-hot channels are never searched (no `_detect`)."""
    from condgen.data.labels import LabelLayout, attached_layout, encode_labels
    from condgen.data.oasis_labels import class_map
    from condgen.train.speed import SpeedOptions

    labels = torch.randint(0, 40, (2, 1, 16, 16))
    instance = torch.randint(0, 3, (2, 1, 16, 16))
    seg = encode_labels(labels, 40, instance=instance)
    layout = attached_layout(seg)
    assert isinstance(layout, LabelLayout)
    assert (layout.num_labels, layout.channels, layout.offset) == (40, 41, 0)
    assert torch.equal(layout.ids.long(), labels[:, 0]) and [c for c, _ in layout.parts] == [40]
    monkeypatch.setattr(label_layout_module, "_detect", lambda x: pytest.fail("searched the one-hot for ids"))
    (copy_cl,) = SpeedOptions(channels_last=True).inputs(seg)
    assert copy_cl is not seg and attached_layout(copy_cl) is layout
    assert torch.equal(class_map(copy_cl), seg.argmax(1))
    conv = nn.Conv2d(41, 4, 3, padding=1)
    with use_label_sparse("on"):
        assert label_layout(seg) is layout
        want = conv(F.interpolate(seg, size=(8, 8), mode="nearest"))
        torch.testing.assert_close(conv_labels(conv, copy_cl, (8, 8)), want, rtol=1e-5, atol=1e-5)
    seg.mul_(1)  # changed in place: the layout no longer describes it
    assert attached_layout(seg) is None

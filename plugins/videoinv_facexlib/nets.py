"""RetinaFace (ResNet-50 and MobileNet-0.25) and BiSeNet face parsing, written for the layouts of
facexlib's published weight files (``detection_Resnet50_Final.pth``,
``detection_mobilenet0.25_Final.pth``, ``parsing_bisenet.pth``): same module names and shapes, so
those files load strictly. Only torch is needed (no torchvision).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


# -- small blocks -------------------------------------------------------------------------------
def conv_bn(cin: int, cout: int, stride: int = 1, kernel: int = 3, leaky: float | None = 0.0) -> nn.Sequential:
    """Conv (no bias) + BatchNorm (+ leaky ReLU unless ``leaky`` is None)."""
    layers = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(cout)]
    if leaky is not None:
        layers.append(nn.LeakyReLU(leaky, inplace=True))
    return nn.Sequential(*layers)


def conv_dw(cin: int, cout: int, stride: int, leaky: float = 0.1) -> nn.Sequential:
    """Depthwise 3x3 + pointwise 1x1, each with BatchNorm and leaky ReLU."""
    return nn.Sequential(nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin),
                         nn.LeakyReLU(leaky, inplace=True), nn.Conv2d(cin, cout, 1, 1, 0, bias=False),
                         nn.BatchNorm2d(cout), nn.LeakyReLU(leaky, inplace=True))


class Bottleneck(nn.Module):
    """ResNet-50 bottleneck (stride in the 3x3 conv), 4x expansion."""

    def __init__(self, cin: int, width: int, stride: int):
        super().__init__()
        cout = width * 4
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet50Body(nn.Module):
    """ResNet-50 up to layer4; returns the outputs of layer2..4 (strides 8, 16, 32)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        cin = 64
        for i, (width, blocks, stride) in enumerate([(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)], 1):
            layer = [Bottleneck(cin, width, stride)] + [Bottleneck(width * 4, width, 1) for _ in range(blocks - 1)]
            setattr(self, f"layer{i}", nn.Sequential(*layer))
            cin = width * 4

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        x = self.layer1(x)
        c2 = self.layer2(x)
        c3 = self.layer3(c2)
        return [c2, c3, self.layer4(c3)]


class MobileNetBody(nn.Module):
    """MobileNet-0.25 as RetinaFace uses it; returns stage1..3 (strides 8, 16, 32)."""

    def __init__(self):
        super().__init__()
        self.stage1 = nn.Sequential(conv_bn(3, 8, 2, leaky=0.1), conv_dw(8, 16, 1), conv_dw(16, 32, 2),
                                    conv_dw(32, 32, 1), conv_dw(32, 64, 2), conv_dw(64, 64, 1))
        self.stage2 = nn.Sequential(conv_dw(64, 128, 2), *[conv_dw(128, 128, 1) for _ in range(5)])
        self.stage3 = nn.Sequential(conv_dw(128, 256, 2), conv_dw(256, 256, 1))

    def forward(self, x):
        s1 = self.stage1(x)
        s2 = self.stage2(s1)
        return [s1, s2, self.stage3(s2)]


class FPN(nn.Module):
    def __init__(self, channels: list[int], out: int):
        super().__init__()
        leaky = 0.1 if out <= 64 else 0.0
        self.output1 = conv_bn(channels[0], out, kernel=1, leaky=leaky)
        self.output2 = conv_bn(channels[1], out, kernel=1, leaky=leaky)
        self.output3 = conv_bn(channels[2], out, kernel=1, leaky=leaky)
        self.merge1 = conv_bn(out, out, leaky=leaky)
        self.merge2 = conv_bn(out, out, leaky=leaky)

    def forward(self, feats):
        o1, o2, o3 = self.output1(feats[0]), self.output2(feats[1]), self.output3(feats[2])
        o2 = self.merge2(o2 + F.interpolate(o3, size=o2.shape[2:], mode="nearest"))
        o1 = self.merge1(o1 + F.interpolate(o2, size=o1.shape[2:], mode="nearest"))
        return [o1, o2, o3]


class SSH(nn.Module):
    """Single-stage headless context module: 3x3, "5x5" and "7x7" branches, concatenated."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        leaky = 0.1 if cout <= 64 else 0.0
        self.conv3X3 = conv_bn(cin, cout // 2, leaky=None)
        self.conv5X5_1 = conv_bn(cin, cout // 4, leaky=leaky)
        self.conv5X5_2 = conv_bn(cout // 4, cout // 4, leaky=None)
        self.conv7X7_2 = conv_bn(cout // 4, cout // 4, leaky=leaky)
        self.conv7x7_3 = conv_bn(cout // 4, cout // 4, leaky=None)

    def forward(self, x):
        a = self.conv3X3(x)
        b1 = self.conv5X5_1(x)
        b = self.conv5X5_2(b1)
        c = self.conv7x7_3(self.conv7X7_2(b1))
        return F.relu(torch.cat([a, b, c], dim=1))


class _Head(nn.Module):
    def __init__(self, cin: int, anchors: int, values: int):
        super().__init__()
        self.values = values
        self.conv1x1 = nn.Conv2d(cin, anchors * values, 1)

    def forward(self, x):
        out = self.conv1x1(x).permute(0, 2, 3, 1).contiguous()
        return out.view(out.shape[0], -1, self.values)


RETINAFACE = {
    "resnet50": {"body": ResNet50Body, "channels": [512, 1024, 2048], "out": 256},
    "mobilenet0.25": {"body": MobileNetBody, "channels": [64, 128, 256], "out": 64},
}
MIN_SIZES = [[16, 32], [64, 128], [256, 512]]
STEPS = [8, 16, 32]
VARIANCE = (0.1, 0.2)
MEAN_BGR = (104.0, 117.0, 123.0)


class RetinaFace(nn.Module):
    """``forward(x)`` with x [B,3,H,W] = BGR pixels minus (104, 117, 123) ->
    (box offsets [B,N,4], class scores [B,N,2] softmaxed, landmark offsets [B,N,10])."""

    def __init__(self, backbone: str = "resnet50"):
        super().__init__()
        cfg = RETINAFACE[backbone]
        self.body = cfg["body"]()
        out = cfg["out"]
        self.fpn = FPN(cfg["channels"], out)
        self.ssh1, self.ssh2, self.ssh3 = SSH(out, out), SSH(out, out), SSH(out, out)
        self.ClassHead = nn.ModuleList(_Head(out, 2, 2) for _ in range(3))
        self.BboxHead = nn.ModuleList(_Head(out, 2, 4) for _ in range(3))
        self.LandmarkHead = nn.ModuleList(_Head(out, 2, 10) for _ in range(3))

    def forward(self, x):
        feats = self.fpn(self.body(x))
        feats = [self.ssh1(feats[0]), self.ssh2(feats[1]), self.ssh3(feats[2])]
        boxes = torch.cat([h(f) for h, f in zip(self.BboxHead, feats)], dim=1)
        scores = torch.cat([h(f) for h, f in zip(self.ClassHead, feats)], dim=1)
        landmarks = torch.cat([h(f) for h, f in zip(self.LandmarkHead, feats)], dim=1)
        return boxes, F.softmax(scores, dim=-1), landmarks


def priors(height: int, width: int) -> torch.Tensor:
    """Anchor boxes [N,4] (cx, cy, w, h), relative to the image size, in the heads' order."""
    out = []
    for step, sizes in zip(STEPS, MIN_SIZES):
        fh, fw = -(-height // step), -(-width // step)
        ys, xs = torch.meshgrid(torch.arange(fh), torch.arange(fw), indexing="ij")
        cx = ((xs + 0.5) * step / width).reshape(-1, 1)
        cy = ((ys + 0.5) * step / height).reshape(-1, 1)
        for_level = [torch.cat([cx, cy, torch.full_like(cx, s / width), torch.full_like(cy, s / height)], 1)
                     for s in sizes]
        out.append(torch.stack(for_level, dim=1).reshape(-1, 4))  # anchors of a cell are adjacent
    return torch.cat(out)


def decode(loc: torch.Tensor, landm: torch.Tensor, anchors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Boxes [N,4] (x0,y0,x1,y1) and 5 points [N,10], relative to the image size."""
    centre = anchors[:, :2] + loc[:, :2] * VARIANCE[0] * anchors[:, 2:]
    size = anchors[:, 2:] * torch.exp(loc[:, 2:] * VARIANCE[1])
    boxes = torch.cat([centre - size / 2, centre + size / 2], 1)
    points = torch.cat([anchors[:, :2] + landm[:, 2 * k:2 * k + 2] * VARIANCE[0] * anchors[:, 2:] for k in range(5)], 1)
    return boxes, points


def nms(boxes: torch.Tensor, scores: torch.Tensor, threshold: float, top_k: int = 750) -> list[int]:
    """Greedy non-maximum suppression over the ``top_k`` best boxes; indices kept, best first."""
    order = scores.argsort(descending=True)[:top_k]
    b = boxes[order].double()
    area = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    lo = torch.maximum(b[:, None, :2], b[None, :, :2])
    hi = torch.minimum(b[:, None, 2:], b[None, :, 2:])
    inter = (hi - lo).clamp(min=0).prod(-1)
    overlap = (inter / (area[:, None] + area[None, :] - inter + 1e-9)).numpy()
    suppressed = np.zeros(len(order), bool)
    keep = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(int(order[i]))
        suppressed |= overlap[i] > threshold
    return keep


# -- BiSeNet -------------------------------------------------------------------------------------
class ConvBNReLU(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int = 3):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, 1, kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if cin != cout or stride != 1:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet18Body(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        cin = 64
        for i, (cout, stride) in enumerate([(64, 1), (128, 2), (256, 2), (512, 2)], 1):
            setattr(self, f"layer{i}", nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)))
            cin = cout

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        f8 = self.layer2(self.layer1(x))
        f16 = self.layer3(f8)
        return f8, f16, self.layer4(f16)


class AttentionRefinement(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = ConvBNReLU(cin, cout)
        self.conv_atten = nn.Conv2d(cout, cout, 1, bias=False)
        self.bn_atten = nn.BatchNorm2d(cout)

    def forward(self, x):
        feat = self.conv(x)
        return feat * torch.sigmoid(self.bn_atten(self.conv_atten(feat.mean(dim=(2, 3), keepdim=True))))


class ContextPath(nn.Module):
    def __init__(self):
        super().__init__()
        self.resnet = ResNet18Body()
        self.arm16 = AttentionRefinement(256, 128)
        self.arm32 = AttentionRefinement(512, 128)
        self.conv_head32 = ConvBNReLU(128, 128)
        self.conv_head16 = ConvBNReLU(128, 128)
        self.conv_avg = ConvBNReLU(512, 128, kernel=1)

    def forward(self, x):
        f8, f16, f32 = self.resnet(x)
        avg = self.conv_avg(f32.mean(dim=(2, 3), keepdim=True))
        up32 = self.conv_head32(F.interpolate(self.arm32(f32) + avg, size=f16.shape[2:], mode="nearest"))
        up16 = self.conv_head16(F.interpolate(self.arm16(f16) + up32, size=f8.shape[2:], mode="nearest"))
        return f8, up16, up32


class FeatureFusion(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.convblk = ConvBNReLU(cin, cout, kernel=1)
        self.conv1 = nn.Conv2d(cout, cout // 4, 1, bias=False)
        self.conv2 = nn.Conv2d(cout // 4, cout, 1, bias=False)

    def forward(self, a, b):
        feat = self.convblk(torch.cat([a, b], dim=1))
        attention = torch.sigmoid(self.conv2(F.relu(self.conv1(feat.mean(dim=(2, 3), keepdim=True)))))
        return feat * attention + feat


class ParsingOutput(nn.Module):
    def __init__(self, cin: int, mid: int, classes: int):
        super().__init__()
        self.conv = ConvBNReLU(cin, mid)
        self.conv_out = nn.Conv2d(mid, classes, 1, bias=False)

    def forward(self, x):
        return self.conv_out(self.conv(x))


class BiSeNet(nn.Module):
    """Face parsing into 19 classes; ``forward`` returns the main head's logits [B,19,H,W]
    (the auxiliary heads exist for the weights' layout)."""

    def __init__(self, classes: int = 19):
        super().__init__()
        self.cp = ContextPath()
        self.ffm = FeatureFusion(256, 256)
        self.conv_out = ParsingOutput(256, 256, classes)
        self.conv_out16 = ParsingOutput(128, 64, classes)
        self.conv_out32 = ParsingOutput(128, 64, classes)

    def forward(self, x):
        f8, cp8, _ = self.cp(x)
        out = self.conv_out(self.ffm(f8, cp8))
        return F.interpolate(out, size=x.shape[2:], mode="bilinear", align_corners=True)

"""dlib's face ResNet run with numpy: the same descriptor, its products in numpy's BLAS.

The dlib-bin wheel computes the network without BLAS (about 78 ms a face here); numpy's
wheel ships OpenBLAS, which does the same convolutions as matrix products in a fraction
of that (docs/performance.md). The layers are dlib's (facefleet.face.resnet_weights), run
in float32 as dlib does; activations are kept channels first, then faces, rows, columns,
so each convolution is one product of its filters with the columns of its input
(im2col), for every face of a batch at once.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import numpy.typing as npt

from facefleet.face.resnet_weights import (
    AddPrev,
    Affine,
    Conv,
    Dense,
    Layer,
    Pool,
    Relu,
    ResNet,
    Skip,
    Tag,
)

Array = npt.NDArray[np.float32]


def _fold(layers: tuple[Layer, ...]) -> list[Layer]:
    """Fold each convolution's following affine layer into its filters and bias, and its
    following relu into it: fewer passes over the activations, the same function."""
    folded: list[Layer] = []
    for layer in layers:
        previous = folded[-1] if folded else None
        if isinstance(layer, Affine) and isinstance(previous, Conv) and not previous.relu:
            bias = previous.bias if previous.bias is not None else np.zeros_like(layer.gamma)
            folded[-1] = replace(
                previous,
                weight=np.ascontiguousarray(previous.weight * layer.gamma[:, None]),
                bias=(bias * layer.gamma + layer.beta).astype(np.float32),
            )
        elif isinstance(layer, Relu) and isinstance(previous, Conv):
            folded[-1] = replace(previous, relu=True)
        else:
            folded.append(layer)
    return folded


def _conv(x: Array, conv: Conv) -> Array:
    channels, faces, rows, cols = x.shape
    k, s, p = conv.kernel, conv.stride, conv.padding
    if p:
        x = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    out_rows, out_cols = (rows + 2 * p - k) // s + 1, (cols + 2 * p - k) // s + 1
    # im2col: row (channel, dy, dx) of the matrix holds that input pixel of every output.
    columns = np.empty((channels, k, k, faces, out_rows, out_cols), dtype=np.float32)
    row_end, col_end = s * (out_rows - 1) + 1, s * (out_cols - 1) + 1
    for dy in range(k):
        for dx in range(k):
            columns[:, dy, dx] = x[:, :, dy : dy + row_end : s, dx : dx + col_end : s]
    out = conv.weight @ columns.reshape(channels * k * k, -1)
    if conv.bias is not None:
        out += conv.bias[:, None]
    if conv.relu:
        np.maximum(out, 0, out=out)
    return out.reshape(-1, faces, out_rows, out_cols)


def _pool(x: Array, pool: Pool) -> Array:
    if pool.size == 0:  # avg_pool_everything
        mean: Array = x.mean(axis=(2, 3), keepdims=True, dtype=np.float32)
        return mean
    if pool.padding:
        raise ValueError("padded pooling is not part of this network")
    k, s = pool.size, pool.stride
    rows, cols = x.shape[2:]
    out_rows, out_cols = (rows - k) // s + 1, (cols - k) // s + 1
    row_end, col_end = s * (out_rows - 1) + 1, s * (out_cols - 1) + 1
    windows = [
        x[:, :, dy : dy + row_end : s, dx : dx + col_end : s] for dy in range(k) for dx in range(k)
    ]
    out = windows[0].copy()
    for window in windows[1:]:
        if pool.kind == "max":
            np.maximum(out, window, out=out)
        else:
            out += window
    if pool.kind == "avg":
        out *= np.float32(1 / (k * k))
    return out


def _add(a: Array, b: Array) -> Array:
    if a.shape == b.shape:
        return a + b
    # dlib adds tensors of different sizes as if the smaller were zero-padded (the
    # downsampling blocks meet their shortcut at 3x3 against 4x4 planes).
    shape = tuple(max(m, n) for m, n in zip(a.shape, b.shape, strict=True))
    out = np.zeros(shape, dtype=np.float32)
    out[tuple(slice(0, n) for n in a.shape)] = a
    out[tuple(slice(0, n) for n in b.shape)] += b
    return out


class NumpyResNet:
    """Face descriptors of 150x150 aligned RGB chips. Thread-safe: it keeps no state."""

    def __init__(self, net: ResNet) -> None:
        self.size = net.size
        self._mean = np.asarray(net.mean_rgb, dtype=np.float32)
        self._layers = tuple(_fold(net.layers))

    def descriptors(self, chips: npt.NDArray[np.uint8]) -> Array:
        """(faces, 128) descriptors of chips (faces, size, size, 3), RGB as dlib's."""
        if chips.ndim != 4 or chips.shape[1:] != (self.size, self.size, 3):
            raise ValueError(f"chips of shape {chips.shape}, expected (n, {self.size}, ...)")
        # input_rgb_image_sized: (pixel - mean) / 256, channels first.
        x: Array = (chips.astype(np.float32) - self._mean) * np.float32(1 / 256)
        x = np.ascontiguousarray(x.transpose(3, 0, 1, 2))
        tags: dict[int, Array] = {}
        for layer in self._layers:
            if isinstance(layer, Conv):
                x = _conv(x, layer)
            elif isinstance(layer, Affine):
                x = x * layer.gamma[:, None, None, None] + layer.beta[:, None, None, None]
            elif isinstance(layer, Relu):
                x = np.maximum(x, 0)
            elif isinstance(layer, Pool):
                x = _pool(x, layer)
            elif isinstance(layer, Tag):
                tags[layer.id] = x
            elif isinstance(layer, Skip):
                x = tags[layer.id]
            elif isinstance(layer, AddPrev):
                x = _add(x, tags[layer.id])
            elif isinstance(layer, Dense):
                x = (x.reshape(x.shape[0], x.shape[1]).T @ layer.weight).astype(np.float32)
        return np.ascontiguousarray(x, dtype=np.float32)


__all__ = ["NumpyResNet"]

"""dlib's face-recognition ResNet, read from the file dlib serializes it to.

dlib_face_recognition_resnet_model_v1.dat (in face_recognition_models) is dlib's
serialization of the network type ``anet_type`` of dlib's dnn_face_recognition_ex.cpp.
The network's shape lives in that C++ type, not in the file: the file holds, for each
layer from the outermost in, a version number, then each layer's parameters from the
innermost out. ``LAYERS`` writes the type out as a list; ``load_resnet`` reads the file
against it, checking every layer's version tag, kernel, stride and padding, and returns
the layers in the order they run.

dlib's encodings (dlib/serialize.h): an integer is a control byte (low nibble: byte count,
0x80: negative) and that many little-endian bytes; a string its length then its bytes; a
bool the character '0' or '1'; a float a mantissa and a power of two (two integers); a
tensor a version (2), four dimensions and little-endian float32 values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float32]


class WeightsError(ValueError):
    """The file is not the network this module knows (truncated, another net, corrupt)."""


# -- the layers, as they run ------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Conv:
    weight: Array  # (filters, channels * rows * cols): the im2col matrix
    bias: Array | None  # (filters,)
    kernel: int
    stride: int
    padding: int
    relu: bool  # dlib fuses a following relu into the convolution when it optimises a net


@dataclass(frozen=True, eq=False)
class Affine:
    """Batch normalisation folded into a scale and a shift per channel."""

    gamma: Array  # (channels,)
    beta: Array


@dataclass(frozen=True)
class Relu:
    pass


@dataclass(frozen=True)
class Pool:
    kind: Literal["max", "avg"]
    size: int  # 0: the whole plane (avg_pool_everything)
    stride: int
    padding: int


@dataclass(frozen=True)
class Tag:
    """Remember the current output as tag ``id``."""

    id: int


@dataclass(frozen=True)
class Skip:
    """Continue from the output remembered as tag ``id``."""

    id: int


@dataclass(frozen=True)
class AddPrev:
    """Add the output remembered as tag ``id`` (dlib zero-pads the smaller of the two)."""

    id: int


@dataclass(frozen=True, eq=False)
class Dense:
    weight: Array  # (inputs, outputs)


Layer = Conv | Affine | Relu | Pool | Tag | Skip | AddPrev | Dense


@dataclass(frozen=True, eq=False)
class ResNet:
    mean_rgb: tuple[float, float, float]  # subtracted from the chip, then divided by 256
    size: int  # the chip's side
    layers: tuple[Layer, ...]  # in the order they run


# -- the network's type, outermost layer first -----------------------------------------


@dataclass(frozen=True)
class _Spec:
    kind: Literal["con", "affine", "relu", "max_pool", "avg_pool", "add_prev", "fc", "tag", "skip"]
    filters: int = 0  # con, fc: outputs
    kernel: int = 0  # con, pools (0: the whole plane)
    stride: int = 1
    id: int = 0  # tag, skip, add_prev


def _con(filters: int, kernel: int, stride: int) -> _Spec:
    return _Spec("con", filters=filters, kernel=kernel, stride=stride)


def _block(filters: int, stride: int) -> list[_Spec]:
    affine = _Spec("affine")
    return [affine, _con(filters, 3, 1), _Spec("relu"), affine, _con(filters, 3, stride)]


def _ares(filters: int) -> list[_Spec]:
    """relu<add_prev1<block<N,affine,1,tag1<SUBNET>>>>"""
    return [_Spec("relu"), _Spec("add_prev", id=1), *_block(filters, 1), _Spec("tag", id=1)]


def _ares_down(filters: int) -> list[_Spec]:
    """relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,affine,2,tag1<SUBNET>>>>>>>"""
    return [
        _Spec("relu"),
        _Spec("add_prev", id=2),
        _Spec("avg_pool", kernel=2, stride=2),
        _Spec("skip", id=1),
        _Spec("tag", id=2),
        *_block(filters, 2),
        _Spec("tag", id=1),
    ]


LAYERS: tuple[_Spec, ...] = (
    _Spec("fc", filters=128),
    _Spec("avg_pool", kernel=0, stride=1),
    *_ares_down(256),  # alevel0
    *_ares(256),  # alevel1
    *_ares(256),
    *_ares_down(256),
    *_ares(128),  # alevel2
    *_ares(128),
    *_ares_down(128),
    *(_ares(64) * 3),  # alevel3
    *_ares_down(64),
    *(_ares(32) * 3),  # alevel4
    _Spec("max_pool", kernel=3, stride=2),
    _Spec("relu"),
    _Spec("affine"),
    _con(32, 7, 2),
)
INPUT_SIZE = 150


def _padding(spec: _Spec) -> int:
    # dlib's default for con_ and the pools: half the kernel at stride 1, else none.
    return spec.kernel // 2 if spec.stride == 1 else 0


# -- dlib's encodings -------------------------------------------------------------------


class _Reader:
    def __init__(self, data: bytes, name: str) -> None:
        self._data = data
        self._name = name
        self.position = 0

    def error(self, message: str) -> WeightsError:
        return WeightsError(f"{self._name}: {message} (at byte {self.position})")

    def _take(self, count: int) -> bytes:
        end = self.position + count
        if end > len(self._data):
            raise self.error(f"the file ends early: {count} more bytes expected")
        chunk = self._data[self.position : end]
        self.position = end
        return chunk

    def integer(self) -> int:
        control = self._take(1)[0]
        size = control & 0x0F
        if size == 0 or size > 8 or control & 0x70:
            raise self.error(f"not an integer (control byte {control:#04x})")
        value = int.from_bytes(self._take(size), "little")
        return -value if control & 0x80 else value

    def string(self) -> str:
        size = self.integer()
        if not 0 <= size <= 256:
            raise self.error(f"not a version tag (length {size})")
        return self._take(size).decode("latin-1")

    def boolean(self) -> bool:
        char = self._take(1)
        if char not in (b"0", b"1"):
            raise self.error(f"not a bool ({char!r})")
        return char == b"1"

    def real(self) -> float:
        mantissa, exponent = self.integer(), self.integer()
        if exponent >= 32000:  # dlib's codes for inf, -inf and nan
            raise self.error("a parameter is not finite")
        return math.ldexp(mantissa, exponent)

    def tensor(self) -> Array:
        if (version := self.integer()) != 2:
            raise self.error(f"unexpected tensor version {version}")
        shape = tuple(self.integer() for _ in range(4))
        if min(shape) < 0:
            raise self.error(f"negative tensor size {shape}")
        count = math.prod(shape)
        values = np.frombuffer(self._take(4 * count), dtype="<f4")
        return values.astype(np.float32).reshape(shape)  # a native, aligned copy

    def alias_shape(self) -> tuple[int, ...]:
        if (version := self.integer()) != 1:
            raise self.error(f"unexpected alias_tensor version {version}")
        return tuple(self.integer() for _ in range(4))

    def expect(self, what: str, *versions: str) -> str:
        version = self.string()
        if version not in versions:
            raise self.error(f"expected {what} ({' or '.join(versions)}), found {version!r}")
        return version

    def expect_int(self, what: str, expected: int) -> None:
        if (value := self.integer()) != expected:
            raise self.error(f"{what} is {value}, expected {expected}")

    def at_end(self) -> bool:
        return self.position == len(self._data)


# -- each layer's parameters ------------------------------------------------------------


def _read_con(reader: _Reader, spec: _Spec) -> Conv:
    version = reader.expect("a convolution", "con_4", "con_5", "con_6")
    params = reader.tensor().ravel()
    reader.expect_int("the number of filters", spec.filters)
    for what in ("filter rows", "filter columns"):
        reader.expect_int(what, spec.kernel)
    for what in ("stride y", "stride x"):
        reader.expect_int(what, spec.stride)
    for what in ("padding y", "padding x"):
        reader.expect_int(what, _padding(spec))
    filters = reader.alias_shape()
    reader.alias_shape()  # the biases': (1, filters, 1, 1)
    for _ in range(4):  # learning-rate and weight-decay multipliers
        reader.real()
    use_bias = reader.boolean() if version in ("con_5", "con_6") else True
    relu = reader.boolean() if version == "con_6" else False
    if filters[0] != spec.filters or filters[2:] != (spec.kernel, spec.kernel):
        expected = f"{spec.filters} x k x {spec.kernel} x {spec.kernel}"
        raise reader.error(f"filters of shape {filters}, expected {expected}")
    size = math.prod(filters)
    if params.size != size + (spec.filters if use_bias else 0):
        raise reader.error(f"{params.size} convolution parameters for filters {filters}")
    weight = np.ascontiguousarray(params[:size].reshape(spec.filters, -1))
    bias = params[size:].copy() if use_bias else None
    return Conv(weight, bias, spec.kernel, spec.stride, _padding(spec), relu)


def _read_affine(reader: _Reader) -> Affine | None:
    version = reader.expect("an affine layer", "affine_", "affine_2")
    params = reader.tensor().ravel()
    gamma, beta = reader.alias_shape(), reader.alias_shape()
    if (mode := reader.integer()) != 0:  # CONV_MODE: one scale per channel
        raise reader.error(f"affine layer in mode {mode}, expected per-channel (0)")
    disabled = reader.boolean() if version == "affine_2" else False
    channels = math.prod(gamma)
    if gamma != beta or params.size != 2 * channels:
        raise reader.error(f"{params.size} affine parameters for gamma {gamma}")
    if disabled:
        return None
    return Affine(params[:channels].copy(), params[channels:].copy())


def _read_pool(reader: _Reader, spec: _Spec) -> Pool:
    kind: Literal["max", "avg"] = "max" if spec.kind == "max_pool" else "avg"
    reader.expect(f"a {kind} pool", f"{kind}_pool_2")
    for what in ("pool rows", "pool columns"):
        reader.expect_int(what, spec.kernel)
    for what in ("stride y", "stride x"):
        reader.expect_int(what, spec.stride)
    for what in ("padding y", "padding x"):
        reader.expect_int(what, _padding(spec))
    return Pool(kind, spec.kernel, spec.stride, _padding(spec))


def _read_fc(reader: _Reader, spec: _Spec) -> Dense:
    version = reader.expect("a fully connected layer", "fc_2", "fc_3")
    reader.expect_int("the number of outputs", spec.filters)
    inputs = reader.integer()
    params = reader.tensor().ravel()
    weights = reader.alias_shape()
    reader.alias_shape()  # the biases'
    if (mode := reader.integer()) != 1:  # FC_NO_BIAS
        raise reader.error(f"fully connected layer with bias mode {mode}, expected none (1)")
    for _ in range(4):
        reader.real()
    if version == "fc_3":
        reader.boolean()  # use_bias: moot without biases
    if weights[:2] != (inputs, spec.filters) or params.size != inputs * spec.filters:
        raise reader.error(f"{params.size} weights for {inputs} inputs x {spec.filters} outputs")
    return Dense(np.ascontiguousarray(params.reshape(inputs, spec.filters)))


def _read_details(reader: _Reader, spec: _Spec) -> Layer | None:
    if spec.kind == "con":
        return _read_con(reader, spec)
    if spec.kind == "affine":
        return _read_affine(reader)
    if spec.kind == "relu":
        if reader.expect("a relu", "relu_", "relu_2") == "relu_2" and reader.boolean():
            return None  # disabled
        return Relu()
    if spec.kind in ("max_pool", "avg_pool"):
        return _read_pool(reader, spec)
    if spec.kind == "add_prev":
        reader.expect("an add_prev layer", "add_prev_")
        return AddPrev(spec.id)
    return _read_fc(reader, spec)


def _read_layer_state(reader: _Reader, version: int, on_input: bool) -> None:
    """What add_layer keeps after its layer's parameters: training state, unused here."""
    for _ in range(3):  # setup called, gradient stale, output and gradient disabled
        reader.boolean()
    reader.tensor()  # x_grad
    reader.tensor()  # cached_output
    if on_input:
        reader.tensor()  # grad_final
        if version >= 3:
            reader.integer()  # sample expansion factor
    elif version >= 2:
        reader.tensor()  # params_grad


def _read_input(reader: _Reader) -> tuple[float, float, float]:
    reader.expect("the input layer", "input_rgb_image_sized")
    mean = (reader.real(), reader.real(), reader.real())
    reader.expect_int("the input rows", INPUT_SIZE)
    reader.expect_int("the input columns", INPUT_SIZE)
    return mean


def parse_resnet(data: bytes, name: str = "the ResNet file") -> ResNet:
    reader = _Reader(data, name)
    if (version := reader.integer()) != 1:
        raise reader.error(f"not a dlib network (add_loss_layer version {version})")
    if reader.expect("the metric loss", "loss_metric_", "loss_metric_2") == "loss_metric_2":
        reader.real(), reader.real()  # margin, distance threshold: training only
    # Versions of every layer, outermost first, down to the layer on the input.
    versions: list[int] = []
    for spec in LAYERS:
        version = reader.integer()
        wrapper = spec.kind in ("tag", "skip")
        allowed = (1,) if wrapper else (2, 3) if spec is LAYERS[-1] else (1, 2)
        if version not in allowed:
            raise reader.error(f"{spec.kind} layer of version {version}, expected {allowed}")
        versions.append(version)
    mean = _read_input(reader)
    layers: list[Layer] = []
    # Then the parameters, innermost first: the order the layers run in.
    for index in range(len(LAYERS) - 1, -1, -1):
        spec = LAYERS[index]
        if spec.kind == "tag":
            layers.append(Tag(spec.id))
            continue
        if spec.kind == "skip":
            layers.append(Skip(spec.id))
            continue
        layer = _read_details(reader, spec)
        _read_layer_state(reader, versions[index], on_input=index == len(LAYERS) - 1)
        if layer is not None:
            layers.append(layer)
    if not reader.at_end():
        raise reader.error("unexpected data after the network")
    return ResNet(mean, INPUT_SIZE, tuple(layers))


def load_resnet(path: Path) -> ResNet:
    """The network in ``path``; WeightsError if it is not dlib's face ResNet, whole."""
    return parse_resnet(path.read_bytes(), path.name)


__all__ = [
    "LAYERS",
    "AddPrev",
    "Affine",
    "Conv",
    "Dense",
    "Layer",
    "Pool",
    "Relu",
    "ResNet",
    "Skip",
    "Tag",
    "WeightsError",
    "load_resnet",
    "parse_resnet",
]

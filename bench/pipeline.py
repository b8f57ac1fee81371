"""Face pipeline benchmark: camera density against the bare every-frame dlib loop, a static
camera's cost, recall on small faces, and the detectors compared.

- Baseline, in this run: the bare every-frame loop (HOG on every frame, landmarks and a
  descriptor for every face) over the fixture clip's frames at 5 fps, decoded once. Its
  cameras per core = 1 / (CPU seconds it spends on one second of a 5 fps camera, plus the
  decoding of that second at the clip's own rate).
- Density: N copies of the clip played as live cameras (FrameSource, looping at 29.97 fps,
  5 fps processed) through the worker's pipeline (FaceCameraRunner, the default compute
  pool) for --seconds. Cores used = CPU of the worker and its compute processes / wall
  time; cameras per core = N / cores used, counted only if under 1% of frames were dropped
  by the budget or late and every camera kept 5 fps. Run for each detector, each embedder
  (numpy's ResNet, dlib's) and each dlib build found: dlib-bin, and the OpenBLAS wheel
  `make dlib-blas` leaves in DLIB_WHEELS (~/.cache/facefleet/wheels). The target is
  judged on the defaults' figure (dlib-bin, the default detector and embedder); every
  configuration's is printed.
- Embedding CPU per face, on the clip's faces: the landmarks, then the descriptor by each
  embedder and build.
- Static scene: one camera showing a still picture: its share of a core.
- Recall: fixture faces composited at 40/60/80/120 px into a moving 1920x1080 stream, the
  people sighted and any wrong person, at the default settings.
- Detectors: HOG, YuNet-then-HOG and YuNet on the same crops, each at the scale that finds
  40 px faces: recall and CPU on the composites, faces found and CPU on the clip.

    .venv/bin/python bench/pipeline.py            # exits 1 below target
    .venv/bin/python bench/pipeline.py --cameras 6 --seconds 30
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import psutil

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / ".." / "shared" / "fixtures"
VIDEO = FIXTURES / "video" / "two_people_clip.mp4"
WHEELS = Path(os.environ.get("DLIB_WHEELS", Path.home() / ".cache" / "facefleet" / "wheels"))
FPS = 5.0
TARGET_CAMERAS_PER_CORE = 10.0
TARGET_STATIC_SHARE = 0.05
MAX_DROPPED = 0.01
CLIP_SECONDS = 275 / 29.97
PEOPLE = ["alex_lacamoire", "barack_obama", "joe_biden", "kit_harington"]
PEOPLE += ["lin_manuel_miranda", "rose_leslie"]
PROBES = {p: f"{p}_2.jpg" for p in ("barack_obama", "joe_biden", "kit_harington", "rose_leslie")}
SIZES = (40, 60, 80, 120)
Image = npt.NDArray[np.uint8]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", type=int, default=6, help="concurrent copies of the clip")
    parser.add_argument("--seconds", type=float, default=30.0, help="density run length")
    parser.add_argument("--density-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--embedding-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--dlib-dir", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def clip_frames(fps: float) -> tuple[list[Image], float]:
    """One pass of the clip at ``fps`` (BGR), and its decoding CPU per second of video."""
    capture = cv2.VideoCapture(str(VIDEO))
    rate = capture.get(cv2.CAP_PROP_FPS)
    frames, index, due = [], 0, 0.0
    started = time.process_time()
    while True:
        ok, image = capture.read()
        if not ok:
            break
        if index / rate + 1e-9 >= due:
            frames.append(np.asarray(image, dtype=np.uint8))
            due += 1 / fps
        index += 1
    decode_per_second = (time.process_time() - started) / (index / rate)
    return frames, decode_per_second


def gallery() -> Any:
    """The fixture people enrolled as the control plane enrolls them."""
    import base64

    from facefleet.face.engine import FaceEngine
    from facefleet.face.images import load_image_rgb
    from facefleet.worker.worker_client import GalleryData

    engine = FaceEngine(upsample=1)
    rows = []
    for person in PEOPLE:
        photo = next((FIXTURES / "faces" / "enroll").glob(f"{person}.*"))
        [face] = [f for f in engine.analyze(load_image_rgb(photo.read_bytes())) if f.score >= 0.5]
        rows.append(face.embedding)
    return GalleryData(
        version=1,
        model="dlib_resnet_v1",
        threshold=0.6,
        dim=128,
        person_ids=list(range(1, len(PEOPLE) + 1)),
        people={str(i): p for i, p in enumerate(PEOPLE, 1)},
        embeddings_b64=base64.b64encode(np.stack(rows).astype("<f4").tobytes()).decode(),
    )


class Recorder:
    def __init__(self, data: Any) -> None:
        self.data = data
        self.posted: list[Any] = []

    async def get_gallery(self) -> Any:
        return self.data

    async def report_sightings(self, camera_id: int, epoch: int, sightings: Any) -> Any:
        from facefleet.worker.worker_client import SightingsAccepted

        self.posted.extend(sightings)
        return SightingsAccepted(accepted=len(sightings), ids=[])


def bare_loop_cpu_per_frame(frames: list[Image]) -> tuple[float, float, float]:
    """CPU seconds per frame of the bare loop (best of 3), and its detect/embed split."""
    import dlib
    import face_recognition_models as models

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(models.pose_predictor_five_point_model_location())
    encoder = dlib.face_recognition_model_v1(models.face_recognition_model_location())
    rgb = [np.ascontiguousarray(cv2.cvtColor(f, cv2.COLOR_BGR2RGB)) for f in frames]
    best, detect, embed, faces = float("inf"), 0.0, 0.0, 0
    for _ in range(3):
        started = time.process_time()
        for image in rgb:
            t0 = time.process_time()
            rects = detector(image, 0)
            t1 = time.process_time()
            shapes = dlib.full_object_detections()
            for rect in rects:
                shapes.append(predictor(image, rect))
            if len(shapes):
                encoder.compute_face_descriptor(image, shapes)
            detect += t1 - t0
            embed += time.process_time() - t1
            faces += len(rects)
        best = min(best, (time.process_time() - started) / len(rgb))
    return best, 1000 * detect / (3 * len(rgb)), 1000 * embed / max(1, faces)


def embedding_cpu_per_face(frames: list[Image]) -> dict[str, Any]:
    """CPU ms per face of the landmarks and of each descriptor (best of 3), on the faces
    HOG finds in the clip, one BLAS thread, as in a compute process."""
    import dlib

    from facefleet.face.embedder import FaceEmbedder, face_crop
    from facefleet.face.engine import Box

    embedders = {name: FaceEmbedder(name) for name in ("numpy", "dlib")}

    detector = dlib.get_frontal_face_detector()
    crops = []
    for frame in frames:
        rgb = np.ascontiguousarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        for rect in detector(rgb, 0):
            box = Box(rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1)
            crops.append(face_crop(frame, box))
    out: dict[str, Any] = {"faces": len(crops), "build": embedders["dlib"].description}
    for name, embedder in embedders.items():
        if embedder.descriptor_name != name:
            continue  # numpy's fell back to dlib's: nothing of its own to time
        best = float("inf")
        for _ in range(3):
            started = time.process_time()
            for crop in crops:
                embedder.embed_crops([crop])
            best = min(best, (time.process_time() - started) / max(1, len(crops)))
        out[name] = 1000 * best
    predictor = embedders["dlib"]._predictor()
    started = time.process_time()
    for crop_bgr, box in crops:
        rgb_crop = np.ascontiguousarray(cv2.cvtColor(crop_bgr, cv2.COLOR_BGR2RGB))
        predictor(rgb_crop, dlib.rectangle(box.left, box.top, box.right - 1, box.bottom - 1))
    out["landmarks"] = 1000 * (time.process_time() - started) / max(1, len(crops))
    return out


def embedding_with(wheel: Path | None) -> dict[str, Any]:
    """embedding_cpu_per_face() in a fresh interpreter, the BLAS wheel's dlib first."""
    command = [sys.executable, __file__, "--embedding-only"]
    with tempfile.TemporaryDirectory() as tmp:
        if wheel is not None:
            zipfile.ZipFile(wheel).extractall(tmp)
            command += ["--dlib-dir", tmp]
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
        out = subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


async def run_cameras(urls: list[str], seconds: float, data: Any) -> dict[str, Any]:
    """The worker's pipeline on ``urls`` for ``seconds``: CPU, frames and drops."""
    from facefleet.worker.config import WorkerSettings
    from facefleet.worker.local_store import LocalStore
    from facefleet.worker.pipeline.compute import ProcessCompute
    from facefleet.worker.pipeline.face_pipeline import compute_spec, processor_config
    from facefleet.worker.pipeline.face_processor import FaceCameraRunner, FaceProcessor
    from facefleet.worker.pipeline.gallery_store import GalleryStore
    from facefleet.worker.pipeline.reporter import SightingOutbox
    from facefleet.worker.pipeline.source import FrameSource

    settings = WorkerSettings()
    pool = ProcessCompute(compute_spec(settings))
    await asyncio.to_thread(pool.start)
    recorder = Recorder(data)
    store = GalleryStore(recorder.get_gallery, "dlib_resnet_v1")
    await store.reload()
    runners = []
    for camera, url in enumerate(urls, 1):
        reporter = SightingOutbox(LocalStore(":memory:"), recorder).reporter(camera, 1)
        processor = FaceProcessor(
            pool.camera(), store, reporter, config=processor_config(settings), build=pool.build
        )
        runners.append(FaceCameraRunner(FrameSource(url), processor, FPS))
    procs = [psutil.Process()] + [psutil.Process(c.process.pid) for c in pool._children]
    tasks = []
    for runner in runners:  # started over one pass of the clip: not all at the same scene
        tasks.append(asyncio.create_task(runner.run()))
        await asyncio.sleep(CLIP_SECONDS / len(runners))
    await asyncio.sleep(3.0)  # warm-up: streams open, first full-frame searches
    before = [r.metrics() for r in runners]
    cpu0, wall0 = [_cpu(p) for p in procs], time.perf_counter()
    await asyncio.sleep(seconds)
    used = [_cpu(p) - c for p, c in zip(procs, cpu0, strict=True)]
    cpu, wall = sum(used), time.perf_counter() - wall0
    after = [r.metrics() for r in runners]
    for runner in runners:
        await runner.stop(3.0)
    await asyncio.gather(*tasks, return_exceptions=True)
    pool.stop()
    processed = [
        int(a["frames_processed"]) - int(b["frames_processed"])
        for a, b in zip(after, before, strict=True)
    ]
    dropped = sum(
        int(a[key]) - int(b[key])
        for a, b in zip(after, before, strict=True)
        for key in ("frames_dropped_budget", "frames_late")
    )
    embedded = sum(
        int(a["faces_embedded"]) - int(b["faces_embedded"])
        for a, b in zip(after, before, strict=True)
    )
    return {
        "build": pool.build,
        "embedder": pool.embedder,
        "cores_used": cpu / wall,
        "worker_process_cores": used[0] / wall,  # capture, decoding, tracker, event loop
        "min_fps": min(processed) / wall,
        "dropped": dropped / max(1, dropped + sum(processed)),
        "embeddings_per_camera_second": embedded / wall / len(urls),
        "errors": sum(int(a["process_errors"]) for a in after),
    }


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def density(args: argparse.Namespace) -> dict[str, Any]:
    result = asyncio.run(
        run_cameras([f"file://{VIDEO.resolve()}"] * args.cameras, args.seconds, gallery())
    )
    result["cameras_per_core"] = args.cameras / result["cores_used"]
    return result


def density_with(
    wheel: Path | None, detector: str, embedder: str, args: argparse.Namespace
) -> dict[str, Any]:
    """density() in a fresh interpreter, with the BLAS wheel's dlib first on the path."""
    command = [sys.executable, __file__, "--density-only", "--cameras", str(args.cameras)]
    command += ["--seconds", str(args.seconds)]
    env = {
        **os.environ,
        "FACEFLEET_WORKER_FACE_DETECTOR": detector,
        "FACEFLEET_WORKER_FACE_EMBEDDER": embedder,
    }
    with tempfile.TemporaryDirectory() as tmp:
        if wheel is not None:
            zipfile.ZipFile(wheel).extractall(tmp)
            command += ["--dlib-dir", tmp]
        out = subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def static_share(seconds: float) -> float:
    """Share of a core one camera showing a still picture costs (30 fps decoded, 5 fps in)."""
    frames, _ = clip_frames(FPS)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "still.mp4"  # inter-frame coded, as camera streams are
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 29.97, (640, 360))
        for _ in range(300):
            writer.write(frames[-1])
        writer.release()
        result = asyncio.run(run_cameras([f"file://{path}"], seconds, gallery()))
    return float(result["cores_used"])


def sprites() -> list[Any]:
    from facefleet.face.engine import FaceEngine
    from facefleet.face.images import load_image_rgb
    from facefleet.face.synthetic_stream import cut_sprite

    engine = FaceEngine(upsample=1)
    out = []
    for person, photo in PROBES.items():
        rgb = load_image_rgb((FIXTURES / "faces" / "probe" / photo).read_bytes())
        [face] = [f for f in engine.analyze(rgb) if f.score >= 0.5]
        bgr = np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), dtype=np.uint8)
        out.append(cut_sprite(person, bgr, face.box))
    return out


async def recall(size: int, data: Any) -> tuple[set[str], set[str]]:
    """People sighted in the composite at ``size`` px, and sightings of anyone else."""
    from facefleet.face.synthetic_stream import CompositeStream
    from facefleet.worker.config import WorkerSettings
    from facefleet.worker.local_store import LocalStore
    from facefleet.worker.pipeline.compute import ThreadCompute
    from facefleet.worker.pipeline.face_pipeline import compute_spec, processor_config
    from facefleet.worker.pipeline.face_processor import FaceProcessor
    from facefleet.worker.pipeline.gallery_store import GalleryStore
    from facefleet.worker.pipeline.reporter import SightingOutbox
    from facefleet.worker.pipeline.source import Frame

    settings = WorkerSettings()
    stream = CompositeStream(sprites(), size, fps=FPS)
    recorder = Recorder(data)
    # A wall clock of the stream's own time, from a real date: sightings must be after 1970
    # even though a frame's processing latency is taken off its capture time.
    start = time.time()
    clock = {"t": start}
    processor = FaceProcessor(
        ThreadCompute(compute_spec(settings), 1).camera(),
        GalleryStore(recorder.get_gallery, "dlib_resnet_v1"),
        SightingOutbox(LocalStore(":memory:"), recorder).reporter(1, 1),
        config=processor_config(settings),
        wall_clock=lambda: clock["t"],
    )
    await processor.reload_gallery()
    for index in range(15):
        clock["t"] = start + index / FPS
        await processor.process(Frame(index + 1, stream.frame(index), time.monotonic()))
        await processor.idle()
    await processor.aclose()
    names = {str(i): p for i, p in enumerate(PEOPLE, 1)}
    known = {names[str(s.person_id)] for s in recorder.posted if s.person_id is not None}
    return known & set(PROBES), known - set(PROBES)


def compare_detectors(clip: list[Image]) -> None:
    """Each detector on the same crops, each at the scale that finds 40 px faces with it."""
    from facefleet.face.detectors import DetectorName, make_detector, yunet_available
    from facefleet.face.synthetic_stream import CompositeStream

    names: list[DetectorName] = ["hog", "yunet-hog", "yunet"] if yunet_available() else ["hog"]
    print("detectors, each at the scale that finds 40 px faces: faces found / false / CPU")
    for name in names:
        detector = make_detector(name)
        detector.detect(clip[len(clip) // 2])  # a frame with a face: models loaded, untimed
        scale = min(2.0, detector.min_face / 40)
        row = f"  {name:<9} x{scale:.2f}"
        for size in SIZES:
            stream = CompositeStream(sprites(), size, fps=FPS)
            found, total, false, cpu = 0, 0, 0, 0.0
            for index in range(10):
                frame = stream.frame(index)
                for box in stream.truth(index).values():
                    pad = round(1.5 * box.width)
                    left, top = max(0, box.left - pad), max(0, box.top - pad)
                    region = frame[top : box.bottom + pad, left : box.right + pad]
                    crop: Image = np.ascontiguousarray(
                        cv2.resize(region, None, fx=scale, fy=scale), dtype=np.uint8
                    )
                    started = time.process_time()
                    detections = detector.detect(crop)
                    cpu += time.process_time() - started
                    hits = [
                        d
                        for d in detections
                        if abs(
                            (d.box.left + d.box.right) / 2 / scale
                            + left
                            - (box.left + box.right) / 2
                        )
                        < box.width / 2
                    ]
                    total, found, false = (
                        total + 1,
                        found + bool(hits),
                        false + len(detections) - len(hits),
                    )
            row += f" | {size}px {found}/{total} {false} {1000 * cpu / total:.1f}ms"
        faces, cpu = 0, 0.0
        for frame in clip:
            image = cv2.resize(frame, None, fx=scale, fy=scale)
            started = time.process_time()
            faces += len(detector.detect(np.ascontiguousarray(image)))
            cpu += time.process_time() - started
        print(row + f" | clip {faces} faces {1000 * cpu / len(clip):.1f}ms per frame")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.dlib_dir is not None:
        sys.path.insert(0, str(args.dlib_dir))
    if args.density_only:
        print(json.dumps(density(args)))
        return 0
    if args.embedding_only:
        print(json.dumps(embedding_cpu_per_face(clip_frames(FPS)[0])))
        return 0
    if not VIDEO.is_file():
        raise SystemExit(f"fixture video not found: {VIDEO} (the shared/fixtures folder)")
    from facefleet.face.build import dlib_build

    print(f"{os.cpu_count()} cpus, load average {os.getloadavg()[0]:.2f}; {dlib_build()}")
    clip, decode = clip_frames(FPS)
    per_frame, detect_ms, embed_ms = bare_loop_cpu_per_frame(clip)
    baseline = 1 / (FPS * per_frame + decode)
    print(
        f"bare every-frame dlib loop: {1000 * per_frame:.1f} ms CPU per frame (HOG "
        f"{detect_ms:.1f} ms, {embed_ms:.1f} ms per face embedded), decoding {1000 * decode:.1f} "
        f"ms per second of video: {baseline:.2f} cameras per core"
    )

    from facefleet.face.detectors import yunet_available
    from facefleet.worker.config import WorkerSettings
    from facefleet.worker.pipeline.face_pipeline import detector_name

    wheels = sorted(WHEELS.glob("dlib-*.whl"))
    for wheel in [None, *wheels[-1:]]:
        e = embedding_with(wheel)
        descriptors = ", ".join(
            f"{name} {e[name]:.1f} ms" for name in ("numpy", "dlib") if name in e
        )
        print(
            f"embedding CPU per face ({int(e['faces'])} clip faces, {e['build']}): landmarks "
            f"alone {e['landmarks']:.1f} ms; landmarks, chip and descriptor: {descriptors}"
        )

    defaults = WorkerSettings()
    default = (None, detector_name(defaults), defaults.face_embedder)
    detectors = ["hog", "yunet-hog", "yunet"] if yunet_available() else ["hog"]
    runs = [
        (wheel, detector, embedder)
        for wheel in [None, *wheels[-1:]]
        for embedder in ("numpy", "dlib")
        for detector in detectors
    ]
    runs.sort(key=lambda run: run != default)  # the defaults first
    at_defaults, best = 0.0, 0.0
    for wheel, detector, embedder in runs:
        r = density_with(wheel, detector, embedder, args)
        ok = r["dropped"] < MAX_DROPPED and r["min_fps"] >= 0.95 * FPS and not r["errors"]
        per_core = r["cameras_per_core"]
        best = max(best, per_core if ok else 0.0)
        if (wheel, detector, embedder) == default:
            at_defaults = per_core if ok else 0.0
        print(
            f"pipeline, {args.cameras} cameras, {detector}, embeddings {r['embedder']}, "
            f"{r['build']}{' (the defaults)' if (wheel, detector, embedder) == default else ''}: "
            f"{r['cores_used']:.2f} cores, {per_core:.1f} cameras per core "
            f"({per_core / baseline:.1f}x the bare loop), slowest camera "
            f"{r['min_fps']:.2f} fps, {r['dropped']:.2%} dropped, "
            f"{r['embeddings_per_camera_second']:.2f} embeddings per camera-second"
            + ("" if ok else "  (not in real time)")
        )
    if not wheels:
        print(f"no OpenBLAS wheel in {WHEELS}: `make dlib-blas` builds it once")

    static = static_share(min(args.seconds, 20.0))
    print(f"static-scene camera: {static:.1%} of a core (target < {TARGET_STATIC_SHARE:.0%})")

    data = gallery()
    recall_ok = True
    for size in SIZES:
        sighted, wrong = asyncio.run(recall(size, data))
        recall_ok &= sighted == set(PROBES) and not wrong
        print(
            f"recall at {size} px: {len(sighted)}/{len(PROBES)} people sighted, "
            f"wrong people: {sorted(wrong) or 'none'}"
        )
    compare_detectors(clip)

    print(
        f"cameras per core {at_defaults:.1f} at the defaults (target >= "
        f"{TARGET_CAMERAS_PER_CORE:g}); ratio to the bare loop {at_defaults / baseline:.2f}; "
        f"best configuration {best:.1f}"
    )
    met = at_defaults >= TARGET_CAMERAS_PER_CORE and static < TARGET_STATIC_SHARE and recall_ok
    print(f"load average at the end {os.getloadavg()[0]:.2f}; target {'met' if met else 'MISSED'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())

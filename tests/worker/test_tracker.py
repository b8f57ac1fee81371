"""The multi-face tracker on synthetic boxes and embeddings: no detector involved."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pytest

from facefleet.worker.pipeline.tracker import (
    FaceSeen,
    FaceTracker,
    Observation,
    TrackerConfig,
    TrackReport,
    iou,
)

FPS = 10
DT = 1 / FPS


@dataclass(frozen=True)
class B:
    left: int
    top: int
    right: int
    bottom: int


def box_at(x: int, y: int = 100, size: int = 80) -> B:
    return B(x, y, x + size, y + size)


class People:
    """A well-separated embedding per person, with a little noise per frame."""

    def __init__(self, seed: int = 7) -> None:
        self.rng = np.random.default_rng(seed)
        self.base: dict[str, npt.NDArray[np.float32]] = {}

    def face(self, who: str, noise: float = 0.1) -> npt.NDArray[np.float32]:
        if who not in self.base:
            vector = self.rng.normal(size=128)
            self.base[who] = (vector / np.linalg.norm(vector)).astype(np.float32)
        jitter = self.rng.normal(size=128)
        jitter *= noise / np.linalg.norm(jitter)
        return (self.base[who] + jitter).astype(np.float32)


def obs(
    people: People,
    who: str,
    box: B,
    match: str | None = "same",
    distance: float = 0.4,
    votes: bool = True,
) -> Observation:
    person = who if match == "same" else match
    return Observation(box, people.face(who), person, distance, votes)


def run(tracker: FaceTracker, frames: list[list[Observation]], start: float = 0.0) -> float:
    now = start
    for observations in frames:
        assert tracker.update(observations, now) == []
        now += DT
    return now


def by_person(reports: list[TrackReport]) -> dict[str | None, TrackReport]:
    return {r.person_id: r for r in reports}


def test_iou() -> None:
    assert iou(box_at(0), box_at(0)) == 1.0
    assert iou(box_at(0), box_at(200)) == 0.0
    assert iou(box_at(0, size=10), box_at(5, size=10)) == pytest.approx(50 / 150)


def test_two_faces_crossing_keep_their_tracks() -> None:
    people = People()
    tracker = FaceTracker()
    steps = 21
    frames = []
    for i in range(steps):
        # Lin walks right while Alex walks left: at i=10 they are at the same place.
        lin_x, alex_x = 20 * i, 400 - 20 * i
        frames.append(
            [obs(people, "alex", box_at(alex_x)), obs(people, "lin", box_at(lin_x, y=110))]
        )
    end = run(tracker, frames)
    assert len(tracker) == 2
    reports = by_person(tracker.finish())
    assert set(reports) == {"lin", "alex"}
    assert all(r.frames == steps and r.voting_frames == steps for r in reports.values())
    assert reports["lin"].track_id != reports["alex"].track_id
    assert reports["lin"].first_seen == 0.0
    assert reports["lin"].last_seen == pytest.approx(end - DT)
    assert all(r.final for r in reports.values())


def test_a_gap_longer_than_max_gap_ends_the_track() -> None:
    people = People()
    tracker = FaceTracker(TrackerConfig(max_gap=1.5))
    end = run(tracker, [[obs(people, "lin", box_at(100))] for _ in range(10)])
    # A short gap (1 s without the face) keeps the same track.
    end = run(tracker, [[obs(people, "lin", box_at(100))] for _ in range(5)], start=end + 1.0)
    assert len(tracker) == 1 and tracker.tracks[0].frames == 15
    first_id = tracker.tracks[0].track_id
    # Two seconds later the face is back: the old track ends, a new one starts.
    back = end + 2.0
    finished = tracker.update([obs(people, "lin", box_at(100))], back)
    assert [(r.track_id, r.person_id, r.frames, r.final) for r in finished] == [
        (first_id, "lin", 15, True)
    ]
    assert finished[0].last_seen == pytest.approx(end - DT)
    assert len(tracker) == 1 and tracker.tracks[0].track_id != first_id
    assert tracker.tracks[0].first_seen == back


def test_an_empty_frame_after_the_gap_ends_tracks_too() -> None:
    people = People()
    tracker = FaceTracker(TrackerConfig(max_gap=1.0))
    end = run(tracker, [[obs(people, "lin", box_at(100))] for _ in range(3)])
    assert tracker.update([], end + 0.5) == []
    assert [r.person_id for r in tracker.update([], end + 1.5)] == ["lin"]
    assert len(tracker) == 0


def test_the_vote_beats_a_single_wrong_frame() -> None:
    people = People()
    tracker = FaceTracker()
    frames = [[obs(people, "lin", box_at(100 + i), distance=0.5 - i / 100)] for i in range(6)]
    # One frame matched Obama, and more closely than any of Lin's.
    frames.insert(3, [obs(people, "lin", box_at(103), match="obama", distance=0.3)])
    run(tracker, frames)
    [report] = tracker.finish()
    assert report.person_id == "lin"
    assert report.best_distance == pytest.approx(0.45)  # Lin's best, not Obama's 0.3
    assert report.frames == report.voting_frames == 7


def test_unknown_faces_are_reported_without_a_person() -> None:
    people = People()
    tracker = FaceTracker()
    run(tracker, [[obs(people, "stranger", box_at(50), match=None, distance=0.8)]] * 5)
    [report] = tracker.finish()
    assert (report.person_id, report.best_distance, report.frames) == (None, None, 5)


def test_too_few_matched_frames_stay_unknown() -> None:
    people = People()
    tracker = FaceTracker(TrackerConfig(min_votes=2, min_share=0.3))
    frames = [[obs(people, "lin", box_at(100), match=None, distance=0.7)] for _ in range(9)]
    frames.append([obs(people, "lin", box_at(100), distance=0.55)])
    run(tracker, frames)
    [report] = tracker.finish()
    assert report.person_id is None  # one matched frame out of ten


def test_a_tie_between_two_people_is_unknown() -> None:
    people = People()
    tracker = FaceTracker()
    frames = [[obs(people, "x", box_at(100), match="lin")] for _ in range(3)]
    frames += [[obs(people, "x", box_at(100), match="obama")] for _ in range(3)]
    run(tracker, frames)
    assert tracker.finish()[0].person_id is None


def test_low_quality_faces_keep_the_track_but_do_not_vote() -> None:
    people = People()
    tracker = FaceTracker()
    frames = [[obs(people, "lin", box_at(100), match="obama", votes=False)] for _ in range(5)]
    frames += [[obs(people, "lin", box_at(100))] for _ in range(3)]
    run(tracker, frames)
    assert len(tracker) == 1
    [report] = tracker.finish()
    assert (report.person_id, report.frames, report.voting_frames) == ("lin", 8, 3)


def test_tracks_with_too_little_evidence_are_not_reported() -> None:
    people = People()
    tracker = FaceTracker(TrackerConfig(min_frames=2))
    run(tracker, [[obs(people, "blur", box_at(0), votes=False)] for _ in range(10)])
    run(tracker, [[obs(people, "flash", box_at(300))]], start=5.0)
    assert len(tracker) == 1  # the blurred face's track ended at the gap
    assert tracker.finish() == []


def test_a_different_face_at_the_same_place_starts_a_new_track() -> None:
    people = People()
    tracker = FaceTracker()
    run(tracker, [[obs(people, "lin", box_at(100))] for _ in range(3)])
    tracker.update([obs(people, "obama", box_at(102))], 0.3)
    assert len(tracker) == 2


def test_the_same_face_elsewhere_continues_its_track() -> None:
    # At a low frame rate a face moves far between frames: appearance alone links it.
    people = People()
    tracker = FaceTracker()
    tracker.update([Observation(box_at(0), people.face("lin", 0.05), "lin", 0.4)], 0.0)
    tracker.update([Observation(box_at(500), people.face("lin", 0.05), "lin", 0.4)], 1.0)
    assert len(tracker) == 1 and tracker.tracks[0].frames == 2


def test_open_tracks_are_reported_periodically_under_the_same_id() -> None:
    people = People()
    tracker = FaceTracker(TrackerConfig(update_every=2.0))
    now = 0.0
    updates: list[TrackReport] = []
    for _ in range(45):  # 4.5 s in view
        tracker.update([obs(people, "lin", box_at(100))], now)
        updates += tracker.due(now)
        now += DT
    assert [u.final for u in updates] == [False, False]
    assert updates[0].frames < updates[1].frames
    [final] = tracker.finish()
    assert final.final and final.frames == 45
    assert {u.track_id for u in updates} == {final.track_id}


def test_the_best_face_crop_is_the_closest_match() -> None:
    people = People()
    tracker = FaceTracker()
    frame = np.zeros((10, 10, 3), dtype=np.uint8)
    for value, distance in ((10, 0.5), (20, 0.3), (30, 0.4)):
        frame[:] = value
        crop = frame[2:8, 2:8]  # a view: the tracker must copy what it keeps
        tracker.update([Observation(box_at(0), people.face("lin"), "lin", distance, True, crop)], 0)
    frame[:] = 99
    [report] = tracker.finish()
    assert report.crop is not None and int(report.crop[0, 0, 0]) == 20


def test_track_ids_differ_between_trackers() -> None:
    people = People()
    ids = set()
    for _ in range(3):
        tracker = FaceTracker()
        run(tracker, [[obs(people, "lin", box_at(0))]] * 2)
        ids.add(tracker.finish()[0].track_id)
    assert len(ids) == 3 and all(len(i) <= 64 for i in ids)


def test_config_is_validated() -> None:
    with pytest.raises(ValueError):
        TrackerConfig(max_gap=0)
    with pytest.raises(ValueError):
        TrackerConfig(min_share=1.5)
    assert math.isinf(Observation(box_at(0), People().face("a"), None, math.inf).distance)


# -- following by boxes and embedding only when it helps (plan / commit) ------------------


def seen(box: B, *, votes: bool = True, sharpness: float = 100.0) -> FaceSeen:
    return FaceSeen(box, sharpness, votes)


def step(
    tracker: FaceTracker,
    people: People,
    faces: list[tuple[str, B]],
    now: float,
    *,
    cut: bool = False,
    match: str | None = "same",
) -> tuple[list[bool], list[TrackReport]]:
    """One frame: plan, embed what the plan asks for (as ``who``), commit."""
    planned = tracker.plan([seen(box) for _, box in faces], now, cut=cut)
    observations = [
        obs(people, who, box, match=match) if entry.embed else None
        for entry, (who, box) in zip(planned, faces, strict=True)
    ]
    return [entry.embed for entry in planned], tracker.commit(planned, observations, now)


def test_a_new_face_is_embedded_at_once_then_followed_by_its_box() -> None:
    people = People()
    tracker = FaceTracker(TrackerConfig(recheck_every=3.0))
    embedded = [
        step(tracker, people, [("lin", box_at(100 + 5 * i))], i * DT)[0][0] for i in range(25)
    ]
    # Embedded until the vote is settled (two matching frames), then every recheck_every.
    assert embedded[:3] == [True, True, False]
    assert sum(embedded) == 2
    [track] = tracker.tracks
    assert (track.frames, track.voting_frames, track.embeddings) == (25, 2, 2)
    embedded = [step(tracker, people, [("lin", box_at(225))], 2.6 + i * DT)[0][0] for i in range(6)]
    assert embedded == [False, False, False, False, False, True]  # 3 s after the last one
    [report] = tracker.finish()
    assert (report.person_id, report.frames) == ("lin", 31)


def test_an_unsettled_vote_keeps_embedding_up_to_a_limit() -> None:
    people = People()
    tracker = FaceTracker(TrackerConfig(max_unsettled=4))
    embedded = []
    for i in range(10):
        # Every other frame matches someone else: the vote stays split.
        match = "lin" if i % 2 == 0 else "obama"
        embedded.append(step(tracker, people, [("lin", box_at(100))], i * DT, match=match)[0][0])
    assert embedded == [True] * 4 + [False] * 6
    assert tracker.finish()[0].person_id is None  # a tie is no decision


def test_a_notably_larger_face_is_embedded_again() -> None:
    people = People()
    tracker = FaceTracker(TrackerConfig(grow=1.3, min_interval=1.0))
    step(tracker, people, [("lin", box_at(100, size=60))], 0.0)
    step(tracker, people, [("lin", box_at(100, size=60))], DT)
    assert not step(tracker, people, [("lin", box_at(100, size=84))], 0.5)[0][0]  # too soon
    assert step(tracker, people, [("lin", box_at(100, size=84))], 1.2)[0][0]
    assert not step(tracker, people, [("lin", box_at(100, size=90))], 2.4)[0][0]  # not 1.3x


def test_after_a_cut_someone_else_in_the_box_gets_a_track_of_their_own() -> None:
    people = People()
    tracker = FaceTracker()
    for i in range(5):
        step(tracker, people, [("lin", box_at(100))], i * DT)
    # Without a cut a face in the same place is taken for the same one (not embedded)...
    assert step(tracker, people, [("obama", box_at(102))], 0.5)[0] == [False]
    # ...after a cut it is checked, and found to be someone else.
    embedded, _ = step(tracker, people, [("obama", box_at(104))], 0.6, cut=True)
    assert embedded == [True] and len(tracker) == 2
    step(tracker, people, [("obama", box_at(104))], 0.7)  # a second vote, to be reported
    reports = by_person(tracker.finish())
    assert set(reports) == {"lin", "obama"}


def test_faces_too_poor_to_embed_are_followed_but_never_reported() -> None:
    tracker = FaceTracker()
    for i in range(10):
        planned = tracker.plan([seen(box_at(100), votes=False)], i * DT)
        assert [p.embed for p in planned] == [False]
        tracker.commit(planned, [None], i * DT)
    assert len(tracker) == 1 and tracker.tracks[0].frames == 10
    assert tracker.finish() == []


def test_a_face_that_jumps_too_far_is_a_new_face() -> None:
    people = People()
    tracker = FaceTracker(TrackerConfig(max_jump=0.8))
    step(tracker, people, [("lin", box_at(100))], 0.0)
    step(tracker, people, [("lin", box_at(110))], DT)  # moving right, 100 px/s
    # Where the motion puts it: followed; a face far from there: embedded, and as it is the
    # same person (re-identified by its embedding) the track goes on.
    assert step(tracker, people, [("lin", box_at(125))], 2 * DT)[0] == [False]
    assert step(tracker, people, [("lin", box_at(600))], 3 * DT)[0] == [True]
    assert len(tracker) == 1

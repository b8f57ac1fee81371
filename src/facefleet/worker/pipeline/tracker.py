"""Follows every face of a camera across frames and decides who each track is by a vote.

Two ways in:
- ``plan()`` then ``commit()``, the worker's: faces are first followed by their boxes alone
  (overlap with where each track's motion puts it now, or a short jump for a low frame
  rate), and ``plan()`` says which faces are worth an embedding: a new face at once, a
  track's face again when it is notably larger or sharper, or while its vote has no clear
  margin yet, and a settled track only every ``recheck_every`` seconds. ``commit()`` takes
  the embeddings made: one far from its track's appearance splits off a new track (another
  person stepped into the box), an unmatched one may re-find a track by appearance alone.
- ``update()``, when every face of every frame has an embedding: a detection joins an open
  track when their boxes overlap and their embeddings are close, or, with no overlap (a fast
  move, a low frame rate), when the embeddings alone are close enough to be the same person.
Pairs are taken greedily, cheapest first: with a handful of faces per frame this gives the
same answer as an optimal assignment.

Identity is decided across the track's frames, never by one frame: a single frame matched to
the wrong person (a turned head, a blur) is outvoted. Faces that failed the quality gate keep
their track alive and count as frames seen, but do not vote and do not shape the track's
appearance: their embeddings are too noisy to trust. So do frames where a track was followed
by its box without an embedding.

Pure Python and numpy: no dlib or OpenCV, so it is tested on synthetic embeddings.
"""

from __future__ import annotations

import math
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from facefleet.face.model import EMBEDDING_DIM


class BoxLike(Protocol):
    """A face box in pixels, right and bottom exclusive (facefleet.face.engine.Box fits)."""

    @property
    def left(self) -> int: ...
    @property
    def top(self) -> int: ...
    @property
    def right(self) -> int: ...
    @property
    def bottom(self) -> int: ...


@dataclass(frozen=True, slots=True, eq=False)
class Observation:
    """One detected face in one frame, with its gallery match at that frame."""

    box: BoxLike
    embedding: npt.NDArray[np.float32]
    person_id: str | None  # matched person at this frame, None when no one is within threshold
    distance: float  # to the nearest enrolled face, matched or not (inf on an empty gallery)
    votes: bool = True  # False when the face failed the quality gate
    # A view into the frame; copied only if it becomes the track's best face.
    crop: npt.NDArray[np.uint8] | None = None
    sharpness: float = 0.0  # Laplacian variance of the crop (0: not measured)


@dataclass(frozen=True, slots=True)
class FaceSeen:
    """A detected face before any embedding: what plan() decides on."""

    box: BoxLike
    sharpness: float = 0.0  # Laplacian variance of the crop (0: not measured)
    votes: bool = True  # passes the quality gate: an embedding of it could vote


@dataclass(frozen=True, slots=True, eq=False)
class PlannedFace:
    """plan()'s word on one face: the track it follows (None: a new face), embed or not."""

    face: FaceSeen
    track: Track | None
    embed: bool


@dataclass(frozen=True)
class TrackerConfig:
    max_gap: float = 1.5  # seconds without the face after which its track ends
    min_iou: float = 0.2  # boxes overlapping at least this much may be the same face...
    overlap_distance: float = 0.7  # ...if their embeddings are also within this distance
    reid_distance: float = 0.45  # embeddings this close are the same face wherever it is
    iou_weight: float = 0.5  # how much overlap lowers a pair's cost against distance
    momentum: float = 0.5  # weight of the newest face in the track's running embedding
    min_votes: int = 2  # frames matched to a person before the track is that person
    min_share: float = 0.3  # and the share of the track's voting frames they must make up
    min_frames: int = 2  # voting frames before a track is reported at all
    update_every: float = 10.0  # seconds between reports of a track that is still open
    # -- following faces by their boxes, and when to embed (plan / commit) --
    max_jump: float = 0.8  # centre moves (in face sizes) a box may make between frames
    max_resize: float = 1.6  # and its size may change at most by this factor
    # A followed face embedded farther than this from its track is someone else.
    verify_distance: float = 0.6
    settle_margin: int = 2  # votes the leading identity needs over the next to be settled
    max_unsettled: int = 4  # embeddings spent on an unsettled track before it waits too
    grow: float = 1.3  # a face this much larger than its best embedded one is embedded again
    sharpen: float = 1.5  # likewise for sharpness
    recheck_every: float = 3.0  # seconds between embeddings of a settled track
    min_interval: float = 1.0  # seconds between embeddings a larger or sharper face triggers

    def __post_init__(self) -> None:
        if self.max_gap <= 0 or self.update_every <= 0:
            raise ValueError("max_gap and update_every must be positive")
        if not 0 <= self.min_iou <= 1 or not 0 <= self.min_share <= 1:
            raise ValueError("min_iou and min_share must be within [0, 1]")
        if not 0 < self.momentum <= 1:
            raise ValueError("momentum must be within (0, 1]")
        if self.min_votes < 1 or self.min_frames < 1:
            raise ValueError("min_votes and min_frames must be at least 1")
        if self.max_jump < 0 or self.max_resize < 1 or self.grow < 1 or self.sharpen < 1:
            raise ValueError("max_jump >= 0 and max_resize, grow, sharpen >= 1 are required")
        if self.recheck_every <= 0 or self.max_unsettled < 1 or self.settle_margin < 1:
            raise ValueError("recheck_every > 0, max_unsettled >= 1, settle_margin >= 1")


@dataclass(frozen=True, slots=True, eq=False)
class TrackReport:
    """What a track says so far: a sighting, final once the track has ended."""

    track_id: str
    person_id: str | None
    first_seen: float
    last_seen: float
    best_distance: float | None  # to the decided person; None for an unknown face
    frames: int  # every frame the face was seen in, voting or not
    voting_frames: int
    crop: npt.NDArray[np.uint8] | None
    final: bool
    # The track's appearance (its voting faces' running embedding): what strangers are
    # clustered by; None when no face of it could vote.
    embedding: npt.NDArray[np.float32] | None = None


@dataclass(eq=False)
class Track:
    track_id: str
    first_seen: float
    last_seen: float
    box: BoxLike
    embedding: npt.NDArray[np.float32]
    frames: int = 0
    voting_frames: int = 0
    votes: Counter[str] = field(default_factory=Counter)
    best_distances: dict[str, float] = field(default_factory=dict)
    crop: npt.NDArray[np.uint8] | None = None
    # The best face is the closest to the gallery; on ties (an empty gallery), the largest.
    crop_key: tuple[float, int] = (math.inf, 0)
    reported_at: float | None = None
    has_voted: bool = False
    # Box centre speed in pixels per second, smoothed: where the face should be next.
    velocity: tuple[float, float] = (0.0, 0.0)
    # Every embedded voting frame's outcome, unknown ("") included: the margin that settles.
    outcomes: Counter[str] = field(default_factory=Counter)
    embeddings: int = 0  # embeddings made of this track's faces
    embedded_at: float = -math.inf
    embedded_size: float = 0.0  # the largest face embedded so far, shorter side
    embedded_sharpness: float = 0.0
    # Its box was found to hold someone else: followed again only once its embedding
    # re-finds the face (or it ends at max_gap).
    lost: bool = False

    def predicted(self, now: float) -> tuple[float, float, float]:
        """Centre x, centre y and size of the face at ``now`` if it kept its speed."""
        b = self.box
        dt = now - self.last_seen
        return (
            (b.left + b.right) / 2 + self.velocity[0] * dt,
            (b.top + b.bottom) / 2 + self.velocity[1] * dt,
            float(min(b.right - b.left, b.bottom - b.top)),
        )

    def follow(self, box: BoxLike, now: float) -> None:
        """The face seen again at ``box``, without an embedding: seen, not voting."""
        dt = now - self.last_seen
        if dt > 0:
            old, new = self.box, box
            vx = ((new.left + new.right) - (old.left + old.right)) / 2 / dt
            vy = ((new.top + new.bottom) - (old.top + old.bottom)) / 2 / dt
            self.velocity = (0.5 * self.velocity[0] + 0.5 * vx, 0.5 * self.velocity[1] + 0.5 * vy)
        self.frames += 1
        self.last_seen = now
        self.box = box

    def settled(self, config: TrackerConfig) -> bool:
        """The leading outcome (a person, or unknown) is clear by ``settle_margin`` votes."""
        ranked = self.outcomes.most_common(2)
        if not ranked:
            return False
        lead = ranked[0][1]
        second = ranked[1][1] if len(ranked) == 2 else 0
        return lead >= config.min_votes and lead - second >= config.settle_margin

    def wants_embedding(self, face: FaceSeen, now: float, config: TrackerConfig) -> bool:
        if not face.votes:
            return False  # its embedding could not vote
        if self.embeddings == 0 or not self.has_voted:
            return True
        if not self.settled(config) and self.embeddings < config.max_unsettled:
            return True
        since = now - self.embedded_at
        if since >= config.recheck_every:
            return True
        if since < config.min_interval:
            return False
        size = min(face.box.right - face.box.left, face.box.bottom - face.box.top)
        sharpest = self.embedded_sharpness
        return size >= config.grow * self.embedded_size or (
            sharpest > 0 and face.sharpness >= config.sharpen * sharpest
        )

    def add(self, obs: Observation, now: float, momentum: float) -> None:
        self.follow(obs.box, now)
        self.embeddings += 1
        self.embedded_at = now
        if not obs.votes:
            return
        size = min(obs.box.right - obs.box.left, obs.box.bottom - obs.box.top)
        self.embedded_size = max(self.embedded_size, float(size))
        self.embedded_sharpness = max(self.embedded_sharpness, obs.sharpness)
        if self.has_voted:
            self.embedding = (1 - momentum) * self.embedding + momentum * obs.embedding
        else:
            # The first trustworthy face replaces whatever a blurred one left behind.
            self.embedding = obs.embedding
            self.has_voted = True
        self.voting_frames += 1
        self.outcomes[obs.person_id or ""] += 1
        if obs.person_id is not None:
            self.votes[obs.person_id] += 1
            best = self.best_distances.get(obs.person_id, math.inf)
            self.best_distances[obs.person_id] = min(best, obs.distance)
        if obs.crop is not None:
            area = (obs.box.right - obs.box.left) * (obs.box.bottom - obs.box.top)
            key = (obs.distance, -area)
            if self.crop is None or key < self.crop_key:
                self.crop = np.array(obs.crop, copy=True)
                self.crop_key = key

    def identity(self, config: TrackerConfig) -> str | None:
        """The person most of the voting frames matched, or None (unknown or undecided)."""
        ranked = self.votes.most_common(2)
        if not ranked:
            return None
        person, count = ranked[0]
        if len(ranked) == 2 and ranked[1][1] == count:
            return None  # a tie is no decision: unknown beats a coin-flip identity
        if count < config.min_votes or count < config.min_share * self.voting_frames:
            return None
        return person

    def report(self, config: TrackerConfig, *, final: bool) -> TrackReport:
        person = self.identity(config)
        return TrackReport(
            track_id=self.track_id,
            person_id=person,
            first_seen=self.first_seen,
            last_seen=self.last_seen,
            best_distance=None if person is None else self.best_distances[person],
            frames=self.frames,
            voting_frames=self.voting_frames,
            crop=self.crop,
            final=final,
            embedding=self.embedding.copy() if self.has_voted else None,
        )


def _distance(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> float:
    return float(np.linalg.norm(a - b))


def iou(a: BoxLike, b: BoxLike) -> float:
    width = min(a.right, b.right) - max(a.left, b.left)
    height = min(a.bottom, b.bottom) - max(a.top, b.top)
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    union = (
        (a.right - a.left) * (a.bottom - a.top) + (b.right - b.left) * (b.bottom - b.top) - inter
    )
    return inter / union if union > 0 else 0.0


class FaceTracker:
    """Tracks of one camera. Not thread-safe: one processor feeds it, frame by frame."""

    def __init__(self, config: TrackerConfig | None = None, *, id_prefix: str | None = None):
        self.config = config or TrackerConfig()
        # A fresh prefix per tracker: a stream restarted at the same epoch must not reuse
        # the ids of its previous run, which would overwrite those sightings.
        self._prefix = id_prefix if id_prefix is not None else uuid.uuid4().hex[:8]
        self._next_id = 1
        self._tracks: list[Track] = []
        self._ended: list[Track] = []  # ended by plan(), reported by the next commit()

    @property
    def tracks(self) -> Sequence[Track]:
        return tuple(self._tracks)

    def __len__(self) -> int:
        return len(self._tracks)

    def update(self, observations: Sequence[Observation], now: float) -> list[TrackReport]:
        """Add one frame's faces seen at ``now``; return the final reports of ended tracks.

        Tracks not seen for ``max_gap`` end before matching, so a face coming back after a
        long absence starts a new track. Reports of tracks below ``min_frames`` voting
        frames are not returned: too little evidence to say anything about that face.
        """
        ended = self._ended + self._expire(now)
        self._ended = []
        matched: set[int] = set()
        for track_index, obs_index in self._associate(observations):
            self._tracks[track_index].add(observations[obs_index], now, self.config.momentum)
            matched.add(obs_index)
        for index, obs in enumerate(observations):
            if index not in matched:
                self._start(obs, now)
        return self._reportable(ended, final=True)

    def plan(
        self, faces: Sequence[FaceSeen], now: float, *, cut: bool = False
    ) -> list[PlannedFace]:
        """Follow this frame's faces by their boxes; say which ones to embed.

        Tracks not seen for ``max_gap`` end here (commit() reports them). A face that no
        track follows is embedded at once when it could vote. After a ``cut`` (the whole
        picture changed) a box where a tracked face was may hold anyone: every followed
        face is embedded, and commit() splits off those that are someone else.
        """
        self._ended.extend(self._expire(now))
        followed = self._follow(faces, now)
        planned = []
        for index, face in enumerate(faces):
            track = followed.get(index)
            if cut and track is not None and not track.has_voted:
                track = None  # nothing to check the link by: a new face
            if track is None:
                embed = face.votes
            else:
                embed = (cut and face.votes) or track.wants_embedding(face, now, self.config)
            planned.append(PlannedFace(face, track, embed))
        return planned

    def commit(
        self,
        planned: Sequence[PlannedFace],
        observations: Sequence[Observation | None],
        now: float,
    ) -> list[TrackReport]:
        """Apply a plan: ``observations[i]`` embeds ``planned[i]`` (None: not embedded).

        Returns the final reports of the tracks that ended in plan().
        """
        config = self.config
        used: set[int] = set()
        loose: list[Observation] = []
        for entry, obs in zip(planned, observations, strict=True):
            track = entry.track
            if track is not None and any(track is t for t in self._tracks):
                if obs is None:
                    track.follow(entry.face.box, now)
                    used.add(id(track))
                    continue
                if not (track.has_voted and obs.votes) or (
                    _distance(track.embedding, obs.embedding) <= config.verify_distance
                ):
                    track.add(obs, now, config.momentum)
                    used.add(id(track))
                    continue
                track.lost = True  # someone else stepped into the box
                loose.append(obs)
            elif obs is None:
                self._start_unembedded(entry.face, now)
            else:
                loose.append(obs)
        # Appearance alone may link a face to a track its box lost (a fast move).
        for obs in loose:
            free = [t for t in self._tracks if id(t) not in used and t.has_voted]
            nearest = min(free, key=lambda t: _distance(t.embedding, obs.embedding), default=None)
            if (
                nearest is not None
                and obs.votes
                and _distance(nearest.embedding, obs.embedding) <= config.reid_distance
            ):
                nearest.add(obs, now, config.momentum)
                nearest.lost = False
            else:
                nearest = self._start(obs, now)
            used.add(id(nearest))
        ended, self._ended = self._ended, []
        return self._reportable(ended, final=True)

    def boxes(self) -> list[BoxLike]:
        """Where the open tracks' faces were last seen."""
        return [t.box for t in self._tracks]

    def _expire(self, now: float) -> list[Track]:
        ended = [t for t in self._tracks if now - t.last_seen > self.config.max_gap]
        if ended:
            self._tracks = [t for t in self._tracks if now - t.last_seen <= self.config.max_gap]
        return ended

    def _follow(self, faces: Sequence[FaceSeen], now: float) -> dict[int, Track]:
        """Greedy pairs of (face, track) by how far the face is from where the track goes."""
        config = self.config
        candidates: list[tuple[float, int, int]] = []
        for ti, track in enumerate(self._tracks):
            if track.lost:
                continue
            cx, cy, size = track.predicted(now)
            for fi, face in enumerate(faces):
                b = face.box
                face_size = float(min(b.right - b.left, b.bottom - b.top))
                smaller, larger = sorted((max(1.0, size), max(1.0, face_size)))
                if larger / smaller > config.max_resize:
                    continue
                jump = math.hypot((b.left + b.right) / 2 - cx, (b.top + b.bottom) / 2 - cy) / larger
                if jump <= config.max_jump:
                    candidates.append((jump, ti, fi))
        candidates.sort()
        followed: dict[int, Track] = {}
        used_tracks: set[int] = set()
        for _, ti, fi in candidates:
            if ti not in used_tracks and fi not in followed:
                followed[fi] = self._tracks[ti]
                used_tracks.add(ti)
        return followed

    def _start_unembedded(self, face: FaceSeen, now: float) -> None:
        # A face too poor to embed: followed by its box, reported only if it ever votes.
        track = Track(
            track_id=f"{self._prefix}-{self._next_id}",
            first_seen=now,
            last_seen=now,
            box=face.box,
            embedding=np.zeros(EMBEDDING_DIM, dtype=np.float32),
            frames=1,
        )
        self._next_id += 1
        self._tracks.append(track)

    def due(self, now: float) -> list[TrackReport]:
        """Reports of open tracks not reported for ``update_every`` seconds."""
        due = [
            t
            for t in self._tracks
            if now - (t.reported_at if t.reported_at is not None else t.first_seen)
            >= self.config.update_every
        ]
        reports = self._reportable(due, final=False)
        for track in due:
            track.reported_at = now
        return reports

    def finish(self) -> list[TrackReport]:
        """End every open track (the stream stops); return their final reports."""
        ended, self._tracks = self._ended + self._tracks, []
        self._ended = []
        return self._reportable(ended, final=True)

    def _reportable(self, tracks: Sequence[Track], *, final: bool) -> list[TrackReport]:
        return [
            t.report(self.config, final=final)
            for t in tracks
            if t.voting_frames >= self.config.min_frames
        ]

    def _start(self, obs: Observation, now: float) -> Track:
        track = Track(
            track_id=f"{self._prefix}-{self._next_id}",
            first_seen=now,
            last_seen=now,
            box=obs.box,
            embedding=obs.embedding,
        )
        self._next_id += 1
        track.add(obs, now, self.config.momentum)
        self._tracks.append(track)
        return track

    def _associate(self, observations: Sequence[Observation]) -> list[tuple[int, int]]:
        """Greedy assignment over allowed (track, observation) pairs, cheapest first."""
        if not self._tracks or not observations:
            return []
        config = self.config
        track_embeddings = np.stack([t.embedding for t in self._tracks])
        obs_embeddings = np.stack([o.embedding for o in observations])
        distances = np.linalg.norm(
            track_embeddings[:, None, :] - obs_embeddings[None, :, :], axis=2
        )
        candidates: list[tuple[float, int, int]] = []
        for ti, track in enumerate(self._tracks):
            for oi, obs in enumerate(observations):
                distance = float(distances[ti, oi])
                overlap = iou(track.box, obs.box)
                if distance <= config.reid_distance or (
                    overlap >= config.min_iou and distance <= config.overlap_distance
                ):
                    candidates.append((distance - config.iou_weight * overlap, ti, oi))
        candidates.sort()
        pairs: list[tuple[int, int]] = []
        used_tracks: set[int] = set()
        used_obs: set[int] = set()
        for _, ti, oi in candidates:
            if ti not in used_tracks and oi not in used_obs:
                pairs.append((ti, oi))
                used_tracks.add(ti)
                used_obs.add(oi)
        return pairs


__all__ = [
    "BoxLike",
    "FaceSeen",
    "FaceTracker",
    "Observation",
    "PlannedFace",
    "Track",
    "TrackReport",
    "TrackerConfig",
    "iou",
]

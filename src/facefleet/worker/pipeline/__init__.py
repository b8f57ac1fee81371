"""The worker's stream pipeline: video capture, frame processors and the face pipeline."""

"""Face recognition core shared by the control plane (enrollment, /v1/recognize) and the
workers: image decoding, the dlib face engine and vectorized gallery matching.

Import the submodules directly: this package imports nothing itself, so gallery matching
does not load dlib or OpenCV.
"""

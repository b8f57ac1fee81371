"""Face-recognition core of the worker: image decoding, the dlib face engine and gallery matching.

Import the submodules directly (``pipeline.images``, ``pipeline.engine``, ``pipeline.gallery``):
this package imports nothing itself, so gallery matching does not load dlib or OpenCV.
"""

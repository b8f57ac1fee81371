"""The embedding space's identity, importable without loading dlib, OpenCV or numpy."""

# Stored with every enrolled embedding, so a model change can re-embed rather than mix spaces.
MODEL_NAME = "dlib_resnet_v1"
EMBEDDING_DIM = 128

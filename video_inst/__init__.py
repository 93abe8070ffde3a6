"""video_inst: find every shot that contains an object or a described subject.

Importing the package never needs a broker, a GPU or model weights; heavy modules
(torch, open_clip, faiss) load only where they are used.
"""

__version__ = "0.1.0"

"""bodycam: a body-worn evidence recorder, its dock and its archive.

The code lives in the top-level packages ``device`` (the recorder),
``dock`` and ``archive``; this package holds only what they share: the
``bodycam`` command's entry point and the exception tree.
"""

__version__ = "0.1.0"

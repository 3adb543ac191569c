"""Where data lives: local paths and object-store URLs, opened through fsspec.

The lowest stage that knows about files: inputs and results both name their
locations here, so a ``s3://`` URL is understood the same way by every stage.
"""

"""Capture pipeline: camera and microphone seams, pre-roll, segmenter."""

"""Tests for pykaniko.snapshot: real temp dirs, no fakes."""

"""Helpers shared by the test suites: real registries, base images, image readers."""

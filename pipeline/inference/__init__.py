"""Inference front ends used by the Python API and the CLI."""

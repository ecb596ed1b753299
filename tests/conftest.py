"""Shared fixtures: tiny generated corpora, built once per test session."""

from __future__ import annotations

import os
import shutil

import pytest


def pytest_configure(config):
    import torch

    # Recipe tests generate their corpora afresh in their own folders, as before the shared
    # corpus cache (tests/test_corpus_cache.py turns it on in a temporary root).
    os.environ["SEQREC_CORPUS_CACHE"] = "0"
    # Two cores: keep torch from oversubscribing them in every test process.
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_speech_corpus(tmp_path_factory):
    """The embedded speech corpus at its tiny size: split name -> manifest path."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (make setup installs it)")
    from data_prep.corpora.speech_corpus import SIZES, generate_speech_corpus

    out = tmp_path_factory.mktemp("speech_corpus")
    return generate_speech_corpus(out, SIZES["tiny"], num_workers=1)

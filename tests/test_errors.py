"""One error base: every user-facing error class derives from SeqrecError, with one formatter."""

import importlib
import inspect
import pkgutil

import pytest

import data_prep
import pipeline
from pipeline.errors import SeqrecError, one_line


def _project_exception_classes():
    found = {}
    for pkg in (pipeline, data_prep):
        for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
            module = importlib.import_module(info.name)
            for name, obj in vars(module).items():
                if (inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == module.__name__
                        and not name.startswith("_")):  # fmt: skip
                    found[f"{module.__name__}.{name}"] = obj
    return found


def test_every_public_error_class_derives_from_seqrec_error():
    classes = _project_exception_classes()
    assert len(classes) >= 25
    outside = sorted(name for name, cls in classes.items() if not issubclass(cls, SeqrecError))
    assert outside == []
    # and keeps the built-in class callers may already catch
    from pipeline.bundle import BundleError
    from pipeline.training.checkpoint import CheckpointError

    assert issubclass(BundleError, ValueError) and issubclass(CheckpointError, RuntimeError)


def test_the_recipes_report_any_seqrec_error_in_one_line():
    from pipeline.decoding.word_lm import LMError
    from pipeline.workflow.runner import report_user_errors, user_error_types

    assert user_error_types() == (SeqrecError, OSError)
    with pytest.raises(SystemExit) as exc, report_user_errors("test"):
        raise LMError("lm.arpa: truncated\nmore")
    assert exc.value.code == 1


def test_one_line():
    assert one_line(ValueError("\n  a.wav: not audio  \ndetails")) == "a.wav: not audio"
    assert one_line(KeyError()) == "KeyError"

"""The CLIs' logging: our routine progress shown, our detail and the libraries' advice only
with --verbose."""

from __future__ import annotations

import logging

import pytest

from udasa.cli_common import setup_logging


@pytest.fixture(autouse=True)
def restore_levels():
    names = ("udasa", "evals", "lm_eval")
    before = {n: logging.getLogger(n).level for n in names}
    yield
    for n, level in before.items():
        logging.getLogger(n).setLevel(level)


def test_default_shows_our_info_and_hides_debug_and_lm_eval_advice():
    setup_logging(verbose=False)
    assert logging.getLogger("udasa.data").isEnabledFor(logging.INFO)
    assert not logging.getLogger("udasa.data").isEnabledFor(logging.DEBUG)
    assert not logging.getLogger("lm_eval.evaluator").isEnabledFor(logging.WARNING)
    assert logging.getLogger("lm_eval.evaluator").isEnabledFor(logging.ERROR)


def test_verbose_shows_our_debug_and_lm_eval_warnings():
    setup_logging(verbose=False)
    setup_logging(verbose=True)  # a later --verbose call undoes the quieting
    assert logging.getLogger("evals.judges").isEnabledFor(logging.DEBUG)
    assert logging.getLogger("lm_eval.evaluator").isEnabledFor(logging.WARNING)

"""Judges for `udasa-eval`: see `evals.judges.base` (shipped judges: gpt4, local, learned)."""

from evals.judges.base import (
    Judge,
    JudgeConfig,
    Judgement,
    JudgeStats,
    Template,
    available_judges,
    default_judge_name,
    load_judge_config,
    make_judge,
    summarize,
)
from evals.judges.parse import ParseError, parse_rating, parse_reply, parse_yes_no

__all__ = ["Judge", "JudgeConfig", "JudgeStats", "Judgement", "ParseError", "Template",
           "available_judges", "default_judge_name", "load_judge_config", "make_judge",
           "parse_rating", "parse_reply", "parse_yes_no", "summarize"]

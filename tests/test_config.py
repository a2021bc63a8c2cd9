"""udasa.config: defaults, the shipped YAML files, CLI overrides, and errors that name the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from udasa.config import (
    AXES,
    CurriculumConfig,
    FusionConfig,
    RunConfig,
    load_config,
    to_dict,
)
from udasa.errors import ConfigError

ROOT = Path(__file__).parents[1]
CONFIGS = ROOT / "configs"


def write(tmp_path: Path, text: str, name: str = "run.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- defaults and files

def test_defaults_are_the_paper_values_and_validate():
    cfg = load_config(None)
    assert isinstance(cfg, RunConfig)
    assert cfg.validate() is cfg
    assert cfg.generation.n == 5
    assert cfg.fusion.method == "softmax" and cfg.fusion.temperature == 1.0
    assert cfg.fusion.axes == list(AXES)
    assert cfg.pairs.rejected == "random"
    assert cfg.curriculum.thresholds == [0.4, 0.7]
    assert cfg.curriculum.mode == "fixed" and cfg.curriculum.schedule == "disjoint"
    assert to_dict(cfg) == to_dict(RunConfig())


def test_defaults_are_not_shared_between_instances():
    a, b = RunConfig(), RunConfig()
    a.curriculum.thresholds.append(0.9)
    a.fusion.axes.remove("val")
    assert b.curriculum.thresholds == [0.4, 0.7]
    assert b.fusion.axes == list(AXES)


def test_cpu_demo_config_loads():
    cfg = load_config(CONFIGS / "cpu-demo.yaml")
    assert cfg.name == "cpu-demo"
    assert cfg.curriculum.mode == "quantile"
    assert cfg.curriculum.thresholds == [0.4, 0.7]
    assert cfg.scoring.semantic.name == "sbert"
    assert cfg.generation.n == 5


def test_paper_config_loads():
    cfg = load_config(str(CONFIGS / "paper.yaml"))  # str paths work too
    assert cfg.name == "paper"
    assert cfg.generation.mode == "list"
    assert cfg.generation.dtype == "bfloat16"
    assert cfg.curriculum.mode == "fixed"
    assert cfg.curriculum.thresholds == [0.4, 0.7]
    assert cfg.fusion.temperature == 1.0
    assert cfg.scoring.factual.name == "hf-nli"
    assert cfg.scoring.factual.model == "cross-encoder/nli-deberta-v3-base"


def test_empty_yaml_file_is_an_error_and_an_empty_mapping_gives_defaults(tmp_path):
    with pytest.raises(ConfigError, match="run.yaml: config file is empty"):
        load_config(write(tmp_path, ""))
    assert to_dict(load_config(write(tmp_path, "{}\n"))) == to_dict(RunConfig())


# --------------------------------------------------------------------------- overrides

def test_overrides_apply_with_the_right_types():
    cfg = load_config(None, ["generation.n=3", "fusion.axes=[sem,fact]",
                             "curriculum.thresholds=[0.3,0.6]"])
    assert cfg.generation.n == 3 and type(cfg.generation.n) is int
    assert cfg.fusion.axes == ["sem", "fact"]
    assert cfg.curriculum.thresholds == [0.3, 0.6]
    assert all(type(t) is float for t in cfg.curriculum.thresholds)


def test_overrides_on_top_of_a_file():
    cfg = load_config(CONFIGS / "cpu-demo.yaml",
                      ["curriculum.mode=fixed", "fusion.temperature=2", "data.limit=8",
                       "generation.system_prompt=null"])
    assert cfg.name == "cpu-demo"
    assert cfg.curriculum.mode == "fixed"
    assert cfg.fusion.temperature == 2.0 and type(cfg.fusion.temperature) is float  # int -> float
    assert cfg.data.limit == 8
    assert cfg.generation.system_prompt is None
    # untouched fields of the file survive
    assert cfg.generation.max_new_tokens == 64


def test_int_thresholds_are_coerced_to_float():
    cfg = load_config(None, ["curriculum.thresholds=[0, 1]"])
    assert cfg.curriculum.thresholds == [0.0, 1.0]
    assert all(type(t) is float for t in cfg.curriculum.thresholds)


def test_quantile_mode_allows_any_increasing_thresholds():
    # Only fixed thresholds must lie in [0, 1]; quantile mode only uses their count.
    cfg = load_config(None, ["curriculum.mode=quantile", "curriculum.thresholds=[1, 2, 3]"])
    assert cfg.curriculum.thresholds == [1.0, 2.0, 3.0]


def test_scorer_options_accept_any_value():
    cfg = load_config(CONFIGS / "cpu-demo.yaml",
                      ["scoring.factual.options={sentences: false, k: [1, 2]}"])
    assert cfg.scoring.factual.name == "nli-lr"
    assert cfg.scoring.factual.options == {"sentences": False, "k": [1, 2]}


def test_partial_scorer_override_keeps_the_default_scorer_name():
    cfg = load_config(None, ["scoring.factual.model=cross-encoder/nli-deberta-v3-base"])
    assert cfg.scoring.factual.name == "nli-lr"
    assert cfg.scoring.factual.model == "cross-encoder/nli-deberta-v3-base"


# --------------------------------------------------------------------------- errors

@pytest.mark.parametrize(("overrides", "field"), [
    (["scoring.value.nmae=x"], "scoring.value.nmae"),
    (["generation.nn=5"], "generation.nn"),
    (["bogus=1"], "bogus"),
    (["generation.n=five"], "generation.n"),
    (["generation.n=true"], "generation.n"),             # a bool is not an int
    (["generation.n=2.5"], "generation.n"),
    (["fusion.temperature=hot"], "fusion.temperature"),
    (["fusion.axes=sem"], "fusion.axes"),                # a list is required
    (["curriculum.thresholds=[0.4, high]"], "curriculum.thresholds[1]"),
    (["generation.n=1"], "generation.n"),
    (["curriculum.thresholds=[0.7,0.4]"], "curriculum.thresholds"),
    (["curriculum.thresholds=[0.4,0.4]"], "curriculum.thresholds"),
    (["curriculum.thresholds=[0.4,1.5]"], "curriculum.thresholds"),
    (["curriculum.thresholds=[-0.1,0.5]"], "curriculum.thresholds"),
    (["fusion.temperature=0"], "fusion.temperature"),
    (["fusion.temperature=-1"], "fusion.temperature"),
    (["fusion.method=median"], "fusion.method"),
    (["fusion.axes=[sem,style]"], "fusion.axes"),
    (["fusion.axes=[]"], "fusion.axes"),
    (["fusion.weights={sem: 1, tone: 2}"], "fusion.weights"),
    (["pairs.rejected=worst"], "pairs.rejected"),
    (["curriculum.mode=adaptive"], "curriculum.mode"),
    (["curriculum.schedule=mixed"], "curriculum.schedule"),
    (["generation.backend=vllm"], "generation.backend"),
    (["generation.mode=chat"], "generation.mode"),
    (["scoring.value=profanity"], "scoring.value"),      # a section, not a scalar
])
def test_invalid_values_raise_config_error_naming_the_field(overrides, field):
    with pytest.raises(ConfigError) as info:
        load_config(None, overrides)
    assert str(info.value).startswith(field)


def test_unknown_key_in_yaml_file_names_the_field(tmp_path):
    path = write(tmp_path, "scoring:\n  value:\n    nmae: profanity\n")
    with pytest.raises(ConfigError, match=r"run\.yaml: scoring\.value\.nmae: unknown field"):
        load_config(path)


def test_wrong_type_in_yaml_file_names_the_field(tmp_path):
    path = write(tmp_path, 'generation:\n  n: "five"\n')
    with pytest.raises(ConfigError, match=r"run\.yaml: generation\.n: expected int"):
        load_config(path)


def test_top_level_must_be_a_mapping(tmp_path):
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(write(tmp_path, "- a\n- b\n"))


@pytest.mark.parametrize("item", ["generation.n", "=3", "", "generation.n 3"])
def test_bad_override_syntax(item):
    with pytest.raises(ConfigError, match="override") as info:
        load_config(None, [item])
    assert repr(item) in str(info.value)


def test_override_through_a_scalar_is_an_error():
    # cpu-demo sets generation.n = 5, so `generation.n.x` goes through a scalar.
    with pytest.raises(ConfigError, match="override 'generation.n.x=1'"):
        load_config(CONFIGS / "cpu-demo.yaml", ["generation.n.x=1"])


def test_missing_config_file_names_the_path(tmp_path):
    missing = tmp_path / "nope" / "run.yaml"
    with pytest.raises(ConfigError, match="config file not found") as info:
        load_config(missing)
    assert str(missing) in str(info.value)


def test_a_directory_is_not_a_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not found") as info:
        load_config(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_invalid_yaml_names_the_file(tmp_path):
    path = write(tmp_path, "generation: {n: 5\nfusion: [\n", name="broken.yaml")
    with pytest.raises(ConfigError, match="invalid YAML") as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_validate_on_dataclasses_built_in_code():
    cfg = RunConfig(fusion=FusionConfig(temperature=0.0))
    with pytest.raises(ConfigError, match="^fusion.temperature"):
        cfg.validate()
    cfg = RunConfig(curriculum=CurriculumConfig(thresholds=[0.6]))
    assert cfg.validate() is cfg  # two stages, cutoff 0.6
    cfg = RunConfig(curriculum=CurriculumConfig(thresholds=[]))
    assert cfg.validate() is cfg  # one stage


def test_top_level_list_with_override_is_a_config_error(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="list.yaml"):
        load_config(path, ["generation.n=3"])


@pytest.mark.parametrize("weights", ["{sem: -1, fact: 1, val: 1}", "{sem: 0, fact: 0, val: 0}"])
def test_fixed_weights_are_checked_at_load_time(weights):
    with pytest.raises(ConfigError, match="fusion.weights"):
        load_config(None, ["fusion.method=fixed", f"fusion.weights={weights}"])


PAPER_CUTS = {"stages-1": [], "stages-2": [0.6], "stages-3": [0.3, 0.6],
              "stages-4": [0.2, 0.5, 0.8], "full": [0.4, 0.7], "no-sem": [0.4, 0.7],
              "no-fact": [0.4, 0.7], "no-val": [0.4, 0.7]}
ABLATIONS = sorted(p.stem for p in (CONFIGS / "ablations").glob("*.yaml"))


def test_every_paper_ablation_has_a_config_and_quantile_variants_say_so():
    assert set(PAPER_CUTS) <= set(ABLATIONS)
    assert {a.removesuffix("-quantile") for a in ABLATIONS} == set(PAPER_CUTS)


@pytest.mark.parametrize("name", ABLATIONS)
def test_each_ablation_is_one_config_away(name):
    cfg = load_config(CONFIGS / "ablations" / f"{name}.yaml")
    base = load_config(CONFIGS / "cpu-demo.yaml")
    assert cfg.generation == base.generation and cfg.training == base.training
    assert cfg.name == f"ablation-{name}"  # the leaderboard row label
    paper = name.removesuffix("-quantile")
    # the paper's fixed cut-offs (docs/method.md §5), unless the name says quantile
    assert cfg.curriculum.mode == ("quantile" if name.endswith("-quantile") else "fixed")
    if cfg.curriculum.mode == "fixed":
        assert cfg.curriculum.thresholds == PAPER_CUTS[paper]
    else:
        assert len(cfg.curriculum.thresholds) == len(PAPER_CUTS[paper])
    if paper.startswith("no-"):
        assert paper[3:] not in cfg.fusion.axes and len(cfg.fusion.axes) == 2
    else:
        assert cfg.fusion.axes == base.fusion.axes


def test_paper_config_trains_on_alpaca():
    """The paper feeds UDASA the 52k Alpaca instructions (and evaluates on HH, kept apart)."""
    from udasa.datasets import SOURCES

    cfg = load_config(CONFIGS / "paper.yaml")
    assert cfg.data.source == "alpaca" and SOURCES["alpaca"].hub == "tatsu-lab/alpaca"
    assert cfg.curriculum.mode == "fixed" and cfg.curriculum.thresholds == [0.4, 0.7]


def test_base_chain_that_loops_is_an_error(tmp_path):
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(ConfigError, match="loops"):
        load_config(tmp_path / "a.yaml")

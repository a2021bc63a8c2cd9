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


# --------------------------------------------------------------------------- one loader, every kind
# Each kind of settings file goes through udasa.configfile: a bad choice, a wrong type, an
# unknown field and a bad `base:` chain stop the real command with exit 2 and one `error:` line
# naming the file and the field; `base:` and overrides work for every kind.

GOOD_JSONL = '{"prompt": "Name a colour."}\n'


def one_error_line(code: int, capsys) -> str:
    out, err = capsys.readouterr()
    assert code == 2, out + err
    assert "Traceback" not in out + err
    lines = [line for line in (out + err).splitlines() if line.startswith("error:")]
    assert len(lines) == 1, out + err
    return lines[0]


def run_kind(kind: str, path: Path, tmp_path: Path) -> int:
    """The real command that reads a settings file of `kind` from `path`."""
    from attacks.cli import main as attack_cli
    from evals.cli import main as eval_cli
    from udasa.cli import main as udasa_cli

    ws = str(tmp_path / "ws")
    good = tmp_path / "good.jsonl"
    good.write_text(GOOD_JSONL)
    evals = ["run", "--models", "base", "--limit", "1", "--workspace", ws]
    if kind == "run":
        return udasa_cli(["run", "--config", str(path), "--workspace", ws])
    if kind == "gcg":
        return attack_cli(["--config", str(path), "--out", str(tmp_path / "out")])
    if kind == "robustness":
        return eval_cli([*evals, "--tasks", "robustness", "--data", f"robustness={path}"])
    if kind == "judge":
        return eval_cli([*evals, "--tasks", "harmlessness", "--judge", str(path),
                         "--data", f"harmlessness={good}"])
    if kind == "experiment":
        return eval_cli(["run", "--experiment", str(path), "--workspace", ws])
    experiment = tmp_path / "experiment.yaml"  # a method's own config, named by an experiment
    experiment.write_text(f"methods: [{{name: M, kind: {METHOD_KIND[kind]}, config: {path}}}]\n"
                          "tasks: [{name: harmlessness, limit: 1}]\n")
    return eval_cli(["run", "--experiment", str(experiment), "--workspace", ws])


METHOD_KIND = {"baseline": "rlcd", "rain": "rain", "vanilla": "vanilla"}
JUDGE_HEAD = "name: j\nbackend: hf\nmodel: embedded\nlabel: j\n"
# kind -> case -> (file text, the field the error names, a word of its message)
KIND_CASES = {
    "run": {"choice": ("training:\n  reference: prev\n", "training.reference", "not one of"),
            "type": ("generation:\n  n: five\n", "generation.n", "expected int"),
            "unknown": ("generation:\n  nn: 3\n", "generation.nn", "unknown field")},
    "gcg": {"choice": ("positions: everywhere\n", "positions", "not one of"),
            "type": ("num_steps: ten\n", "num_steps", "expected int"),
            "unknown": ("num_stepz: 3\n", "num_stepz", "unknown field")},
    "robustness": {"choice": ("mode: grey-box\n", "mode", "not one of"),
                   "type": ("n_train: five\n", "n_train", "expected int"),
                   "unknown": ("modes: white-box\n", "modes", "unknown field")},
    "judge": {"choice": (JUDGE_HEAD + "templates: {harmless: {file: p.txt, scale: 1-5}}\n",
                         "templates.harmless.scale", "not one of"),
              "type": (JUDGE_HEAD + "max_retries: many\n", "max_retries", "expected int"),
              "unknown": (JUDGE_HEAD + "retries: 3\n", "retries", "unknown field")},
    "experiment": {"choice": ("methods: [{name: a, kind: nope}]\ntasks: [{name: harmlessness}]\n",
                              "methods[0].kind", "not one of"),
                   "type": ("seed: zero\n", "seed", "expected int"),
                   "unknown": ("nmae: x\n", "nmae", "unknown field")},
    "baseline": {"choice": ("method: rlhf\n", "method", "not one of"),
                 "type": ("method: rlcd\ntraining:\n  epochs: lots\n", "training.epochs",
                          "expected float"),
                 "unknown": ("method: rlcd\ntemprature: 0.7\n", "temprature", "unknown field")},
    "rain": {"choice": ("task: kindness\n", "task", "not one of"),
             "type": ("max_tries: many\n", "max_tries", "expected int"),
             "unknown": ("max_trie: 3\n", "max_trie", "unknown field")},
    "vanilla": {"type": ("temperature: warm\n", "temperature", "expected float"),
                "unknown": ("temprature: 0.7\n", "temprature", "unknown field")},
}
BAD_BASES = {"missing": ("base: nowhere.yaml\n", "nowhere.yaml"),
             "loop": ("base: {name}\n", "loops back"),
             "not-a-name": ("base: [a, b]\n", "expected the name of a file")}


@pytest.mark.parametrize(("kind", "case"), [(k, c) for k, cases in KIND_CASES.items()
                                            for c in cases])
def test_each_kind_names_file_and_field_through_its_cli(kind, case, tmp_path, capsys):
    text, field, words = KIND_CASES[kind][case]
    path = write(tmp_path, text, f"{kind}-{case}.yaml")
    line = one_error_line(run_kind(kind, path, tmp_path), capsys)
    assert f"{path.name}: " in line and f"{field}: " in line and words in line, line


@pytest.mark.parametrize("kind", list(KIND_CASES))
@pytest.mark.parametrize("bad", list(BAD_BASES))
def test_each_kind_names_a_bad_base_chain(kind, bad, tmp_path, capsys):
    text, words = BAD_BASES[bad]
    path = write(tmp_path, text.format(name=f"{kind}.yaml"), f"{kind}.yaml")
    line = one_error_line(run_kind(kind, path, tmp_path), capsys)
    assert f"{path.name}: base: " in line and words in line, line


def test_an_error_in_a_based_on_file_names_that_file(tmp_path):
    write(tmp_path, "base: parent.yaml\nname: child\n", "child.yaml")
    write(tmp_path, "base: grandparent.yaml\n", "parent.yaml")
    with pytest.raises(ConfigError, match=r"parent\.yaml: base: .*grandparent\.yaml: config "
                                          r"file not found"):
        load_config(tmp_path / "child.yaml")


def test_a_bad_override_names_the_field_not_the_file(capsys, tmp_path):
    from udasa.cli import main as udasa_cli

    path = write(tmp_path, "generation:\n  n: 3\n")
    code = udasa_cli(["run", "--config", str(path), "--workspace", str(tmp_path / "ws"),
                      "--set", "training.reference=prev"])
    line = one_error_line(code, capsys)
    assert line == "error: training.reference: 'prev' is not one of 'initial', 'previous'"
    # the file's own mistake is still the file's, with an override beside it
    path = write(tmp_path, "generation:\n  n: 1\n")
    with pytest.raises(ConfigError, match=r"^.*run\.yaml: generation\.n: needs at least 2"):
        load_config(path, ["fusion.temperature=2"])
    # an override can mend a value of the file
    assert load_config(path, ["generation.n=4"]).generation.n == 4


def test_error_text_with_brackets_is_printed_as_it_is(capsys, tmp_path):
    from udasa.cli import main as udasa_cli

    code = udasa_cli(["run", "--workspace", str(tmp_path), "--set", "generation.[/x]=1"])
    assert "generation.[/x]: unknown field" in one_error_line(code, capsys)


def test_an_override_value_that_is_not_yaml_is_one_line(capsys, tmp_path):
    from udasa.cli import main as udasa_cli

    code = udasa_cli(["run", "--workspace", str(tmp_path), "--set", "generation.n=[1,"])
    assert "override 'generation.n=[1,': the value is not valid YAML" in one_error_line(
        code, capsys)
    code = udasa_cli(["sweep", "--workspace", str(tmp_path), "--grid", "generation.n=[1,"])
    assert "--grid 'generation.n=[1,'" in one_error_line(code, capsys)


def test_judge_mistakes_are_one_line(capsys, tmp_path):
    from evals.cli import main as eval_cli

    judge = tmp_path / "judge"
    judge.mkdir()
    (judge / "p.txt").write_text("Rate {response} on {scale:")  # not a format string
    (judge / "config.yaml").write_text(JUDGE_HEAD + "templates: {harmless: {file: p.txt, "
                                                    "scale: 1-10}}\n")
    common = ["run", "--models", "base", "--limit", "1", "--tasks", "harmlessness",
              "--workspace", str(tmp_path / "ws")]
    line = one_error_line(eval_cli([*common, "--judge", str(judge)]), capsys)
    assert "p.txt: not a prompt template" in line
    line = one_error_line(eval_cli([*common, "--judge", "gpt4", "--judge-set",
                                    "max_retries=-1"]), capsys)
    assert line.endswith("max_retries: must be >= 0")
    line = one_error_line(eval_cli(["validate-judge", "--judge", "gpt4", "--judge-set",
                                    "temprature=0", "--workspace", str(tmp_path / "ws")]),
                          capsys)
    assert "temprature: unknown field" in line


def test_a_template_field_the_item_lacks_is_a_config_error(tmp_path):
    from evals.judges.base import Template

    template = Template("t", tmp_path / "t.txt", "1-10", "Rate {response} for {audience}.")
    with pytest.raises(ConfigError, match=r"template 't' .* needs fields \['audience'\]"):
        template.render({"response": "hi"})


# --------------------------------------------------------------------------- base: and overrides, every kind

def test_run_config_base_and_overrides(tmp_path):
    path = write(tmp_path, f"base: {CONFIGS / 'cpu-demo.yaml'}\nname: child\n"
                           "generation: {n: 3}\n")
    cfg = load_config(path, ["curriculum.mode=fixed"])
    base = load_config(CONFIGS / "cpu-demo.yaml")
    assert (cfg.name, cfg.generation.n, cfg.curriculum.mode) == ("child", 3, "fixed")
    assert cfg.generation.max_new_tokens == base.generation.max_new_tokens  # inherited


def test_gcg_config_base_and_overrides(tmp_path):
    from attacks.gcg import load_gcg_config

    path = write(tmp_path, f"base: {CONFIGS / 'gcg' / 'paper.yaml'}\ntopk: 8\n")
    cfg = load_gcg_config(path, ["num_steps=2", "positions=random"])
    assert (cfg.topk, cfg.num_steps, cfg.positions) == (8, 2, "random")
    assert cfg.search_width == load_gcg_config(CONFIGS / "gcg" / "paper.yaml").search_width


def test_baseline_config_base_and_overrides(tmp_path):
    from udasa.baselines.common import load_baseline_config

    path = write(tmp_path, f"base: {CONFIGS / 'baselines' / 'rlaif.yaml'}\n"
                           "rlaif: {cot_tokens: 7}\n")
    cfg = load_baseline_config(path, ["training.epochs=2", "generation.model=some/model"])
    assert (cfg.method, cfg.rlaif.cot_tokens, cfg.training.epochs) == ("rlaif", 7, 2.0)
    assert cfg.generation.model == "some/model" and cfg.generation.n == 2  # section default kept
    with pytest.raises(ConfigError, match=r"^x\.yaml: methods\[1\]\.overrides: method: 'ppo'"):
        load_baseline_config(path, ["method=ppo"], overrides_from="x.yaml: methods[1].overrides")


def test_robustness_config_base_and_overrides(tmp_path):
    from evals.tasks.robustness import load_robustness_config

    path = write(tmp_path, f"base: {CONFIGS / 'gcg' / 'robustness-whitebox.yaml'}\n"
                           "max_new_tokens: 9\n")
    cfg = load_robustness_config(str(path), ["n_train=2"])
    assert (cfg.mode, cfg.max_new_tokens, cfg.n_train) == ("white-box", 9, 2)
    assert load_robustness_config("goals.csv").behaviours == "goals.csv"


def test_judge_config_base_keeps_the_prompt_files_of_its_base(tmp_path):
    from evals.judges.base import JUDGES_DIR, load_judge_config, make_judge

    write(tmp_path, f"base: {JUDGES_DIR / 'gpt4' / 'config.yaml'}\nname: mine\n"
                    "model: my-model\n", "config.yaml")
    cfg = load_judge_config(tmp_path, ["max_retries=1"])
    assert (cfg.name, cfg.model, cfg.max_retries, cfg.backend) == ("mine", "my-model", 1,
                                                                     "openai")
    assert cfg.templates["harmless"].path == JUDGES_DIR / "gpt4" / "harmless.txt"
    judge = make_judge(str(tmp_path), None, ["temperature=0.5"], base_url="http://x/v1")
    assert (judge.config.temperature, judge.config.base_url) == (0.5, "http://x/v1")


def test_experiment_base_and_overrides(tmp_path):
    from evals.experiment import load_experiment

    path = write(tmp_path, f"base: {CONFIGS / 'experiments' / 'cpu.yaml'}\nname: mine\n")
    exp = load_experiment(path, ["seed=3", "tasks.0.limit=5", "judge_set=[max_retries=1]"])
    cpu = load_experiment(CONFIGS / "experiments" / "cpu.yaml")
    assert (exp.name, exp.seed, exp.tasks[0].limit, exp.judge_set) == (
        "mine", 3, 5, ["max_retries=1"])
    assert [m.name for m in exp.methods] == [m.name for m in cpu.methods]
    with pytest.raises(ConfigError, match=r"override 'tasks\.99\.limit=5': 99 is not"):
        load_experiment(path, ["tasks.99.limit=5"])


def test_method_options_base_and_overrides(tmp_path):
    from evals.experiment import ExperimentConfig, MethodSpec
    from evals.suite import BuildContext, _options

    path = write(tmp_path, f"base: {CONFIGS / 'baselines' / 'rain-cpu.yaml'}\nmax_tries: 3\n")
    spec = MethodSpec("R", "rain", config=str(path), overrides=["width=2"])
    ctx = BuildContext(tmp_path, ExperimentConfig(path=str(tmp_path / "e.yaml")))
    opts = _options(spec, ctx)
    assert (opts["max_tries"], opts["width"], opts["task"]) == (3, 2, "harmless")
    spec.overrides = ["width=wide"]
    with pytest.raises(ConfigError, match=r"^R: width: expected int, got 'wide'"):
        _options(spec, ctx)

"""Every bad parameter is one clear line naming the key and the value."""
import pytest

from nnlab.errors import ParamError
import os
import re

import yaml

from conftest import ROOT
from nnlab.params import SECTIONS, Section, learning_rate, load_params, train_settings


def section(**data) -> Section:
    return Section(data, file="params.yaml", prefix="model")


@pytest.mark.parametrize("value", [-1, 0, "fast", None, True, float("nan")])
def test_bad_lr_is_named(value):
    with pytest.raises(ParamError) as err:
        section(lr=value).float("lr", positive=True)
    message = str(err.value)
    assert "model.lr" in message and repr(value) in message
    assert "\n" not in message


def test_lr_in_exponent_notation_is_a_number():
    assert section(lr="1e-3").float("lr", positive=True) == pytest.approx(1e-3)


@pytest.mark.parametrize("value, expected", [("20", [20]), ("64,32", [64, 32]), (20, [20]), ([8, 4], [8, 4])])
def test_hidden_units(value, expected):
    assert section(hidden_units=value).int_list("hidden_units") == expected


@pytest.mark.parametrize("value", ["20,x", "", "20,,3", "0", 2.5, {"a": 1}])
def test_bad_hidden_units(value):
    with pytest.raises(ParamError, match="model.hidden_units"):
        section(hidden_units=value).int_list("hidden_units")


def test_batch_size_bounds():
    assert section(batch_size=None).batch_size("batch_size", 100) is None
    assert section(batch_size=100).batch_size("batch_size", 100) == 100
    with pytest.raises(ParamError, match=r"model.batch_size = 0: must be >= 1"):
        section(batch_size=0).batch_size("batch_size", 100)
    with pytest.raises(ParamError, match="larger than the 100 training samples"):
        section(batch_size=101).batch_size("batch_size", 100)


def test_choices_and_unknown_keys():
    cfg = section(dataset="mnits", lr_typo=0.1)
    with pytest.raises(ParamError, match=r"model.dataset = 'mnits': must be one of moons, circles"):
        cfg.str("dataset", choices=["moons", "circles"])
    with pytest.raises(ParamError, match="unknown key model.lr_typo"):
        cfg.check_all_used()


def test_learning_rate_precedence(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train: {lr: 0.01, seed: 1, device: cpu}\na: {lr: null}\nb: {lr: 0.5}\nc: {}\n")
    params = load_params(path, sections=None)
    assert learning_rate(params, params.section("a")) == 0.01
    assert learning_rate(params, params.section("b")) == 0.5
    assert learning_rate(params, params.section("c")) == 0.01
    for bad in (0, -0.5):   # a model's own rate is checked as the shared one is
        path.write_text(f"train: {{lr: 0.01, seed: 1, device: cpu}}\nd: {{lr: {bad}}}\n")
        params = load_params(path, sections=None)
        with pytest.raises(ParamError, match=rf"^{re.escape(str(path))}: d\.lr = {float(bad)}: must be > 0$"):
            learning_rate(params, params.section("d"))


def test_a_models_own_seed_comes_before_the_shared_one(tmp_path):
    from nnlab.params import seed

    path = tmp_path / "params.yaml"
    path.write_text("train: {lr: 0.01, seed: 7, device: cpu}\na: {seed: null}\nb: {seed: 0}\nc: {seed: -1}\n")
    params = load_params(path, sections=None)
    assert (seed(params), seed(params, params.section("a")), seed(params, params.section("b"))) == (7, 7, 0)
    with pytest.raises(ParamError, match=r"params\.yaml: c\.seed = -1: must be >= 0$"):
        seed(params, params.section("c"))


def test_sgd_settings_check_each_key(tmp_path):
    from nnlab.params import sgd_settings

    path = tmp_path / "params.yaml"
    path.write_text("train: {lr: 0.01, seed: 1, device: cpu}\n"
                    "a: {lr: null, batch_size: 5, iterations: 3, eval_every: 1}\nb: {batch_size: full}\n"
                    "c: {batch_size: 1, iterations: 0}\nd: {batch_size: 1, iterations: 1, eval_every: 0}\n")
    params = load_params(path, sections=None)
    assert sgd_settings(params, params.section("a")) == {"lr": 0.01, "batch_size": 5, "iterations": 3, "eval_every": 1}
    for name, message in [("b", "b.batch_size = 'full': must be an integer"), ("c", "c.iterations = 0: must be >= 1"),
                          ("d", "d.eval_every = 0: must be >= 1")]:
        with pytest.raises(ParamError) as error:
            sgd_settings(params, params.section(name))
        assert str(error.value).startswith(f"{path}: {message}")


def test_batch_size_full_or_null_is_the_whole_set_and_never_more_than_it():
    cfg = section(a="full", b=None, c=8, d=9, e=[8, 9, 10], f=[1, 0])
    assert (cfg.batch_size("a", 8), cfg.batch_size("b", 8), cfg.batch_size("c", 8)) == (None, None, 8)
    with pytest.raises(ParamError, match=r"^params\.yaml: model\.d = 9: larger than the 8 training samples$"):
        cfg.batch_size("d", 8)
    with pytest.raises(ParamError, match=r"^params\.yaml: model\.b = None: must be an integer"):
        cfg.batch_size("b", 8, allow_full=False)
    assert cfg.batch_sizes("e", 10) == [8, 9, 10]
    with pytest.raises(ParamError, match=r"^params\.yaml: model\.e = \[8, 9, 10\]: 9 is larger than the 8 training "
                                         r"samples$"):
        cfg.batch_sizes("e", 8)
    assert section(sgd=[1, 2]).batch_sizes("sgd", 10) == [1, 2]   # 1: stochastic gradient descent
    with pytest.raises(ParamError, match=r"^params\.yaml: model\.f = \[1, 0\]: every entry must be >= 1$"):
        cfg.batch_sizes("f", 10)


def test_optional_and_boolean_getters():
    cfg = section(on=True, off=False, word="yes", n=3, text="x", empty="", none=None, rate=-0.5)
    assert (cfg.bool("on"), cfg.bool("off"), cfg.bool("gone", default=True)) == (True, False, True)
    with pytest.raises(ParamError, match=r"^params\.yaml: model\.word = 'yes': must be true or false$"):
        cfg.bool("word")
    assert (cfg.optional_int("n", min=1), cfg.optional_int("none"), cfg.optional_int("gone")) == (3, None, None)
    with pytest.raises(ParamError, match=r"^params\.yaml: model\.n = 3: must be >= 4$"):
        cfg.optional_int("n", min=4)
    assert (cfg.optional_str("text", choices=["x"]), cfg.optional_str("none"), cfg.optional_str("gone")) == \
        ("x", None, None)
    with pytest.raises(ParamError, match=r"^params\.yaml: model\.empty = '': must be a non-empty string$"):
        cfg.optional_str("empty")
    with pytest.raises(ParamError, match=r"^params\.yaml: model\.text = 'x': must be one of y, z$"):
        cfg.optional_str("text", choices=["y", "z"])
    assert cfg.optional_float("none", positive=True) is None
    with pytest.raises(ParamError, match=r"^params\.yaml: model\.rate = -0\.5: must be > 0$"):
        cfg.optional_float("rate", positive=True)
    cfg.check_all_used()


def test_number_lists_and_matrices_name_the_entry_at_fault():
    cfg = section(one=2.5, half=0.5, text="1,2", word=[1, "x"], flag=[True], zero=[1, 0], inf=[1, float("inf")],
                  none=[], ragged=[[1, 2], [3]], cell=[[1, "x"], [0, 1]], cov=[[4, 0], [0, 0.25]])
    assert cfg.float_list("one") == [2.5] and cfg.float_list("zero") == [1.0, 0.0]
    assert cfg.float_list("one", positive=True) == [2.5] and cfg.float_list("half", positive=True) == [0.5]
    assert cfg.float_matrix("cov", 2, 2) == [[4.0, 0.0], [0.0, 0.25]]
    for key, positive, why in [("text", False, "'1,2' is not a number"), ("word", False, "'x' is not a number"),
                               ("flag", False, "True is not a number"),
                               ("zero", True, "every entry must be a finite number > 0"),
                               ("inf", False, "every entry must be a finite number"),
                               ("none", False, "must hold at least one number")]:
        with pytest.raises(ParamError) as error:
            cfg.float_list(key, positive=positive)
        assert str(error.value) == f"params.yaml: model.{key} = {cfg.as_dict()[key]!r}: {why}"
    for key, why in [("ragged", "must be a 2x2 list of lists"), ("cell", "every entry must be a finite number")]:
        with pytest.raises(ParamError) as error:
            cfg.float_matrix(key, 2, 2)
        assert str(error.value) == f"params.yaml: model.{key} = {cfg.as_dict()[key]!r}: {why}"


def test_an_integer_may_be_written_as_a_whole_float_and_nothing_else():
    cfg = section(whole=3.0, half=2.5, flag=True, text="3")
    assert cfg.int("whole") == 3 and type(cfg.int("whole")) is int and cfg.int("gone", default=7) == 7
    for key, value in [("half", 2.5), ("flag", True), ("text", "3")]:
        with pytest.raises(ParamError) as error:
            cfg.int(key)
        assert str(error.value) == f"params.yaml: model.{key} = {value!r}: must be an integer"
    with pytest.raises(ParamError, match=r"^params\.yaml: model\.gone is missing$"):
        cfg.int("gone")


def test_a_number_and_its_range_are_refused_in_words(tmp_path):
    cfg = section(lr=0.5, word="fast", pair=[1, 2], flag=True, inf=float("inf"), zero=0, low=1, high=5)
    assert cfg.float("lr") == 0.5 and cfg.float("zero") == 0.0 and cfg.float("gone", default=0.25) == 0.25
    assert (cfg.int("low", min=1, max=1), cfg.float("high", min=5, max=5)) == (1, 5.0)
    for key, call, why in [("word", lambda: cfg.float("word"), "must be a number"),
                           ("pair", lambda: cfg.float("pair"), "must be a number"),
                           ("flag", lambda: cfg.float("flag"), "must be a number"),
                           ("inf", lambda: cfg.float("inf"), "must be finite"),
                           ("zero", lambda: cfg.float("zero", positive=True), "must be > 0"),
                           ("low", lambda: cfg.float("low", min=2), "must be >= 2"),
                           ("high", lambda: cfg.float("high", max=4), "must be <= 4"),
                           ("high", lambda: cfg.int("high", max=4), "must be <= 4")]:
        with pytest.raises(ParamError) as error:
            call()
        assert str(error.value).startswith(f"params.yaml: model.{key} = ") and str(error.value).endswith(f": {why}")
    with pytest.raises(ParamError, match=r"^params\.yaml: model\.gone is missing$"):
        cfg.float("gone")
    path = tmp_path / "params.yaml"
    path.write_text("train: {lr: 0.01, seed: 1, device: cpu}\n")
    assert train_settings(load_params(path, sections=None)).threads == 1


def test_a_string_is_non_empty_and_the_train_seed_fits_32_bits(tmp_path):
    cfg = section(name="mlp", empty="", number=3)
    assert cfg.str("name") == "mlp" and cfg.str("gone", default="x") == "x"
    for key, value in [("empty", ""), ("number", 3)]:
        with pytest.raises(ParamError) as error:
            cfg.str(key)
        assert str(error.value) == f"params.yaml: model.{key} = {value!r}: must be a non-empty string"
    with pytest.raises(ParamError, match=r"^params\.yaml: model\.gone is missing$"):
        cfg.str("gone")
    with pytest.raises(ParamError, match=r"^params\.yaml: model\.name = 'mlp': must be a mapping of parameters$"):
        cfg.section("name")
    for train, message in [("lr: 0.01, seed: 4294967295", None),
                           ("lr: 0.01, seed: 4294967296", "train.seed = 4294967296: must be <= 4294967295"),
                           ("lr: 0, seed: 1", "train.lr = 0.0: must be > 0")]:
        path = tmp_path / "params.yaml"
        path.write_text(f"train: {{{train}, device: cpu}}\n")
        if message is None:
            assert train_settings(load_params(path, sections=None)).seed == 2**32 - 1
            continue
        with pytest.raises(ParamError) as error:
            train_settings(load_params(path, sections=None))
        assert str(error.value) == f"{path}: {message}"


def test_a_section_lists_copies_and_refuses_its_values_as_read():
    cfg = section(units=[8, 4], name="mlp")
    assert cfg.keys() == ["units", "name"]
    copy = cfg.as_dict()
    copy["units"].append(2)
    assert copy == {"units": [8, 4, 2], "name": "mlp"} and cfg.as_dict() == {"units": [8, 4], "name": "mlp"}
    assert str(cfg.refuse("units", "too wide")) == "params.yaml: model.units = [8, 4]: too wide"
    assert str(cfg.refuse("gone", "needed")) == "params.yaml: model.gone = None: needed"


def test_an_unreadable_or_malformed_params_file_is_one_line_naming_it(tmp_path):
    """Each way a params file can fail to load, word for word: the file, what is wrong and, for
    YAML that names a place, the line (1-based, as an editor numbers it)."""
    def refusal(name: str, content: bytes | None = None) -> str:
        path = tmp_path / name
        if content is not None:
            path.write_bytes(content)
        with pytest.raises(ParamError) as caught:
            load_params(path)
        return str(caught.value).replace(str(path), "<file>")

    assert refusal("missing.yaml") == "<file>: file not found"
    (tmp_path / "folder.yaml").mkdir()
    assert refusal("folder.yaml").startswith("<file>: cannot read: [Errno 21] Is a directory")
    assert refusal("latin1.yaml", "train:\n  device: cpu # \u00e9\n".encode("latin-1")).startswith(
        "<file>: cannot read: 'utf-8' codec can't decode byte 0xe9")
    assert refusal("flow.yaml", b"train:\n  lr: 0.1\n  seed: [1, 2\n") == "<file>: not valid YAML (line 4)"
    assert refusal("mapping.yaml", b"train:\n  lr: 0.1\nmodel: a: b\n") == "<file>: not valid YAML (line 3)"
    # A character YAML refuses has a position but no line: the message says no line rather than a wrong one.
    assert refusal("bell.yaml", b"train:\n  lr: 0.1\nmodel: \x07\n") == "<file>: not valid YAML"
    assert refusal("list.yaml", b"- train\n- model\n") == "<file>: expected a mapping of sections at the top level"
    assert refusal("unknown.yaml", b"trian: {}\n") == \
        f"<file>: unknown section trian (sections: {', '.join(sorted(SECTIONS))})"
    assert load_params(tmp_path / "unknown.yaml", sections=None).section("trian").keys() == []


def test_matrix_shape_is_checked():
    assert section(cov=[[1, 0], [0, 1]]).float_matrix("cov", 2, 2) == [[1.0, 0.0], [0.0, 1.0]]
    for bad in ([[1, 0]], [[1, "x"], [0, 1]], [[1, True], [0, 1]], "identity"):
        with pytest.raises(ParamError, match="model.cov"):
            section(cov=bad).float_matrix("cov", 2, 2)


def write_params(tmp_path, **changes):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for dotted, value in changes.items():
        *parents, key = dotted.split(".")
        node = params
        for parent in parents:
            node = node[parent]
        node[key] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


@pytest.mark.parametrize("key, value, message", [
    ("train.lrr", 0.1, "params.yaml: unknown key train.lrr (this section takes: device, lr, seed, threads)"),
    ("train.lr", "abc", "params.yaml: train.lr = 'abc': must be a number"),
    ("train.seed", -1, "params.yaml: train.seed = -1: must be >= 0"),
    ("train.device", "gpu", "params.yaml: train.device = 'gpu': must be auto, cpu, cuda or cuda:N"),
    ("train.threads", 0, "params.yaml: train.threads = 0: must be auto or an integer >= 1"),
    ("train.threads", "all", "params.yaml: train.threads = 'all': must be auto or an integer >= 1"),
    ("train.threads", 2.5, "params.yaml: train.threads = 2.5: must be auto or an integer >= 1"),
    ("mlp_mons", {"steps": 1}, "params.yaml: unknown section mlp_mons (sections: batch_study,"),
])
def test_every_stage_refuses_a_bad_train_key_or_an_unknown_section(tmp_path, key, value, message):
    with pytest.raises(ParamError) as err:
        load_params(write_params(tmp_path, **{key: value}))
    assert str(err.value).startswith(str(tmp_path / message.split(": ", 1)[0]) + ": " + message.split(": ", 1)[1])


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:0", "cuda:3"])
def test_devices_accepted_by_params(tmp_path, device):
    assert train_settings(load_params(write_params(tmp_path, **{"train.device": device}))).device == device


def test_threads_auto_is_every_usable_core_and_a_count_is_kept(tmp_path):
    assert train_settings(load_params(write_params(tmp_path, **{"train.threads": "auto"}))).threads == \
        len(os.sched_getaffinity(0))
    assert train_settings(load_params(write_params(tmp_path, **{"train.threads": 3}))).threads == 3


def test_usable_cores_are_the_affinity_mask_else_the_cpu_count(monkeypatch):
    from nnlab import params

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {5}, raising=False)
    assert params.usable_cores() == 1
    monkeypatch.delattr(os, "sched_getaffinity")   # macOS
    monkeypatch.setattr(os, "cpu_count", lambda: 3)
    assert params.usable_cores() == 3
    monkeypatch.setattr(os, "cpu_count", lambda: None)   # undeterminable
    assert params.usable_cores() == 1


def test_known_sections_are_those_dvc_yaml_reads():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    read = set()
    for spec in stages.values():
        items = spec.get("foreach", [None])
        for entry in spec.get("do", spec).get("params", []):
            for item in items:
                name = next(iter(entry)) if isinstance(entry, dict) else entry
                read.add(re.sub(r"\$\{item\}", str(item), name).split(".")[0])
    assert SECTIONS == read
    assert set(yaml.safe_load((ROOT / "params.yaml").read_text())) == SECTIONS


@pytest.mark.parametrize("value, reason", [
    (True, "must be integers separated by commas"), ({"a": 1}, "must be integers separated by commas"),
    ([1.5], "1.5 is not an integer"), ([True], "True is not an integer"), ("1,0", "every entry must be >= 1"),
    ([], "must hold at least one integer")])
def test_int_list_refusal_names_the_key_the_value_and_why(value, reason):
    with pytest.raises(ParamError) as err:
        section(sizes=value).int_list("sizes")
    assert str(err.value) == f"params.yaml: model.sizes = {value!r}: {reason}"


def test_int_list_takes_integers_down_to_its_minimum():
    assert section(sizes=[1, "2", 3.0]).int_list("sizes") == [1, 2, 3]
    assert section(sizes="0, 4").int_list("sizes", min=0) == [0, 4]


def test_a_duplicate_key_is_refused_with_both_lines_as_dvc_refuses_it(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("mlp_moons:\n  lr: 0.1\n  steps: 10\n  lr: 0.2\n")
    with pytest.raises(ParamError) as refused:
        load_params(path, sections=None)
    assert str(refused.value) == f"{path}: duplicate key 'lr' (lines 2 and 4)"
    path.write_text("mlp_moons: {lr: 0.1, lr: 0.2}\n")   # a flow mapping: both on one line
    with pytest.raises(ParamError, match=r"duplicate key 'lr' \(lines 1 and 1\)"):
        load_params(path, sections=None)


def test_an_alias_is_refused_before_it_expands(tmp_path):
    """Nine levels of aliases would expand to 10**9 items: refused at the first alias, in one line."""
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  " + "\n  ".join(levels) + "\n  lr: *a9\n")
    with pytest.raises(ParamError) as refused:
        load_params(path, sections=None)
    assert str(refused.value) == f"{path}: a YAML alias (*a0) at line 3: params files take plain values"


def test_a_refused_value_is_shown_cut_to_one_short_line(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("mlp_moons:\n  hidden_units: [" + ", ".join(["2"] * 9_999 + ["x"]) + "]\n")
    with pytest.raises(ParamError) as refused:
        load_params(path, sections=None).section("mlp_moons").int_list("hidden_units")
    message = str(refused.value)
    assert message.startswith(f"{path}: mlp_moons.hidden_units = [2, 2, ") and "…: 'x' is not an integer" in message
    assert len(message) < 200 + len(str(path))

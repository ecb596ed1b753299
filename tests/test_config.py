"""Typed configs: YAML loading, overrides, unknown keys, wrong types, unsafe YAML."""

from dataclasses import dataclass, field

import pytest

from pipeline.config import ConfigError, config_hash, load_config, save_config, to_dict


@dataclass(frozen=True)
class Inner:
    size: int = 4
    rate: float = 0.5
    name: str = "x"


@dataclass(frozen=True)
class Outer:
    inner: Inner = field(default_factory=Inner)
    flags: tuple[float, ...] = ()
    on: bool = True
    opt: int | None = None


def test_defaults_and_yaml_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("inner:\n  size: 8\nflags: [0.9, 1.1]\n")
    cfg = load_config(Outer, path, ["inner.rate=2", "on=false", "opt=3"])
    assert cfg.inner == Inner(size=8, rate=2.0, name="x")
    assert cfg.flags == (0.9, 1.1) and cfg.on is False and cfg.opt == 3
    assert isinstance(cfg.inner.rate, float)


def test_unknown_key_is_named(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("inner:\n  sise: 8\n")
    with pytest.raises(ConfigError, match=r"c\.yaml.*inner\.sise"):
        load_config(Outer, path)
    with pytest.raises(ConfigError, match="bogus"):
        load_config(Outer, None, ["bogus=1"])


@pytest.mark.parametrize("override", ["inner.size=abc", "inner.size=1.5", "on=maybe", "flags=3", "inner=5"])
def test_wrong_types_are_rejected(override):
    with pytest.raises(ConfigError, match=override.split("=")[0]):
        load_config(Outer, None, [override])


def test_override_without_equals():
    with pytest.raises(ConfigError, match="key=value"):
        load_config(Outer, None, ["inner.size"])


def test_yaml_object_tags_are_refused(tmp_path):
    path = tmp_path / "evil.yaml"
    marker = tmp_path / "pwned"
    path.write_text(f"inner: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(ConfigError, match="evil.yaml"):
        load_config(Outer, path)
    assert not marker.exists()


def test_save_roundtrip_and_hash(tmp_path):
    cfg = load_config(Outer, None, ["flags=[1.0]", "inner.name=y"])
    save_config(cfg, tmp_path / "resolved.yaml")
    again = load_config(Outer, tmp_path / "resolved.yaml")
    assert again == cfg
    assert config_hash(cfg) == config_hash(again)
    assert config_hash(cfg) != config_hash(load_config(Outer, None, ["inner.size=5"]))
    assert to_dict(cfg)["flags"] == [1.0]


@dataclass(frozen=True)
class WithNestedDefault:
    inner: Inner = field(default_factory=lambda: Inner(size=99, name="recipe"))


def test_partial_section_keeps_the_enclosing_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("inner:\n  rate: 0.25\n")
    cfg = load_config(WithNestedDefault, path)
    assert cfg.inner == Inner(size=99, rate=0.25, name="recipe")


@dataclass(frozen=True)
class WithPair:
    pair: tuple[float, int] = (0.5, 2)


def test_fixed_length_tuples_are_coerced_per_item():
    cfg = load_config(WithPair, None, ["pair=[1, 3]"])
    assert cfg.pair == (1.0, 3) and isinstance(cfg.pair[0], float)
    with pytest.raises(ConfigError, match="pair"):
        load_config(WithPair, None, ["pair=[1, 2, 3]"])


def test_a_file_states_only_what_differs_from_its_base(tmp_path):
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "default.yaml").write_text("inner:\n  size: 8\n  name: base\nflags: [1.0, 2.0]\nopt: 1\n")
    (tmp_path / "conf" / "mid.yaml").write_text("_base_: default.yaml\ninner:\n  rate: 0.25\nflags: [3.0]\n")
    (tmp_path / "mine.yaml").write_text("_base_: conf/mid.yaml  # relative to this file\ninner:\n  name: mine\n")
    cfg = load_config(Outer, tmp_path / "mine.yaml", ["on=false"])
    # Mappings merge key by key through the chain, a list replaces the base's, overrides come last.
    assert cfg == Outer(inner=Inner(size=8, rate=0.25, name="mine"), flags=(3.0,), on=False, opt=1)
    assert "_base_" not in to_dict(cfg)


@pytest.mark.parametrize("case,base,reason", [
    ("missing", "_base_: nowhere.yaml\n", r"mine\.yaml: _base_ 'nowhere\.yaml' not found"),
    ("itself", "_base_: mine.yaml\n", r"mine\.yaml: _base_ 'mine\.yaml' makes a cycle of bases \(mine\.yaml -> mine\.yaml\)"),
    ("loop", "_base_: other.yaml\n", r"other\.yaml: _base_ 'mine\.yaml' makes a cycle of bases \(mine\.yaml -> other\.yaml -> mine\.yaml\)"),
    ("not a name", "_base_: [a.yaml]\n", r"mine\.yaml: _base_ must name a YAML file"),
    ("bad yaml", "_base_: broken.yaml\n", r"broken\.yaml: invalid or unsafe YAML"),
])  # fmt: skip
def test_bad_bases_are_one_line_errors_naming_the_file(tmp_path, case, base, reason):
    (tmp_path / "other.yaml").write_text("_base_: mine.yaml\n")
    (tmp_path / "broken.yaml").write_text("inner: [\n")
    (tmp_path / "mine.yaml").write_text(base + "opt: 2\n")
    with pytest.raises(ConfigError, match=reason) as exc:
        load_config(Outer, tmp_path / "mine.yaml")
    assert "\n" not in str(exc.value)


def test_a_bad_value_from_a_base_names_the_base(tmp_path):
    (tmp_path / "base.yaml").write_text("inner:\n  sise: 8\n")
    (tmp_path / "mine.yaml").write_text("_base_: base.yaml\nopt: 2\n")
    with pytest.raises(ConfigError, match=r"mine\.yaml \(from its base .*base\.yaml\): unknown config key\(s\) inner\.sise"):
        load_config(Outer, tmp_path / "mine.yaml")
    (tmp_path / "base.yaml").write_text("inner:\n  size: 8\n")
    (tmp_path / "mine.yaml").write_text("_base_: base.yaml\ninner:\n  size: x\n")  # its own mistake
    with pytest.raises(ConfigError, match=r"^\S*mine\.yaml: inner\.size: expected an integer"):
        load_config(Outer, tmp_path / "mine.yaml")
    with pytest.raises(ConfigError, match="_base_"):  # only a file's top level names a base
        load_config(Outer, None, ["_base_=base.yaml"])

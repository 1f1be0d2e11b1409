"""metanlp.core.config: strict recipe loading; every shipped YAML validates."""

from pathlib import Path

import pytest

from metanlp.core.config import ConfigError
from metanlp.core.recipe_loading import load_recipe, recipe_from_dict, recipe_to_yaml


def test_unknown_key_names_dotted_key_and_suggestion(tmp_path: Path) -> None:
    f = tmp_path / "r.yaml"
    f.write_text("adapter:\n  rnak: 4\n")
    with pytest.raises(ConfigError, match=r"r\.yaml.*adapter\.rnak.*adapter\.r"):
        load_recipe(f)


def test_wrong_type_names_key() -> None:
    with pytest.raises(ConfigError, match="task.k_shot"):
        load_recipe(None, ["task.k_shot=five"])


def test_cross_field_rule_names_both_keys() -> None:
    with pytest.raises(ConfigError, match="meta_train_groups.*share.*'a'"):
        load_recipe(None, ["task.split_by=group", "task.meta_train_groups=[a]", "task.meta_test_groups=[a]"])


def test_unknown_algorithm_lists_choices() -> None:
    with pytest.raises(ConfigError, match="did you mean 'fomaml'"):
        load_recipe(None, ["meta.algorithm=fomal"])


def test_override_without_equals_is_rejected() -> None:
    with pytest.raises(ConfigError, match="key.sub=value"):
        load_recipe(None, ["adapter.r"])


def test_missing_and_non_mapping_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_recipe(tmp_path / "nope.yaml")
    f = tmp_path / "list.yaml"
    f.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_recipe(f)


def test_yaml_round_trip_and_lenient_reader() -> None:
    import yaml

    cfg = load_recipe(None, ["adapter.r=4", "task.n_way=0"])
    data = yaml.safe_load(recipe_to_yaml(cfg))
    data["adapter"]["from_the_future"] = 1
    again = recipe_from_dict(data)
    assert again.adapter.r == 4 and again.task.n_way == 0


def test_run_threads_is_validated_and_adapter_layers_default_to_the_family() -> None:
    with pytest.raises(ConfigError, match="run.threads"):
        load_recipe(None, ["run.threads=-1"])
    cfg = load_recipe(None, ["run.threads=1"])
    assert cfg.run.threads == 1
    assert cfg.adapter.layers is None  # unset: the family's default (text: top 2 layers; translation: every layer)
    from metanlp.families.text_classification.adapter import DEFAULT_LAYERS

    assert DEFAULT_LAYERS == [-2, -1]

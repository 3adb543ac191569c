"""pipeline.engine.settings: RunConfig and ClusterSettings, checks, YAML, fingerprint, schema.

Validation messages, YAML round trip, overrides and shorthands, the fingerprint (which
ignores how a run is executed), the JSON Schema, and the cluster section.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from pydantic import ValidationError

import pipeline as sp
from pipeline.engine.settings import (
    ClusterSettings,
    RunConfig,
    dump_config,
    json_schema_text,
    load_config,
    resolve_config,
)
from pipeline.metrics.checks import check_data_range
from pipeline.reductions.region_spec import RegionSpec


def test_defaults_are_valid_and_fingerprint_is_stable():
    assert RunConfig().fingerprint() == RunConfig().fingerprint()
    assert len(RunConfig().fingerprint()) == 16


def test_yaml_round_trip(tmp_path):
    config = RunConfig(
        profile="skimage",
        win_size=9,
        regions="4x4",
        chunks=(2, 64, 64),
        maps=("ssim", "structure"),
        label_names=None,
        output="out.zarr",
    )
    path = tmp_path / "run.yaml"
    text = dump_config(config, path)
    loaded = load_config(path)
    assert loaded == config
    assert dump_config(loaded) == text


def test_label_names_keys_from_yaml_are_integers(tmp_path):
    path = tmp_path / "labels.yaml"
    path.write_text("regions: labels\nlabels: mask.zarr\nlabel_names: {1: sky, 2: face}\n")
    assert load_config(path).label_names == {1: "sky", 2: "face"}


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ValueError, match=r"unknown configuration key\(s\) regoins; valid keys: "):
        RunConfig.from_mapping({"regoins": "4x4"})


def test_unknown_key_in_file_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("profle: wang2004\n")
    with pytest.raises(ValueError, match=r"bad\.yaml.*unknown configuration key\(s\) profle"):
        load_config(path)


def test_unreadable_and_invalid_yaml(tmp_path):
    with pytest.raises(ValueError, match=r"cannot read configuration file .*missing\.yaml"):
        load_config(tmp_path / "missing.yaml")
    path = tmp_path / "broken.yaml"
    path.write_text("regions: [4x4\n")
    with pytest.raises(ValueError, match=r"broken\.yaml.*is not valid YAML"):
        load_config(path)


@pytest.mark.parametrize(
    ("values", "error", "match"),
    [
        ({"profile": "wang2005"}, ValueError, r"profile must be one of wang2004.*got 'wang2005'"),
        ({"regions": "4by4"}, ValueError, r"regions must be 'all', a grid 'RxC'.*got '4by4'"),
        ({"regions": "0x4"}, ValueError, r"regions needs sizes of at least 1 \(got '0x4'\)"),
        ({"regions": "labels"}, ValueError, r"regions='labels' needs labels"),
        ({"labels": "m.zarr"}, ValueError, r"labels were given but regions is 'all'"),
        ({"hist_bins": 0}, ValueError, r"hist_bins must be at least 1 \(got 0\)"),
        ({"hist_bins": 2.5}, TypeError, r"hist_bins must be an integer \(got 2.5\)"),
        ({"data_range": -1}, ValueError, r"data_range must be a positive finite number"),
        ({"sigma": float("nan")}, ValueError, r"sigma must be a positive finite number"),
        ({"chunks": (1, 2)}, ValueError, r"chunks must be 'auto', 'input' or three positive"),
        ({"chunks": "big"}, ValueError, r"chunks must be one of auto, input \(got 'big'\)"),
        ({"zarr_format": 4}, ValueError, r"zarr_format must be 2 or 3 \(got 4\)"),
        ({"resume": "yes"}, TypeError, r"resume must be true or false \(got 'yes'\)"),
        ({"resume": True, "overwrite": True}, ValueError, r"resume and overwrite exclude"),
        ({"maps": ["ssim", "cs"]}, ValueError, r"maps must be one of ssim, luminance"),
        ({"scheduler": "cluster"}, ValueError, r"scheduler must be one of threads"),
        ({"channel_axis": 1.0}, TypeError, r"channel_axis must be an integer or None"),
        (
            {"regions": "labels", "labels": "m.zarr", "label_names": {"one": "a"}},
            ValueError,
            r"label_names keys must be non-negative integers \(got 'one'\)",
        ),
    ],
)
def test_bad_values_say_what_is_allowed(values, error, match):
    with pytest.raises(error, match=match):
        RunConfig.from_mapping(values)


def test_replace_validates_and_refuses_unknown_names():
    config = RunConfig().replace(regions="2x2", resume=True)
    assert config.regions == "2x2"
    with pytest.raises(TypeError, match=r"unknown setting\(s\) region; valid settings: "):
        RunConfig().replace(region="2x2")
    with pytest.raises(ValueError, match=r"regions must be"):
        RunConfig().replace(regions="x")


def test_fingerprint_tracks_results_not_execution():
    base = RunConfig()
    assert base.replace(scheduler="synchronous", output="a.zarr", resume=True).fingerprint() == (
        base.fingerprint()
    )
    assert base.replace(win_size=7).fingerprint() != base.fingerprint()
    labels = np.zeros((4, 4), dtype=np.uint8)
    a = base.replace(regions="labels", labels=labels).fingerprint()
    b = base.replace(regions="labels", labels=labels + 1).fingerprint()
    assert a != b


def test_output_format_from_suffix():
    assert RunConfig(output="r.zarr").resolved_output_format() == "zarr"
    assert RunConfig(output="r.nc").resolved_output_format() == "netcdf"
    assert RunConfig(output="r.csv", output_format="zarr").resolved_output_format() == "zarr"
    with pytest.raises(ValueError, match=r"cannot tell the output format from 'r\.txt'"):
        RunConfig(output="r.txt").resolved_output_format()


def test_resolve_config_accepts_objects_mappings_and_paths(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("regions: 2x2\n")
    assert resolve_config(path, hist_bins=10).regions == "2x2"
    assert resolve_config({"regions": "3x3"}).regions == "3x3"
    assert resolve_config(RunConfig(), profile="skimage").profile == "skimage"
    with pytest.raises(TypeError, match=r"config must be a RunConfig, a mapping or a YAML path"):
        resolve_config(42)
    with pytest.raises(ValueError, match=r"in-memory label array cannot be written as YAML"):
        dump_config(RunConfig(regions="labels", labels=np.zeros((2, 2), dtype=int)))


def _alias_bomb(key: str, levels: int = 9) -> str:
    """``key`` holding 9**levels strings through nested aliases ("billion laughs")."""
    anchors = ['&l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels):
        anchors.append(f"&l{level} [" + ", ".join([f"*l{level - 1}"] * 9) + "]")
    return f"{key}: [{', '.join(anchors)}]\n"


@pytest.mark.parametrize("key", ["chunks", "regions"])
def test_yaml_alias_bomb_is_refused_before_it_is_expanded(tmp_path, key):
    # Before the limit, validating these keys walked all 9**9 strings (minutes, gigabytes).
    path = tmp_path / "bomb.yaml"
    path.write_text(_alias_bomb(key))
    with pytest.raises(
        ValueError,
        match=rf"configuration file '{path}' expands to more than 100,000 values through "
        r"YAML aliases",
    ):
        load_config(path)


def test_yaml_recursive_alias_and_deep_nesting_are_refused(tmp_path):
    path = tmp_path / "loop.yaml"
    path.write_text("chunks: &loop [1, *loop]\n")
    with pytest.raises(ValueError, match=rf"'{path}' expands to more than 100,000 values"):
        load_config(path)
    path.write_text("chunks: " + "[" * 1_000 + "]" * 1_000 + "\n")
    with pytest.raises(ValueError, match=rf"'{path}' nests its values too deeply"):
        load_config(path)


def test_yaml_aliases_within_the_limit_still_work(tmp_path):
    path = tmp_path / "small.yaml"
    path.write_text("regions: 2x2\ndata_ranges: {float32: &one 1.0, float64: *one}\n")
    config = load_config(path)
    assert dict(config.data_ranges) == {"float32": 1.0, "float64": 1.0}


# -- the settings model: schema, choices, one check per setting ---------------------------

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_committed_schema_is_the_models() -> None:
    # After a settings field changes, regenerate it: python -c "from pipeline.engine.settings
    # import write_json_schema; write_json_schema('configs/schema.json')"
    committed = (CONFIGS / "schema.json").read_text()
    assert committed == json.dumps(RunConfig.model_json_schema(), indent=2) + "\n"
    assert committed == json_schema_text()


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_config_file_validates_through_the_model_and_the_schema(path: Path) -> None:
    config = load_config(path)
    assert RunConfig.from_mapping(config.to_mapping()) == config
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((CONFIGS / "schema.json").read_text())
    jsonschema.validate(yaml.safe_load(path.read_text()) or {}, schema)
    # and the schema refuses what the model refuses
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"regoins": "2x2"}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"cluster": {"workers": 0}}, schema)


def test_choices_match_their_implementations() -> None:
    from pipeline.engine import settings
    from pipeline.inputs import options
    from pipeline.kernels import ENGINES
    from pipeline.metrics import colour, profiles

    assert settings.PROFILE_NAMES == tuple(profiles.PROFILES)
    assert settings.WINDOWS == profiles.WINDOWS
    assert settings.COVARIANCES == profiles.COVARIANCES
    assert settings.COLOR_MODES == colour.COLOR_MODES
    assert settings.ENGINES == ENGINES
    assert settings.MISSING_CHUNK_POLICIES == options.MISSING_CHUNK_POLICIES
    # The default limits are imported from pipeline.inputs.options; the settings' defaults
    # give the options' defaults.
    assert settings.RunConfig().input_options() == options.InputOptions()


def test_models_are_frozen() -> None:
    config = RunConfig()
    with pytest.raises(ValidationError):
        config.win_size = 7  # type: ignore[misc]
    with pytest.raises(ValidationError):
        config.cluster.workers = 2  # type: ignore[misc]


@pytest.mark.parametrize(
    ("values", "error", "match"),
    [
        ({"memory": 8}, TypeError, r"cluster.memory must be a string \(got 8\)"),
        ({"walltime": 3600}, TypeError, r"cluster.walltime must be a string \(got 3600\)"),
        ({"workers": "x"}, TypeError, r"cluster.workers must be a positive integer \(got 'x'\)"),
        ({"workers": True}, TypeError, r"cluster.workers must be a positive integer \(got True\)"),
        ({"connect_timeout": "5"}, TypeError, r"cluster.connect_timeout must be a number"),
        ({"extra": [1]}, TypeError, r"cluster.extra must be a mapping \(got \[1\]\)"),
    ],
)
def test_cluster_settings_check_types(values, error, match) -> None:
    with pytest.raises(error, match=match):
        ClusterSettings.from_mapping(values)
    with pytest.raises(error, match=match):
        RunConfig.from_mapping({"cluster": values})


def test_direct_construction_speaks_the_house_words() -> None:
    with pytest.raises(ValueError, match=r"hist_bins must be at least 1 \(got 0\)"):
        RunConfig(hist_bins=0)
    with pytest.raises(TypeError, match=r"unknown setting\(s\) regoins; valid settings: "):
        RunConfig(regoins="2x2")  # type: ignore[call-arg]
    assert RunConfig(win_size=np.int64(7)).win_size == 7
    assert RunConfig(data_range=np.float32(1.0)).data_range == 1.0


def test_data_range_is_checked_by_the_in_memory_api_check() -> None:
    # One check (pipeline.metrics.checks.check_data_range) for settings and ssim() alike.
    for bad, error in ((0, ValueError), (float("nan"), ValueError), ("1", TypeError)):
        with pytest.raises(error) as from_settings:
            RunConfig(data_range=bad)
        with pytest.raises(error) as from_check:
            check_data_range(bad)
        assert str(from_settings.value) == str(from_check.value)
    with pytest.raises(ValueError, match=r"data_ranges\['float32'\] must be a positive finite"):
        RunConfig(data_ranges={"float32": -1})
    assert RunConfig(data_ranges={"<f4": 2}).data_ranges == {"float32": 2.0}


def test_region_spec_is_parsed_once_and_kept_as_text() -> None:
    config = RunConfig(regions="256px")
    assert config.regions == "256px"
    assert config.region_spec == RegionSpec("256px", "tile", tile=256)


def test_ms_weights_need_ms_ssim():
    with pytest.raises(ValueError, match=r"ms_weights were given .* but ms_ssim is false"):
        sp.RunConfig(ms_weights=(0.5, 0.5))
    with pytest.raises(ValueError, match=r"weights must be finite and >= 0"):
        sp.RunConfig(ms_ssim=True, ms_weights=(0.5, -1.0))
    with pytest.raises(TypeError, match=r"ms_ssim must be true or false \(got 'yes'\)"):
        sp.RunConfig(ms_ssim="yes")


@pytest.mark.parametrize(
    ("mapping", "error", "message"),
    [
        ({"scheduler": "yarn"}, ValueError, r"scheduler must be one of threads, .*\(got 'yarn'\)"),
        ({"scheduler": 3}, TypeError, r"cluster.scheduler must be a string"),
        ({"workers": 0}, ValueError, r"cluster.workers must be a positive integer \(got 0\)"),
        ({"connect_timeout": float("inf")}, ValueError, r"connect_timeout must be a positive"),
        ({"nodes": 3}, ValueError, r"unknown key\(s\) in cluster: nodes; valid keys: account"),
    ],
)
def test_bad_settings_are_named(mapping, error, message):
    with pytest.raises(error, match=message):
        ClusterSettings.from_mapping(mapping)


def test_mapping_round_trip():
    settings = ClusterSettings(
        scheduler="slurm",
        workers=2,
        cores=4,
        memory="8GB",
        walltime="01:00:00",
        queue="gpu",
        account="proj42",
        job_directives=("--exclusive",),
    )
    assert ClusterSettings.from_mapping(settings.to_mapping()) == settings


def test_cluster_section_round_trips_through_yaml(tmp_path):
    config = RunConfig(
        regions="2x2",
        cluster=ClusterSettings(scheduler="slurm", workers=4, cores=8, walltime="02:00:00"),
    )
    path = tmp_path / "run.yaml"
    dump_config(config, path)
    assert load_config(path) == config
    assert "cluster:\n  scheduler: slurm\n" in path.read_text()


def test_flat_scheduler_and_num_workers_are_shorthands(tmp_path):
    path = tmp_path / "old.yaml"
    path.write_text("scheduler: processes\nnum_workers: 3\n")
    config = load_config(path)
    assert config.cluster == ClusterSettings(scheduler="processes", workers=3)
    # The shorthand wins over the section: the CLI's --scheduler overrides the file.
    section = RunConfig(cluster={"scheduler": "local", "workers": 2, "connect_timeout": 5})
    moved = section.replace(scheduler="tcp://10.0.0.1:8786")
    assert moved.cluster.scheduler == "tcp://10.0.0.1:8786"
    assert moved.cluster.workers == 2 and moved.cluster.connect_timeout == 5


def test_fingerprint_ignores_the_cluster_section():
    base = RunConfig()
    clustered = base.replace(cluster={"scheduler": "local", "workers": 2})
    assert clustered.fingerprint() == base.fingerprint()
    assert "cluster" not in clustered.result_mapping()


@pytest.mark.parametrize(
    ("values", "error", "message"),
    [
        ({"cluster": "local"}, TypeError, r"cluster must be a mapping of cluster settings"),
        ({"cluster": {"workrs": 2}}, ValueError, r"unknown key\(s\) in cluster: workrs"),
        ({"num_workers": 0}, ValueError, r"cluster.workers must be a positive integer"),
        (
            {"cluster": {"performance_report": "r.html"}},
            ValueError,
            r"performance_report needs a distributed scheduler .*\(got scheduler 'threads'\)",
        ),
        (
            {"cluster": {"scheduler": "slurm", "job_directives": "--exclusive"}},
            TypeError,
            r"job_directives must be a list of strings",
        ),
    ],
)
def test_bad_cluster_sections_are_named(values, error, message):
    with pytest.raises(error, match=message):
        RunConfig.from_mapping(values)


def test_storage_options_reach_the_inputs_but_never_the_stored_configuration() -> None:
    from pipeline.engine.settings import dump_config

    secret = "s3cr3t-Do-Not-Print-7f3a9c1e5b"
    config = RunConfig(storage_options={"key": "AKIA", "secret": secret, "anon": False})
    assert config.input_options().storage_options["secret"] == secret
    assert secret not in repr(config.input_options())
    assert "storage_options" not in config.result_mapping()  # what a results store records
    assert config.fingerprint() == RunConfig().fingerprint()
    assert config.to_mapping()["storage_options"] == {"key": "***", "secret": "***", "anon": False}
    assert secret not in dump_config(config)
    # A dotted change keeps the real secret (to_mapping only hides it from view).
    changed = config.replace_dotted({"storage_options.anon": True})
    assert changed.storage_options == {"key": "AKIA", "secret": secret, "anon": True}


def test_storage_options_must_be_a_mapping() -> None:
    with pytest.raises(TypeError, match=r"storage_options must be a mapping \(got 'anon=true'\)"):
        RunConfig(storage_options="anon=true")

"""The shared run layer without a cluster: configs, checkpoints, storage and which checkpoints stay."""
import os

import pyarrow.fs as pafs
import pytest

from juno.air import Checkpoint, CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from juno.air.storage import CheckpointManager, StorageContext, StorageError, pack_directory


# ---------------------------------------------------------------- configs
def test_scaling_config_defaults_follow_ray():
    s = ScalingConfig(num_workers=3)
    assert s.worker_resources == {"CPU": 1}
    assert s.total_resources == {"CPU": 3}
    assert s.bundles() == [{"CPU": 1}] * 3
    assert ScalingConfig().num_workers == 1


def test_use_gpu_adds_a_gpu_per_worker_and_fractions_pack():
    assert ScalingConfig(num_workers=2, use_gpu=True).worker_resources == {"CPU": 1, "GPU": 1}
    half = ScalingConfig(num_workers=2, use_gpu=True, resources_per_worker={"GPU": 0.5})
    assert half.worker_resources == {"GPU": 0.5}  # Ray: an explicit dict replaces the CPU default
    assert half.total_resources == {"GPU": 1.0}


def test_trainer_resources_get_their_own_first_bundle():
    s = ScalingConfig(num_workers=2, trainer_resources={"CPU": 1})
    assert s.bundles() == [{"CPU": 1}, {"CPU": 1}, {"CPU": 1}]
    assert ScalingConfig(num_workers=2, trainer_resources={"CPU": 0}).bundles() == [{"CPU": 1}, {"CPU": 1}]


@pytest.mark.parametrize("kwargs, match", [
    ({"num_workers": 0}, "num_workers"), ({"num_workers": 1.5}, "num_workers"),
    ({"placement_strategy": "pack"}, "placement_strategy"), ({"resources_per_worker": {"CPU": -1}}, "CPU"),
    ({"use_gpu": True, "resources_per_worker": {"GPU": 0}}, "use_gpu")])
def test_scaling_config_rejects_bad_values_by_name(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ScalingConfig(**kwargs)


def test_run_config_defaults_and_checks(tmp_path):
    rc = RunConfig()
    assert rc.failure_config.max_failures == 0 and rc.checkpoint_config.num_to_keep is None
    assert rc.resolved_storage_path.endswith("juno_results")
    assert RunConfig(storage_path=tmp_path).resolved_storage_path == str(tmp_path)
    assert RunConfig(local_dir=str(tmp_path)).storage_path == str(tmp_path)  # Ray's old name
    with pytest.raises(ValueError, match="name"):
        RunConfig(name="a/b")
    with pytest.raises(ValueError, match="max_failures"):
        FailureConfig(max_failures=-2)
    with pytest.raises(ValueError, match="num_to_keep"):
        CheckpointConfig(num_to_keep=0)
    with pytest.raises(ValueError, match="checkpoint_score_order"):
        CheckpointConfig(checkpoint_score_order="best")
    with pytest.raises(TypeError, match="failure_config"):
        RunConfig(failure_config={"max_failures": 1})


# ---------------------------------------------------------------- checkpoints
def test_checkpoint_dict_form_round_trips():
    ckpt = Checkpoint.from_dict({"epoch": 3, "weights": [1.0, 2.0]})
    assert ckpt.to_dict() == {"epoch": 3, "weights": [1.0, 2.0]}


def test_a_directory_checkpoint_has_no_dict(tmp_path):
    with pytest.raises(ValueError, match="from_dict"):
        Checkpoint.from_directory(tmp_path).to_dict()


def test_checkpoint_directory_copy_and_metadata(tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "w.bin").write_bytes(b"abc")
    ckpt = Checkpoint.from_directory(src)
    ckpt.set_metadata({"step": 1})
    ckpt.update_metadata({"loss": 0.5})
    assert ckpt.get_metadata() == {"step": 1, "loss": 0.5}
    out = ckpt.to_directory(tmp_path / "out")
    assert (tmp_path / "out" / "sub" / "w.bin").read_bytes() == b"abc" and out == str(tmp_path / "out")
    with ckpt.as_directory() as d:
        assert d == str(src)


def test_checkpoint_on_another_filesystem_is_downloaded_for_reading(tmp_path):
    fs = pafs.SubTreeFileSystem(str(tmp_path), pafs.LocalFileSystem())
    fs.create_dir("ck")
    with fs.open_output_stream("ck/model.pt") as f:
        f.write(b"w")
    ckpt = Checkpoint("ck", fs)
    with ckpt.as_directory() as d:
        assert d != str(tmp_path / "ck")
        assert open(os.path.join(d, "model.pt"), "rb").read() == b"w"
    assert not os.path.exists(d)


def test_missing_directories_say_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such directory"):
        Checkpoint.from_directory(tmp_path / "nope")
    ckpt = Checkpoint.from_directory(tmp_path)
    os.rmdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="no longer exists"):
        ckpt.to_directory()


# ---------------------------------------------------------------- storage
def test_storage_writes_state_files_whole_and_appends_reports(tmp_path):
    storage = StorageContext(str(tmp_path), "run")
    storage.ensure_writable()
    storage.write_bytes("state.json", b"{}")
    storage.append_line("result.json", {"loss": 1.0})
    storage.append_line("result.json", {"loss": 0.5})
    assert storage.read_bytes("state.json") == b"{}"
    assert storage.read_bytes("result.json").decode().splitlines() == ['{"loss": 1.0}', '{"loss": 0.5}']
    assert sorted(os.listdir(tmp_path / "run")) == ["result.json", "state.json"]


def test_unwritable_storage_path_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StorageError, match="cannot be written.*storage_path"):
        StorageContext(str(blocker), "run").ensure_writable()


def test_archives_carry_a_checkpoint_between_machines(tmp_path):
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    (src / "a" / "x.txt").write_text("hello")
    storage = StorageContext(str(tmp_path / "store"), "run")
    storage.persist_archive(pack_directory(str(src)), storage.checkpoint_path(7))
    assert (tmp_path / "store" / "run" / "checkpoint_000007" / "a" / "x.txt").read_text() == "hello"


# ---------------------------------------------------------------- which checkpoints stay
def test_num_to_keep_keeps_the_newest_without_a_score():
    m = CheckpointManager(CheckpointConfig(num_to_keep=2))
    assert m.register(1, "c1", {}) == [] and m.register(2, "c2", {}) == []
    assert m.register(3, "c3", {}) == ["c1"]
    assert [e["path"] for e in m.entries] == ["c2", "c3"]


def test_score_ordering_keeps_the_best_and_always_the_latest():
    m = CheckpointManager(CheckpointConfig(num_to_keep=1, checkpoint_score_attribute="acc"))
    m.register(1, "c1", {"acc": 0.9})
    assert m.register(2, "c2", {"acc": 0.5}) == []  # the latest stays for restarts
    assert m.register(3, "c3", {"acc": 0.7}) == ["c2"]
    assert m.best["path"] == "c1" and m.latest["path"] == "c3"
    low = CheckpointManager(CheckpointConfig(num_to_keep=1, checkpoint_score_attribute="val/loss",
                                             checkpoint_score_order="min"))
    low.register(1, "a", {"val": {"loss": 0.2}})
    low.register(2, "b", {"val": {"loss": 0.4}})
    assert low.register(3, "c", {"val": {"loss": 0.3}}) == ["b"]
    assert low.best["path"] == "a"


def test_a_missing_score_attribute_names_it():
    m = CheckpointManager(CheckpointConfig(checkpoint_score_attribute="acc"))
    with pytest.raises(ValueError, match="'acc'.*has no such metric.*loss"):
        m.register(1, "c1", {"loss": 1})

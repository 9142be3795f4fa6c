"""Where a node keeps its logs and sockets: the cluster's session folder when it is on this
machine, else a private folder of the same name here (a node on another machine)."""
import os
import stat

from juno.cluster import local_cluster


def test_a_node_on_the_head_machine_uses_the_cluster_session_folder(tmp_path):
    session = tmp_path / "s1123000000abcdef"
    session.mkdir()
    assert local_cluster.local_session_dir(str(session)) == str(session)


def test_a_node_elsewhere_makes_a_private_folder_of_the_same_name(tmp_path, monkeypatch):
    monkeypatch.setattr(local_cluster, "TEMP_ROOT", str(tmp_path / "here"))
    remote = "/nonexistent/elsewhere/juno-clusters/s1123000000abcdef/"
    made = local_cluster.local_session_dir(remote)
    assert made == str(tmp_path / "here" / "s1123000000abcdef")
    assert os.path.isdir(os.path.join(made, "logs"))
    assert stat.S_IMODE(os.stat(os.path.join(made, "sock")).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(made).st_mode) == 0o700
    assert local_cluster.local_session_dir(remote) == made  # a second node on this machine shares it

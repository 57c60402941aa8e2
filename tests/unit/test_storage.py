"""fi_spark.storage: one answer to "is this remote", path joining, and file I/O on local folders and s3://."""

from __future__ import annotations

from pathlib import Path

import pytest

from fi_spark import storage


@pytest.mark.parametrize(
    ("path", "remote"),
    [
        ("s3://bucket/run", True),
        ("s3a://bucket/run", True),
        ("gs://bucket/run", True),
        ("dbfs:/mnt/run", True),
        ("file:///tmp/run", False),
        ("/tmp/run", False),
        ("relative/run", False),
        ("C:/data/run", False),
    ],
)
def test_is_remote_is_true_for_every_scheme_but_file(path: str, remote: bool) -> None:
    """One definition: any URI scheme but file:// is remote (the two old checks disagreed on s3a and gs)."""
    assert storage.is_remote(path) is remote


def test_join_keeps_the_root_form_and_single_slashes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """URIs keep their scheme, slashes are not doubled, empty parts vanish, a local ~ is expanded."""
    monkeypatch.setenv("HOME", str(tmp_path))
    assert storage.join("s3://b/run/", "/tables/", "docs") == "s3://b/run/tables/docs"
    assert storage.join("file:///tmp/x", "a") == "file:///tmp/x/a"
    assert storage.join("~/out", "", "index") == f"{tmp_path}/out/index"
    assert storage.join("/", "a") == "/a"


def test_local_path_strips_file_scheme_and_refuses_remote() -> None:
    """file:// URIs become absolute local paths; a remote URI is an error, not a mangled path."""
    assert storage.local_path("file:///tmp/x") == "/tmp/x"
    assert storage.local_path("file://localhost/tmp/x") == "/tmp/x"
    with pytest.raises(ValueError, match="remote"):
        storage.local_path("s3://b/x")


def _round_trip(root: str) -> None:
    target = storage.join(root, "a", "b.txt")
    assert not storage.exists(target) and storage.list_files(root) == []
    storage.write_bytes(target, b"one")
    storage.write_bytes(storage.join(root, "c.txt"), b"two")
    assert storage.exists(target) and storage.exists(storage.join(root, "a"))
    assert storage.read_bytes(target) == b"one"
    assert storage.list_files(root) == [storage.join(root, "a", "b.txt"), storage.join(root, "c.txt")]
    storage.delete(storage.join(root, "a"))
    storage.delete(storage.join(root, "missing"))  # nothing there is fine
    assert storage.list_files(root) == [storage.join(root, "c.txt")]


def test_local_round_trip_leaves_no_temp_files(tmp_path: Path) -> None:
    """write/exists/read/list/delete on a local folder; atomic writes leave no temporary file behind."""
    _round_trip(str(tmp_path / "root"))
    assert [p.name for p in (tmp_path / "root").iterdir()] == ["c.txt"]


def test_s3_round_trip(moto_s3: str) -> None:
    """The same operations on s3:// and s3a:// against a local S3 server, credentials from the AWS chain."""
    import boto3

    boto3.client("s3").create_bucket(Bucket="fi-store")
    _round_trip("s3://fi-store/run")
    _round_trip("s3a://fi-store/other")
    keys = sorted(o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket="fi-store")["Contents"])
    assert [k for k in keys if not k.endswith("/")] == ["other/c.txt", "run/c.txt"]  # pyarrow keeps folder markers


def test_copy_file_uploads_and_downloads(tmp_path: Path, moto_s3: str) -> None:
    """copy_file moves bytes local -> s3 -> local, creating local parent folders."""
    import boto3

    boto3.client("s3").create_bucket(Bucket="fi-copy")
    (tmp_path / "src.bin").write_bytes(b"\x00\x01payload")
    storage.copy_file(str(tmp_path / "src.bin"), "s3://fi-copy/x/src.bin")
    storage.copy_file("s3://fi-copy/x/src.bin", str(tmp_path / "deep" / "back.bin"))
    assert (tmp_path / "deep" / "back.bin").read_bytes() == b"\x00\x01payload"


def test_unsupported_scheme_names_what_works() -> None:
    """A scheme pyarrow cannot open (dbfs:/) fails with a message naming the locations that work."""
    with pytest.raises(ValueError, match="local paths or s3://"):
        storage.read_bytes("dbfs:/mnt/run/LATEST")

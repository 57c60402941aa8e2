"""fi_spark.storage: one answer to "is this remote", path joining, and file I/O on local folders and s3://."""

from __future__ import annotations

import gzip
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


def test_list_files_of_a_file_is_the_file(tmp_path: Path) -> None:
    """A root that is a file lists itself (the WARC reader lists whatever path it is given)."""
    (tmp_path / "one.warc.gz").write_bytes(b"x")
    assert storage.list_files(str(tmp_path / "one.warc.gz")) == [str(tmp_path / "one.warc.gz")]


def _gz_round_trip(path: str) -> None:
    blob = gzip.compress(b"a WARC would be here")
    storage.write_bytes(path, blob)
    assert storage.read_bytes(path) == blob  # as stored: pyarrow would un-gzip a .gz name by itself
    with storage.open_input(path) as fh:
        assert fh.read(2) == b"\x1f\x8b"
        fh.seek(0)  # seekable: the WARC reader seeks back to check the gzip stream is whole
        assert fh.read() == blob


def test_open_input_is_seekable_and_keeps_gzip_bytes(tmp_path: Path, moto_s3: str) -> None:
    """open_input gives the stored bytes of a .gz file in a seekable file, locally and from s3://."""
    import boto3

    boto3.client("s3").create_bucket(Bucket="fi-open")
    _gz_round_trip(str(tmp_path / "x.warc.gz"))
    _gz_round_trip("s3://fi-open/in/x.warc.gz")


def test_small_object_reads_retry_through_throttling(
    tmp_path: Path, moto_s3: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A throttled GET of an object smaller than S3's error document (which the SDK does not retry) is retried
    by read_bytes, open_input and copy_file; a missing object is still an error at once."""
    import boto3

    from tests.s3_faults import FaultyS3Proxy

    client = boto3.client("s3")
    client.create_bucket(Bucket="fi-throttle")
    for name in ("a", "b", "c"):
        client.put_object(Bucket="fi-throttle", Key=f"tiny/{name}", Body=b"v1\n")
    with FaultyS3Proxy(
        moto_s3, every=0, slowdown_attempts=0, first_attempt_of=("/tiny/a", "/tiny/b", "/tiny/c")
    ) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        assert storage.read_bytes("s3://fi-throttle/tiny/a") == b"v1\n"
        with storage.open_input("s3://fi-throttle/tiny/b") as fh:
            assert fh.read() == b"v1\n"
        storage.copy_file("s3://fi-throttle/tiny/c", str(tmp_path / "c"))
        with pytest.raises(FileNotFoundError):
            storage.read_bytes("s3://fi-throttle/tiny/missing")
    assert (tmp_path / "c").read_bytes() == b"v1\n"
    assert proxy.faulted_paths == {"/fi-throttle/tiny/a", "/fi-throttle/tiny/b", "/fi-throttle/tiny/c"}
    assert proxy.counts["SlowDown"] >= 6  # the HEAD and the GET of each, once

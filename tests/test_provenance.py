"""Provenance: content hashes, package versions and the CPU name that rows carry."""

from __future__ import annotations

import hashlib
import platform

from mccom_core.provenance import cpu_name, file_sha256, package_versions


def test_file_sha256_reads_in_chunks(tmp_path):
    path = tmp_path / "blob.bin"
    data = bytes(range(256)) * 37  # 9,472 bytes: several chunks of 1,000 and a short last one
    path.write_bytes(data)
    assert file_sha256(path, chunk=1000) == hashlib.sha256(data).hexdigest()
    path.write_bytes(b"")
    assert file_sha256(path) == hashlib.sha256(b"").hexdigest()


def test_package_versions_marks_missing_packages():
    versions = package_versions(("pandas", "no-such-package-mccom"))
    assert list(versions) == ["python", "pandas", "no-such-package-mccom"]
    assert versions["python"] == platform.python_version()
    assert versions["no-such-package-mccom"] == "-"
    assert versions["pandas"][0].isdigit()


def test_cpu_name_counts_cores():
    assert cpu_name().endswith(" cores") and cpu_name().split(", ")[-1].split()[0].isdigit()

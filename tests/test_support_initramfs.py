"""The newc writer of tests/support/initramfs.py, read back by GNU cpio (the oracle)."""

from __future__ import annotations

import stat
import subprocess

import pytest

from support.initramfs import newc_archive


@pytest.mark.oracle("cpio")
def test_gnu_cpio_extracts_what_was_written(tmp_path):
    files = {"x86vm-init": b"#!/bin/sh\necho hi\n", "bin/tool": bytes(range(256)) * 3,
             "etc/deep/dir/odd": b"12345"}   # lengths 0 mod 4, and not
    archive = newc_archive(files, ("x86vm-init", "bin/tool"))
    listing = subprocess.run(["cpio", "-t", "--quiet"], input=archive, capture_output=True,
                             check=True).stdout.decode().split()
    assert sorted(listing) == sorted(["bin", "etc", "etc/deep", "etc/deep/dir", *files])
    out = tmp_path / "root"
    out.mkdir()
    subprocess.run(["cpio", "-id", "--quiet"], input=archive, cwd=out, check=True)
    for path, data in files.items():
        assert (out / path).read_bytes() == data
    assert stat.S_IMODE((out / "x86vm-init").stat().st_mode) == 0o755
    assert stat.S_IMODE((out / "etc/deep/dir/odd").stat().st_mode) == 0o644
    assert (out / "etc/deep").is_dir()

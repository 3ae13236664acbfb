#!/usr/bin/env python3
"""Writes the layer fixtures of agent_test.c into a directory: NAME.tar (+ .gz, .zst variants)
and NAME.sha256 (the diff_id: sha256 of the uncompressed tar, padding included)."""
import gzip
import hashlib
import io
import subprocess
import sys
import tarfile

out = sys.argv[1]


def entry(name, kind=tarfile.REGTYPE, data=b"", mode=0o644, uid=0, gid=0, mtime=1600000000, link="", pax=None, dev=(0, 0)):
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.uid, info.gid, info.mtime, info.linkname = kind, mode, uid, gid, mtime, link
    info.devmajor, info.devminor = dev
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    if pax:
        info.pax_headers = pax
    return info, (io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def d(name, **kw):
    return entry(name, tarfile.DIRTYPE, mode=kw.pop("mode", 0o755), **kw)


def write(name, entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, data)
    raw = buf.getvalue()  # padded to a 10240-byte record after the end-of-archive blocks
    open(f"{out}/{name}.tar", "wb").write(raw)
    open(f"{out}/{name}.sha256", "w").write("sha256:" + hashlib.sha256(raw).hexdigest())
    return raw


def zstd(data):
    return subprocess.run(["zstd", "-q", "-c"], input=data, stdout=subprocess.PIPE, check=True).stdout


base = write("base", [
    d("etc"),
    entry("etc/lower.txt", data=b"lower\n", uid=1000, gid=1001, mtime=1500000000),
    entry("etc/link-src", data=b"shared\n"),
    entry("etc/hard", tarfile.LNKTYPE, link="etc/lower.txt"),
    entry("etc/xattr", data=b"x", pax={"SCHILY.xattr.user.vmrun": "yes"}),
    d("bin"),
    entry("bin/suid", data=b"#!/bin/sh\n", mode=0o4755),
    entry("bin/sh-link", tarfile.SYMTYPE, link="/bin/suid"),
    d("run"),
    entry("run/fifo", tarfile.FIFOTYPE, mode=0o600),
    d("dev"),
    entry("dev/null-copy", tarfile.CHRTYPE, mode=0o666, dev=(1, 3)),
    d("dated", mtime=1234567890),
    entry("dated/f", data=b"f"),
    entry("wh/file", data=b"gone"),
    entry("wh/dir/sub/x", data=b"gone"),
    entry("wh/stays", data=b"stays"),
    entry("opq-before/old", data=b"old"),
    entry("opq-after/old", data=b"old"),
    entry("opq-after/keepdir/oldchild", data=b"old"),
    entry("keep/same", data=b"lower"),
    entry("shared/a", data=b"one"),
    entry("shared/b", tarfile.LNKTYPE, link="shared/a"),
    entry("replace-dir/child", data=b"c"),
    entry("replace-link", tarfile.SYMTYPE, link="etc"),
    entry("esc", tarfile.SYMTYPE, link="/"),
    entry("esc2", tarfile.SYMTYPE, link="../../../../../.."),
    entry("ünï/cödé.txt", data=b"utf8"),
])

# Variants of the same stream: one gzip member, two members, one zstd frame, two frames.
open(f"{out}/base.tar.gz", "wb").write(gzip.compress(base))
half = len(base) // 2
open(f"{out}/base.multi.tar.gz", "wb").write(gzip.compress(base[:half]) + gzip.compress(base[half:]))
open(f"{out}/base.tar.zst", "wb").write(zstd(base))
open(f"{out}/base.multi.tar.zst", "wb").write(zstd(base[:half]) + zstd(base[half:]))

# Zeros after the tar's own padding, which the tar reader never needs: the diff_id covers them.
tail = base + bytes(256 * 1024)
open(f"{out}/tail.tar", "wb").write(tail)
open(f"{out}/tail.sha256", "w").write("sha256:" + hashlib.sha256(tail).hexdigest())

write("upper", [
    entry("wh/.wh.file"),
    entry("wh/.wh.dir"),
    entry("opq-before/.wh..wh..opq"),
    entry("opq-before/new", data=b"new"),
    entry("opq-after/new", data=b"new"),
    entry("opq-after/keepdir/newchild", data=b"new"),  # keepdir itself has no entry here
    entry("opq-after/.wh..wh..opq"),
    entry("keep/same", data=b"upper"),
    entry("keep/.wh.same"),  # whiteouts hide lower layers only
    entry("hardlower", tarfile.LNKTYPE, link="etc/lower.txt"),
    entry("abs-hard", tarfile.LNKTYPE, link="/etc/link-src"),
    entry("esc/pwned", data=b"inside"),
    entry("esc2/pwned2", data=b"inside"),
    entry("replace-dir", data=b"now a file"),
    d("replace-link"),
    entry("replace-link/inner", data=b"in a real directory"),
    entry("shared/a", data=b"two"),
])

write("dotdot", [entry("ok.txt", data=b"ok"), entry("../evil", data=b"evil")])
write("hard-dotdot", [entry("h", tarfile.LNKTYPE, link="../../etc/passwd")])
write("sneaky-dotdot", [entry("a/../../evil", data=b"evil")])

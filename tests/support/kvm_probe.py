"""Is /dev/kvm usable? Asked with raw ioctls, independently of x86vm's own KVM code.

The KVM API (Documentation/virt/kvm/api.rst §4.1, §4.2): ``KVM_GET_API_VERSION`` on the
/dev/kvm fd returns 12, ``KVM_CREATE_VM`` returns a VM fd. The request numbers are
``_IO(KVMIO, 0x00)`` and ``_IO(KVMIO, 0x01)`` from <linux/kvm.h> with KVMIO = 0xAE
(tests/test_support_gates.py checks them against the header with gcc).
"""

from __future__ import annotations

import fcntl
import functools
import os

KVM_PATH = "/dev/kvm"
KVM_GET_API_VERSION = 0xAE00
KVM_CREATE_VM = 0xAE01
KVM_API_VERSION = 12


def raw_kvm_unusable_reason(path: str = KVM_PATH) -> str | None:
    """None if ``path`` opens, reports API version 12 and creates a VM; else why not."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        return f"cannot open {path}: {exc.strerror}"
    try:
        try:
            version = fcntl.ioctl(fd, KVM_GET_API_VERSION, 0)
        except OSError as exc:
            return f"KVM_GET_API_VERSION on {path} failed: {exc.strerror}"
        if version != KVM_API_VERSION:
            return f"{path} reports KVM API version {version}, not {KVM_API_VERSION}"
        try:
            vm_fd = fcntl.ioctl(fd, KVM_CREATE_VM, 0)
        except OSError as exc:
            return f"KVM_CREATE_VM on {path} failed: {exc.strerror}"
        os.close(vm_fd)
        return None
    finally:
        os.close(fd)


@functools.cache
def kvm_unusable_reason() -> str | None:
    """:func:`raw_kvm_unusable_reason` for the default device, asked once per process."""
    return raw_kvm_unusable_reason()

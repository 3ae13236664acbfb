// <linux/kvm.h>, fixed for C++. Linux 6.1's uapi <linux/stddef.h> expands __DECLARE_FLEX_ARRAY
// to an empty struct plus a zero-length array; in C++ the empty struct takes a byte, which
// makes sizeof(kvm_cpuid2) 12 instead of 8, shifts `entries`, and changes the ioctl numbers
// (KVM_GET_SUPPORTED_CPUID then fails with EINVAL). Later kernels fixed the header the same way.
#pragma once

#include <linux/stddef.h>

#undef __DECLARE_FLEX_ARRAY
#define __DECLARE_FLEX_ARRAY(TYPE, NAME) TYPE NAME[0]

#include <linux/kvm.h>

static_assert(sizeof(kvm_cpuid2) == 8, "kvm_cpuid2 must match the kernel's layout");
static_assert(sizeof(kvm_msrs) == 8, "kvm_msrs must match the kernel's layout");

/*
 * LD_PRELOAD shim: marks a program's private anonymous mappings MADV_MERGEABLE, as kernels
 * before 6.4 (no prctl(PR_SET_MEMORY_MERGE)) need for an unmodified program's memory to be
 * merged by KSM. Used by rmap-trace's JVM guest suite (cargo xtask vm-test --suite jvm).
 *
 * Every mmap() call that reaches this symbol (through the PLT: calls from the program and its
 * libraries, such as libjvm.so) is passed to the kernel unchanged, and a private anonymous
 * mapping it made is then marked. MAP_FIXED matters: HotSpot reserves its heap PROT_NONE and
 * commits it by mmap(MAP_FIXED) over the reservation, which makes a new VMA without
 * VM_MERGEABLE (mm/mmap.c, mmap_region); that call is caught here too, so the committed heap
 * ends up mergeable. mprotect(), mremap() and VMA splits keep VM_MERGEABLE (a vm_flags bit).
 *
 * Limits: mappings glibc makes by its own internal calls (malloc arenas, thread stacks), brk
 * memory, file-backed private mappings and raw syscalls never reach this symbol or are not
 * marked; a MADV_MERGEABLE failure is ignored, as the mapping itself succeeded.
 */
#define _GNU_SOURCE
#include <stddef.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

/* The system call itself, not libc's mmap (which this file replaces). */
static void *real_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	return (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	void *p = real_mmap(addr, len, prot, flags, fd, off);
	if (p != MAP_FAILED && (flags & MAP_ANONYMOUS) && (flags & MAP_TYPE) == MAP_PRIVATE)
		(void)madvise(p, len, MADV_MERGEABLE);
	return p;
}

/* glibc's 64-bit alias: the same call on x86-64. */
void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	return mmap(addr, len, prot, flags, fd, off);
}

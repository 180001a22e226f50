//! Running a loaded `raw_tp` program in the calling thread with `BPF_PROG_TEST_RUN`, so that
//! the real programs run without their tracepoint (`bpf_get_current_pid_tgid` is this thread's).
use std::io;

/// `union bpf_attr`'s `test` member (include/uapi/linux/bpf.h, `BPF_PROG_TEST_RUN`), up to
/// `batch_size`.
#[repr(C)]
#[derive(Default)]
struct TestRun {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    pad: u32,
}

const BPF_PROG_TEST_RUN: libc::c_long = 10;

/// Runs a `raw_tp` program once in this thread with `args` as its tracepoint arguments (`raw_tp`
/// takes no `repeat`: `net/bpf/test_run.c`, `bpf_prog_test_run_raw_tp`, rejects it).
pub fn raw_tp(prog_fd: i32, args: &[u64; 3]) -> io::Result<()> {
    let mut attr = TestRun {
        prog_fd: prog_fd as u32,
        ctx_size_in: size_of_val(args) as u32,
        ctx_in: args.as_ptr() as u64,
        ..TestRun::default()
    };
    // SAFETY: `attr` is a valid bpf_attr prefix the kernel reads (and writes `retval`,
    // `duration` into) for the duration of the call; `args` outlives it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            &raw mut attr,
            size_of::<TestRun>(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

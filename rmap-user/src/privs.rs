//! The capabilities rmap-trace was given, made effective at start. A container image gives
//! its binary file capabilities without the effective bit (`cap_bpf,…=p`): the kernel then
//! grants whichever of them the container's bounding set allows (with the effective bit, a
//! missing one would make `execve` fail with EPERM), and the program raises them itself.
//! Under systemd's `AmbientCapabilities=` or as root they are effective already: nothing to do.
use std::io;

/// `_LINUX_CAPABILITY_VERSION_3` (include/uapi/linux/capability.h): two 32-bit words per set.
const VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct Header {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Data {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

fn get() -> io::Result<[Data; 2]> {
    let mut h = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut d = [Data::default(); 2];
    // SAFETY: capget(2) with a version-3 header and the two data words it fills.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &raw mut h, d.as_mut_ptr()) };
    if rc == 0 {
        Ok(d)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Makes every permitted capability effective; returns whether any was raised.
pub fn raise_permitted() -> io::Result<bool> {
    let mut d = get()?;
    if d.iter().all(|w| w.effective == w.permitted) {
        return Ok(false);
    }
    for w in &mut d {
        w.effective = w.permitted;
    }
    let mut h = Header {
        version: VERSION_3,
        pid: 0,
    };
    // SAFETY: capset(2) on this thread with a version-3 header and both data words; an
    // effective set within the permitted one needs no privilege.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &raw mut h, d.as_ptr()) };
    if rc == 0 {
        Ok(true)
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whatever this test runs with (root, a user), afterwards effective = permitted, and a
    /// second call has nothing left to raise.
    #[test]
    fn effective_becomes_permitted() {
        raise_permitted().unwrap();
        let d = get().unwrap();
        assert!(d.iter().all(|w| w.effective == w.permitted));
        assert!(!raise_permitted().unwrap());
    }
}

//! Start-up checks that run before any executor exists, so a missing
//! io_uring or a low memlock limit is reported with its cause and its fix
//! instead of glommio's panic (which blames the kernel version).

/// glommio refuses to create an executor below this soft RLIMIT_MEMLOCK
/// (`MIN_MEMLOCK_LIMIT` in its `sys/uring.rs`).
pub const MEMLOCK_MIN_BYTES: u64 = 512 * 1024;

/// `io_uring_setup` on x86_64 and aarch64.
const SYS_IO_URING_SETUP: libc::c_long = 425;

/// Raises the soft limit of `resource` to its hard limit; returns the
/// limit in force, `None` when it cannot be read.
fn raise_soft_limit(resource: libc::__rlimit_resource_t) -> Option<libc::rlimit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit fill and read a plain struct.
    unsafe {
        if libc::getrlimit(resource, &mut lim) != 0 {
            return None;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(resource, &raised) == 0 {
                lim = raised;
            }
        }
    }
    Some(lim)
}

/// Raises the soft open-files limit to the hard one (each connection is
/// one descriptor) and returns it, for sizing the connection caps.
pub fn nofile() -> Option<u64> {
    raise_soft_limit(libc::RLIMIT_NOFILE).map(|l| l.rlim_cur)
}

/// Raises the soft memlock limit to the hard one, then checks it.
pub fn memlock() -> Result<(), String> {
    let Some(lim) = raise_soft_limit(libc::RLIMIT_MEMLOCK) else {
        return Ok(()); // cannot tell; let glommio decide
    };
    if lim.rlim_cur != libc::RLIM_INFINITY && lim.rlim_cur < MEMLOCK_MIN_BYTES {
        return Err(format!(
            "RLIMIT_MEMLOCK is {} KiB (hard limit {} KiB); rocketns needs at least {} KiB of locked \
             memory for io_uring. Raise it: `ulimit -l 8192`, `docker run --ulimit memlock=8388608`, \
             or LimitMEMLOCK= in the systemd unit.",
            lim.rlim_cur / 1024,
            lim.rlim_max / 1024,
            MEMLOCK_MIN_BYTES / 1024
        ));
    }
    Ok(())
}

/// Sets up and tears down a tiny ring, telling the causes apart by errno.
pub fn io_uring() -> Result<(), String> {
    let mut params = [0u8; 120]; // struct io_uring_params, zeroed
                                 // SAFETY: io_uring_setup reads and writes `params`; a returned fd is ours.
    let fd = unsafe { libc::syscall(SYS_IO_URING_SETUP, 4 as libc::c_long, params.as_mut_ptr()) };
    if fd >= 0 {
        // SAFETY: closing the ring we just created.
        unsafe { libc::close(fd as libc::c_int) };
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .ok()
        .map(|s| s.trim().to_string());
    Err(explain_io_uring(
        err.raw_os_error().unwrap_or(0),
        disabled.as_deref(),
    ))
}

fn explain_io_uring(errno: i32, disabled: Option<&str>) -> String {
    let seccomp = "Container runtimes block io_uring in their default seccomp profiles \
        (Docker 25+, containerd 2.0, podman, Kubernetes RuntimeDefault): run rocketns with a \
        profile that allows io_uring_setup, io_uring_enter and io_uring_register (the repository \
        ships one: deploy/seccomp/rocketns.json), e.g. --security-opt seccomp=<that profile>.";
    match (errno, disabled) {
        (libc::EPERM, Some(level)) if level != "0" => format!(
            "io_uring is disabled on this host: kernel.io_uring_disabled = {level} (EPERM). \
             Set `sysctl kernel.io_uring_disabled=0`, or with 1 add the user to the group in \
             kernel.io_uring_group."
        ),
        (libc::ENOSYS, _) => format!(
            "io_uring_setup is not available (ENOSYS): either a seccomp filter hides it or the \
             kernel is older than 5.8. {seccomp}"
        ),
        (libc::EPERM, _) | (libc::EACCES, _) => {
            format!(
                "io_uring_setup is denied (errno {errno}) by a seccomp filter or an LSM. {seccomp}"
            )
        }
        (errno, _) => format!(
            "io_uring_setup failed: {}; rocketns needs Linux 5.8+ with io_uring.",
            std::io::Error::from_raw_os_error(errno)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cause_names_its_fix() {
        assert!(explain_io_uring(libc::ENOSYS, Some("0")).contains("seccomp"));
        assert!(explain_io_uring(libc::EPERM, Some("2")).contains("io_uring_disabled = 2"));
        assert!(explain_io_uring(libc::EPERM, Some("0")).contains("seccomp"));
        assert!(explain_io_uring(libc::EINVAL, None).contains("5.8"));
    }

    #[test]
    fn this_machine_passes() {
        memlock().unwrap();
        io_uring().unwrap();
    }
}

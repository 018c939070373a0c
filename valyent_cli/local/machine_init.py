"""The launcher of an isolated machine: run as `python -I -S machine_init.py SPEC_JSON` with the workload's environment.

Standard library only, and run with -I (so that the machine's PYTHON* variables cannot change it) by path, not as a
module. What it does (Linux):
1. the launcher process unshares a user, a mount and a PID namespace (root inside is the sandbox's own user; when the
   sandbox runs as root, uids 0-65535 map to themselves so that `init.user` can switch to another user);
2. it forks the machine's init, PID 1 of the new PID namespace, which:
   - makes the machine's directory the root of the mount namespace with pivot_root (not chroot: root inside the
     namespace could leave a chroot), so the host's files, the sandbox's token and database, and other machines'
     directories are not reachable from it at all;
   - mounts /proc (of the new PID namespace), a small /dev, and binds the host's system directories read-only and
     the machine's volumes read-write at their paths (sources opened before the pivot, mounted through
     /proc/self/fd, so a symlink the machine planted cannot redirect a mount);
   - writes its host pid to `init.pid` in the machine's state directory (what `exec` joins), which also says "ready";
   - starts the workload in its own session, forwards every catchable signal to the workload's process group,
     reaps orphans, and exits with the workload's exit code (128 + N for signal N) when it exits: the kernel then
     kills every other process of the namespace (setsid children, running `exec`s included);
3. the launcher ignores those signals (init gets them from the process group) and exits with init's code.
Setup failures are written to stderr prefixed "machine init:" and exit with 125.
"""

import ctypes
import errno
import grp  # noqa: F401  (imported before the pivot: the standard library may not be in the machine)
import json
import os
import pwd  # noqa: F401
import signal
import sys
import warnings  # noqa: F401  (os.execvpe imports it)

assert warnings  # the import is what matters

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG = 1
PR_CAPBSET_DROP = 24
CAP_SYS_ADMIN = 21
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "loongarch64": 41, "ppc64le": 203, "ppc64": 203,
                  "s390x": 217, "i686": 217, "i386": 217, "armv7l": 218, "armv6l": 218}
SYS_MOUNT_SETATTR = 442
AT_FDCWD = -100
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 1
LOCKED_FLAGS = MS_NOSUID | MS_NODEV | MS_NOEXEC | 1024 | 2048 | 4096  # + noatime, nodiratime, relatime
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
SETUP_FAILED = 125
PROC_READ_ONLY = ("/proc/sys", "/proc/sysrq-trigger", "/proc/bus", "/proc/fs", "/proc/irq")
PROC_MASKED = ("/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug", "/proc/latency_stats")
# where pivot_root puts the host's root until it is detached: a fresh random name per machine, which no request can
# name (a volume mounted over a fixed one hid the host's root from the detach and left it to the machine: issue 27)
OLD_ROOT = ".valyent-old-root-" + os.urandom(16).hex()

libc = ctypes.CDLL(None, use_errno=True)


class SetupError(Exception):
    pass


def _check(ret, what):
    if ret != 0:
        err = ctypes.get_errno()
        raise SetupError(f"{what}: {os.strerror(err)}")


def mount(source, target, fstype, flags, data=None):
    _check(libc.mount(source.encode() if source else None, target.encode(), fstype.encode() if fstype else None,
                      ctypes.c_ulong(flags), data.encode() if data else None), f"mount {target}")


def make_read_only(target):
    class MountAttr(ctypes.Structure):
        _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                    ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]

    attr = MountAttr(MOUNT_ATTR_RDONLY, 0, 0, 0)
    if libc.syscall(SYS_MOUNT_SETATTR, AT_FDCWD, target.encode(), AT_RECURSIVE, ctypes.byref(attr),
                    ctypes.sizeof(attr)) == 0:
        return
    # older kernels: remount the top mount read-only, keeping the flags the kernel locks in a user namespace
    flags = os.statvfs(target).f_flag & LOCKED_FLAGS
    mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | flags)


def ensure_dir(path, mode=0o755):
    """mkdir -p inside the new root, replacing a symlink or file in the way (mount points are the sandbox's)."""
    cur = ""
    for comp in [c for c in path.split("/") if c]:
        cur += "/" + comp
        if os.path.islink(cur) or (os.path.lexists(cur) and not os.path.isdir(cur)):
            os.unlink(cur)
        if not os.path.isdir(cur):
            os.mkdir(cur, mode)


def unshare_and_map():
    """New user, mount and PID namespaces, root inside. As the host's root, a helper still outside maps uids and
    gids 0-65535 to themselves (so init.user can switch users); otherwise only our own uid is mapped, to 0."""
    uid, gid = os.geteuid(), os.getegid()
    helper = None
    if uid == 0:
        go_r, go_w = os.pipe()
        me = os.getpid()
        helper = os.fork()
        if helper == 0:
            os.close(go_w)
            os.read(go_r, 1)
            try:
                for name in ("uid_map", "gid_map"):
                    with open(f"/proc/{me}/{name}", "w") as fh:
                        fh.write("0 0 65536")
            except OSError:
                os._exit(1)
            os._exit(0)
        os.close(go_r)
    _check(libc.unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID), "unshare")
    if helper is not None:
        os.write(go_w, b"1")
        os.close(go_w)
        _, status = os.waitpid(helper, 0)
        if os.waitstatus_to_exitcode(status) == 0:
            return
    with open("/proc/self/setgroups", "w") as fh:
        fh.write("deny")
    with open("/proc/self/uid_map", "w") as fh:
        fh.write(f"0 {uid} 1")
    with open("/proc/self/gid_map", "w") as fh:
        fh.write(f"0 {gid} 1")


def setup_root(spec, fds, dev_fds):
    root = spec["root"]
    mount(root, root, None, MS_BIND | MS_REC)
    # /proc first, while the host's /proc is still in this mount namespace: the kernel lets a user namespace mount
    # a proc only where a fully visible one already is
    proc = os.path.join(root, "proc")
    if os.path.islink(proc) or (os.path.lexists(proc) and not os.path.isdir(proc)):
        os.unlink(proc)
    if not os.path.isdir(proc):
        os.mkdir(proc, 0o555)
    mount("proc", proc, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    old = os.path.join(root, OLD_ROOT)
    if os.path.islink(old) or (os.path.lexists(old) and not os.path.isdir(old)):
        os.unlink(old)
    if not os.path.isdir(old):
        os.mkdir(old, 0o700)
    os.chdir(root)
    arch = os.uname().machine
    if arch not in SYS_PIVOT_ROOT:  # the probe fails, and the sandbox says machines are not isolated
        raise SetupError(f"pivot_root: unknown system call number on {arch}")
    _check(libc.syscall(SYS_PIVOT_ROOT[arch], b".", OLD_ROOT.encode()), "pivot_root")
    os.chdir("/")
    ensure_dir("/dev")
    mount("tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=755,size=1m")
    for name, fd in dev_fds.items():
        open(f"/dev/{name}", "w").close()
        mount(f"/proc/self/fd/{fd}", f"/dev/{name}", None, MS_BIND)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                         ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"/dev/{name}")
    os.mkdir("/dev/shm", 0o1777)
    os.chmod("/dev/shm", 0o1777)
    for (src, dst, ro), fd in zip(spec["mounts"], fds):
        if dst.strip("/").split("/")[0] == OLD_ROOT:
            raise SetupError(f"refusing to mount over the host's root ({dst})")
        ensure_dir(dst)
        mount(f"/proc/self/fd/{fd}", dst, None, MS_BIND | MS_REC)
        if ro:
            make_read_only(dst)
    # the kernel's knobs stay out of reach even where root inside is the host's root uid (a sandbox run as root)
    for path in PROC_READ_ONLY:
        if os.path.exists(path):
            mount(path, path, None, MS_BIND | MS_REC)
            make_read_only(path)
    for path in PROC_MASKED:
        if os.path.isfile(path) and "null" in dev_fds:
            mount("/dev/null", path, None, MS_BIND)
    # the binds above came from mounts of the old root: only now can it go
    _check(libc.umount2(f"/{OLD_ROOT}".encode(), MNT_DETACH), "detach the host's root")
    with open("/proc/self/mountinfo") as fh:
        check_host_root_gone(f"/{OLD_ROOT}", fh.read())
    try:
        os.rmdir(f"/{OLD_ROOT}")
    except OSError:
        pass
    if not os.path.isdir("/tmp"):
        ensure_dir("/tmp")
        os.chmod("/tmp", 0o1777)


def check_host_root_gone(old_root, mountinfo):
    """After the detach nothing may be mounted at or under the old root's mount point (a mount over it would have
    been detached in its place, leaving the host's root below it): else set-up fails. `mountinfo`: the text of
    /proc/self/mountinfo, whose 5th field is the mount point (octal escapes for spaces)."""
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        point = fields[4].encode().decode("unicode_escape")
        if point == old_root or point.startswith(old_root + "/"):
            raise SetupError(f"the host's root is still mounted in the machine (at {point}): refusing to start it")


def drop_mount_capability():
    """Root inside owns the namespaces, so it could unmount or remount read-write what init mounted read-only: drop
    CAP_SYS_ADMIN from the bounding set (`exec` does the same through setpriv)."""
    _check(libc.prctl(PR_CAPBSET_DROP, CAP_SYS_ADMIN, 0, 0, 0), "drop CAP_SYS_ADMIN")


def switch_user(user):
    if not user or user in ("root", "0", "0:0"):
        return
    name, _, group = user.partition(":")
    try:
        pw = pwd.getpwuid(int(name)) if name.isdigit() else pwd.getpwnam(name)
        uid, gid, home = pw.pw_uid, pw.pw_gid, pw.pw_dir
    except KeyError:
        if not name.isdigit():
            raise SetupError(f"init.user {user!r}: no such user in the machine's /etc/passwd") from None
        uid, gid, home = int(name), int(name), "/"
    if group:
        try:
            gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
        except KeyError:
            raise SetupError(f"init.user {user!r}: no such group") from None
    try:
        os.setgroups([])
    except OSError:
        pass
    try:
        os.setgid(gid)
        os.setuid(uid)
    except OSError as exc:
        raise SetupError(f"init.user {user!r}: cannot switch to uid {uid}: {exc.strerror}") from None
    os.environ["HOME"] = home


FORWARD = [s for s in signal.Signals if s not in (signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD)]
early_signals = []


def hold_signals():
    """PID 1 of a namespace gets a signal from outside only when it has a handler: keep those that arrive during
    setup (a stop right after a start) to relay them to the workload once it runs."""
    for s in FORWARD:
        try:
            signal.signal(s, lambda sig, _frame: early_signals.append(sig))
        except (OSError, ValueError):
            pass


def run_workload(spec):
    """Fork the workload; forward signals to its process group; exit with its code when it exits."""
    forward = FORWARD
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, forward)
    child = os.fork()
    if child == 0:
        try:
            os.setsid()
            for s in forward:
                try:
                    signal.signal(s, signal.SIG_DFL)
                except (OSError, ValueError):
                    pass
            signal.signal(signal.SIGPIPE, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
            drop_mount_capability()
            switch_user(spec.get("user"))
            os.chdir(spec.get("cwd") or "/")
            argv = spec["argv"]
            os.execvpe(argv[0], argv, dict(os.environ))
        except SetupError as exc:
            os.write(2, f"machine init: {exc}\n".encode())
            os._exit(SETUP_FAILED)
        except OSError as exc:
            os.write(2, f"exec: {spec['argv'][0]!r}: {exc.strerror}\n".encode())
            os._exit(127 if exc.errno == errno.ENOENT else 126)
        except BaseException as exc:  # never let the workload's child unwind into init's code
            os.write(2, f"machine init: {exc!r}\n".encode())
        os._exit(126)

    def relay(sig, _frame):
        try:
            os.killpg(child, sig)
        except OSError:
            try:
                os.kill(child, sig)
            except OSError:
                pass

    for s in forward:
        try:
            signal.signal(s, relay)
        except (OSError, ValueError):
            pass
    for s in early_signals:
        relay(s, None)
    signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            os._exit(0)
        if pid == child:
            code = os.waitstatus_to_exitcode(status)
            os._exit(128 - code if code < 0 else code)


def main():
    for s in FORWARD:  # the launcher lets init handle signals; init installs its own handlers first thing
        try:
            signal.signal(s, signal.SIG_IGN)
        except (OSError, ValueError):
            pass
    spec = json.loads(sys.argv[1])
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    try:
        unshare_and_map()
        mount(None, "/", None, MS_REC | MS_PRIVATE)
        # opened after unshare: a bind's source must be a mount of this mount namespace
        fds = [os.open(src, os.O_PATH | os.O_CLOEXEC) for src, _, _ in spec["mounts"]]
        dev_fds = {}
        for name in DEVICES:
            try:
                dev_fds[name] = os.open(f"/dev/{name}", os.O_PATH | os.O_CLOEXEC)
            except OSError:
                pass
        state_fd = os.open(spec["state_dir"], os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except (OSError, SetupError) as exc:
        os.write(2, f"machine init: {exc}\n".encode())
        os._exit(SETUP_FAILED)
    ready_r, ready_w = os.pipe()
    init = os.fork()
    if init == 0:  # PID 1 of the machine
        hold_signals()
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        os.close(ready_r)
        try:
            host_pid = int(os.readlink("/proc/self"))  # still the host's /proc here
            setup_root(spec, fds, dev_fds)
            tmp = f".init.pid.{host_pid}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600, dir_fd=state_fd)
            os.write(fd, f"{host_pid}\n".encode())
            os.close(fd)
            os.rename(tmp, "init.pid", src_dir_fd=state_fd, dst_dir_fd=state_fd)
        except (OSError, SetupError) as exc:
            os.write(2, f"machine init: {exc}\n".encode())
            os._exit(SETUP_FAILED)
        for fd in [*fds, *dev_fds.values(), state_fd]:
            os.close(fd)
        os.write(ready_w, b"1")
        os.close(ready_w)
        run_workload(spec)
    os.close(ready_w)
    for fd in [*fds, *dev_fds.values(), state_fd]:
        os.close(fd)
    os.read(ready_r, 1)
    os.close(ready_r)
    while True:
        try:
            _, status = os.waitpid(init, 0)
            break
        except ChildProcessError:
            os._exit(SETUP_FAILED)
    code = os.waitstatus_to_exitcode(status)
    os._exit(128 - code if code < 0 else code)


if __name__ == "__main__":
    main()

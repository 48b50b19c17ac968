//! Killing every process below the guard, found by each process's parent
//! in `/proc`, in rounds: a process forked meanwhile, or handed to the
//! guard when its parent was killed, is found in the next round.

use crate::sys;
use crate::text::{parse_pid, Line};

/// Rounds of looking for processes left below the guard before it gives up.
const KILL_ROUNDS: usize = 50;

/// Most processes looked at in one round.
const MAX_PROCESSES: usize = 32_768;

/// Each process of a round, with its parent and whether it is below the guard.
static mut TABLE: [(i32, i32, bool); MAX_PROCESSES] = [(0, 0, false); MAX_PROCESSES];

/// Kills every process below the guard, and reaps them.
pub fn kill_all() {
    let me = sys::getpid();
    let table = unsafe { &mut *core::ptr::addr_of_mut!(TABLE) };
    for _ in 0..KILL_ROUNDS {
        let count = read_processes(table);
        let processes = &mut table[..count];
        processes.sort_unstable_by_key(|&(pid, _, _)| pid);
        mark_below(processes, me);
        let mut killed = false;
        for &(pid, _, below) in processes.iter() {
            if below {
                sys::kill(pid, sys::SIGKILL);
                killed = true;
            }
        }
        if !killed {
            return;
        }
        crate::reap(0);
        sys::sleep_ms(10);
        crate::reap(0);
    }
}

/// Marks every process whose parent is `root` or a marked one; `processes`
/// are sorted by id.
fn mark_below(processes: &mut [(i32, i32, bool)], root: i32) {
    loop {
        let mut changed = false;
        for index in 0..processes.len() {
            let (_, parent, below) = processes[index];
            if !below && (parent == root || is_marked(processes, parent)) {
                processes[index].2 = true;
                changed = true;
            }
        }
        if !changed {
            return;
        }
    }
}

fn is_marked(processes: &[(i32, i32, bool)], pid: i32) -> bool {
    processes
        .binary_search_by_key(&pid, |&(other, _, _)| other)
        .is_ok_and(|index| processes[index].2)
}

/// Fills `table` with every process in `/proc` and its parent; how many.
fn read_processes(table: &mut [(i32, i32, bool)]) -> usize {
    let Ok(dir) = sys::open(b"/proc\0", true) else {
        return 0;
    };
    let mut count = 0;
    let mut buf = [0u8; 8192];
    while let Ok(filled) = sys::getdents(dir, &mut buf) {
        if filled == 0 {
            break;
        }
        let mut at = 0;
        while at + 19 <= filled {
            let reclen = usize::from(u16::from_ne_bytes([buf[at + 16], buf[at + 17]]));
            let name = &buf[at + 19..(at + reclen).min(filled)];
            let name = &name[..name
                .iter()
                .position(|&byte| byte == 0)
                .unwrap_or(name.len())];
            if let (Some(pid), true) = (parse_pid(name), count < table.len()) {
                if let Some(parent) = parent_of(name) {
                    table[count] = (pid, parent, false);
                    count += 1;
                }
            }
            if reclen == 0 {
                break;
            }
            at += reclen;
        }
    }
    sys::close(dir);
    count
}

/// The parent of the process named `pid` in `/proc`, read from its `stat`
/// (after the command name, which may hold spaces and parentheses, come
/// the state and the parent).
fn parent_of(pid: &[u8]) -> Option<i32> {
    let mut path: Line<64> = Line::new();
    if !(path.push(b"/proc/") && path.push(pid) && path.push(b"/stat\0")) {
        return None;
    }
    let fd = sys::open(path.as_bytes(), false).ok()?;
    let mut stat = [0u8; 512];
    let read = sys::read(fd, &mut stat);
    sys::close(fd);
    let stat = &stat[..read.ok()?];
    let after_name = &stat[stat.iter().rposition(|&byte| byte == b')')? + 1..];
    let mut fields = after_name
        .split(|&byte| byte == b' ')
        .filter(|field| !field.is_empty());
    fields.next()?;
    parse_pid(fields.next()?)
}

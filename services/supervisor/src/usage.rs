//! CPU and memory use of the replicas, read from `/proc`: each replica's
//! process and everything it started (its jobs), against a basis (the pool's
//! request, else its limit, else one CPU core and the host's memory).

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

/// What `/proc/<pid>/stat` says of one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// Its parent's pid.
    pub ppid: u32,
    /// CPU time in clock ticks: its own (utime + stime) and that of the
    /// children it waited for (cutime + cstime), so a job that ended stays counted.
    pub ticks: u64,
}

/// Reads one `/proc/<pid>/stat` line; the command name may hold spaces and parentheses.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let after_name = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // fields[0] is field 3 of proc(5) (state): ppid is 4, utime..cstime are 14..17.
    let number = |index: usize| fields.get(index)?.parse::<u64>().ok();
    let ticks = number(11)? + number(12)? + number(13)? + number(14)?;
    Some(ProcStat {
        ppid: u32::try_from(number(1)?).ok()?,
        ticks,
    })
}

/// Reads `VmRSS` from a `/proc/<pid>/status` text, in bytes.
pub fn parse_rss_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let mut words = line["VmRSS:".len()..].split_whitespace();
    let kib: u64 = words.next()?.parse().ok()?;
    Some(kib * 1024)
}

/// Reads `MemTotal` from a `/proc/meminfo` text, in bytes.
pub fn parse_mem_total_bytes(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|line| line.starts_with("MemTotal:"))?;
    let kib: u64 = line["MemTotal:".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// What a replica's use is measured against.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Basis {
    /// CPU cores that count as 100%.
    pub cpu_cores: f64,
    /// Bytes that count as 100%.
    pub memory_bytes: u64,
}

/// Average CPU and memory use of the replicas, in percent of the basis.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Usage {
    /// CPU, once two samples of a replica were taken.
    pub cpu_percent: Option<f64>,
    /// Memory (resident set).
    pub memory_percent: Option<f64>,
}

/// Measures the replicas poll after poll, keeping the last sample of each.
#[derive(Debug)]
pub struct UsageMeter {
    basis: Basis,
    ticks_per_second: f64,
    last: HashMap<u32, (u64, Instant)>,
}

impl UsageMeter {
    /// A meter against `basis`.
    pub fn new(basis: Basis) -> Self {
        Self {
            basis,
            ticks_per_second: crate::sys::clock_ticks_per_second() as f64,
            last: HashMap::new(),
        }
    }

    /// The use of the replicas `pids` now (CPU since the previous call).
    pub fn measure(&mut self, pids: &[u32]) -> Usage {
        let table = process_table(Path::new("/proc"));
        let now = Instant::now();
        let mut cpu = Vec::new();
        let mut memory = Vec::new();
        let mut seen = HashMap::new();
        for &pid in pids {
            let tree = descendants(&table, pid);
            if tree.is_empty() {
                continue;
            }
            let ticks: u64 = tree
                .iter()
                .filter_map(|pid| table.get(pid))
                .map(|stat| stat.ticks)
                .sum();
            let rss: u64 = tree.iter().filter_map(|pid| rss_of(*pid)).sum();
            memory.push(rss as f64 * 100.0 / self.basis.memory_bytes.max(1) as f64);
            if let Some((last_ticks, last_at)) = self.last.get(&pid) {
                let seconds = now.duration_since(*last_at).as_secs_f64();
                if seconds > 0.0 {
                    let used = ticks.saturating_sub(*last_ticks) as f64 / self.ticks_per_second;
                    cpu.push(used * 100.0 / seconds / self.basis.cpu_cores);
                }
            }
            seen.insert(pid, (ticks, now));
        }
        self.last = seen;
        Usage {
            cpu_percent: average(&cpu),
            memory_percent: average(&memory),
        }
    }
}

fn average(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// Every process under `proc`, by pid.
fn process_table(proc: &Path) -> HashMap<u32, ProcStat> {
    let Ok(entries) = std::fs::read_dir(proc) else {
        return HashMap::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let text = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            Some((pid, parse_stat(&text)?))
        })
        .collect()
}

/// `root` and every process below it, if `root` lives.
fn descendants(table: &HashMap<u32, ProcStat>, root: u32) -> Vec<u32> {
    if !table.contains_key(&root) {
        return Vec::new();
    }
    let mut tree = vec![root];
    let mut index = 0;
    while index < tree.len() {
        let parent = tree[index];
        tree.extend(
            table
                .iter()
                .filter(|(_, stat)| stat.ppid == parent)
                .map(|(pid, _)| *pid),
        );
        index += 1;
    }
    tree
}

fn rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_rss_bytes(&status)
}

/// The host's memory, when `/proc/meminfo` says.
pub fn host_memory_bytes() -> Option<u64> {
    parse_mem_total_bytes(&std::fs::read_to_string("/proc/meminfo").ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_reads_its_parent_and_cpu_ticks_even_with_odd_names() {
        let line = "4242 (shoal (worker) x) S 4000 4242 4000 0 -1 4194560 1500 0 0 0 \
                    250 50 7 3 20 0 9 0 123456 987654321 2048 18446744073709551615";
        let stat = parse_stat(line).expect("a stat line");
        assert_eq!(stat.ppid, 4000);
        assert_eq!(stat.ticks, 250 + 50 + 7 + 3);
        assert_eq!(parse_stat("12 (short) S 1 2"), None);
    }

    #[test]
    fn the_resident_set_and_host_memory_read_in_bytes() {
        let status = "Name:\tshoal\nVmPeak:\t  20000 kB\nVmRSS:\t   5120 kB\nThreads:\t3\n";
        assert_eq!(parse_rss_bytes(status), Some(5120 * 1024));
        assert_eq!(parse_rss_bytes("Name:\tkthreadd\n"), None);
        let meminfo = "MemTotal:       16384000 kB\nMemFree:  1 kB\n";
        assert_eq!(parse_mem_total_bytes(meminfo), Some(16_384_000 * 1024));
    }

    #[test]
    fn the_own_process_is_measured_from_proc() {
        let own = std::process::id();
        let table = process_table(Path::new("/proc"));
        assert!(table.contains_key(&own));
        assert_eq!(descendants(&table, own)[0], own);
        assert!(rss_of(own).is_some_and(|bytes| bytes > 0));
        let mut meter = UsageMeter::new(Basis {
            cpu_cores: 1.0,
            memory_bytes: 1 << 40,
        });
        assert_eq!(meter.measure(&[own]).cpu_percent, None);
        let usage = meter.measure(&[own]);
        assert!(usage.cpu_percent.is_some() && usage.memory_percent.is_some());
    }
}

//! Builds the guard without a C library (`bare/`) for targets it knows the
//! system calls of, so that `shoal` can carry it: it is compiled on its own
//! with panics that abort, which a crate of this workspace cannot be.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=bare");
    println!("cargo:rustc-check-cfg=cfg(bare_guard)");
    let target = std::env::var("TARGET").unwrap_or_default();
    if target != "x86_64-unknown-linux-gnu" {
        return;
    }
    let Some(out_dir) = std::env::var_os("OUT_DIR").map(PathBuf::from) else {
        return;
    };
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let binary = out_dir.join("shoal-job-guard");
    let built = Command::new(rustc)
        .args(["--edition", "2021", "--crate-type", "bin"])
        .args(["--crate-name", "shoal_job_guard", "--target", &target])
        .args([
            "-C",
            "panic=abort",
            "-C",
            "opt-level=2",
            "-C",
            "strip=symbols",
        ])
        .args(["-C", "relocation-model=static"])
        .args(["-C", "link-arg=-nostartfiles", "-C", "link-arg=-nostdlib"])
        .args(["-C", "link-arg=-static"])
        .arg("bare/main.rs")
        .arg("-o")
        .arg(&binary)
        .status();
    match built {
        Ok(status) if status.success() => {
            println!("cargo:rustc-cfg=bare_guard");
            println!("cargo:rustc-env=SHOAL_BARE_GUARD={}", binary.display());
        }
        Ok(status) => println!("cargo:warning=the bare job guard did not build ({status}); jobs run under `shoal __job-guard`"),
        Err(err) => println!("cargo:warning=cannot run rustc for the bare job guard ({err}); jobs run under `shoal __job-guard`"),
    }
}

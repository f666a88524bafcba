//! Helpers for test binaries that run inside the guest: reporting cases and running commands.
//!
//! Only meaningful in the guest (it assumes it owns the whole machine).

use std::process::Command;

/// Prints a `VMTEST-CASE` line for `name` and returns whether it passed.
pub fn report(name: &str, result: Result<(), String>) -> bool {
    match result {
        Ok(()) => {
            println!("VMTEST-CASE {name} pass");
            true
        }
        Err(e) => {
            println!("VMTEST-CASE {name} fail {}", e.replace('\n', " | "));
            false
        }
    }
}

/// Runs a command, returning its stdout or an error with stderr.
pub fn sh(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

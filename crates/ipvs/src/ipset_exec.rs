//! The ipset seam: feeding `ipset restore -exist` text ([`RealIpset`]) or recording it ([`FakeIpset`]).

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Mutex;

use crate::IpvsError;

/// Applies `ipset restore` input.
pub trait IpsetExec: Send + Sync {
    fn restore(&self, input: &str) -> Result<(), IpvsError>;
    /// Destroys set `name`; a set that does not exist is not an error.
    fn destroy(&self, name: &str) -> Result<(), IpvsError>;
}

/// Runs `ipset restore -exist`.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealIpset;

impl IpsetExec for RealIpset {
    fn restore(&self, input: &str) -> Result<(), IpvsError> {
        let err = |detail: String| IpvsError::Command {
            binary: "ipset".into(),
            detail,
        };
        let mut child = Command::new("ipset")
            .args(["restore", "-exist"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| err(e.to_string()))?;
        let written = child
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(input.as_bytes());
        let out = child.wait_with_output().map_err(|e| err(e.to_string()))?;
        written.map_err(|e| err(e.to_string()))?;
        if !out.status.success() {
            return Err(err(format!(
                "ipset restore: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(())
    }

    fn destroy(&self, name: &str) -> Result<(), IpvsError> {
        let out = Command::new("ipset")
            .args(["destroy", name])
            .output()
            .map_err(|e| IpvsError::Command {
                binary: "ipset".into(),
                detail: e.to_string(),
            })?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() || stderr.contains("does not exist") {
            return Ok(());
        }
        Err(IpvsError::Command {
            binary: "ipset".into(),
            detail: format!("ipset destroy {name}: {}", stderr.trim()),
        })
    }
}

/// Records every restore input and destroyed set.
#[derive(Default)]
pub struct FakeIpset {
    pub inputs: Mutex<Vec<String>>,
    pub destroyed: Mutex<Vec<String>>,
}

impl IpsetExec for FakeIpset {
    fn restore(&self, input: &str) -> Result<(), IpvsError> {
        self.inputs.lock().unwrap().push(input.to_string());
        Ok(())
    }

    fn destroy(&self, name: &str) -> Result<(), IpvsError> {
        self.destroyed.lock().unwrap().push(name.to_string());
        Ok(())
    }
}

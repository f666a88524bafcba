//! Errors of this crate: one variant per loading step, plus the field-level validation error
//! whose text follows upstream's `field: Invalid value: v: detail` shape.

use std::fmt;
use std::path::PathBuf;

/// What went wrong while turning a command line (and maybe a file) into a [`crate::ProxyConfig`].
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The command line did not parse (unknown flag, bad value, ...). Holds clap's error so the
    /// binary can print it the usual way (`err.exit()`), including `--help` and `--version`.
    #[error(transparent)]
    ParseFlags(#[from] clap::Error),
    /// `--hostname-override` was given but is blank.
    #[error("empty hostname-override is invalid")]
    HostnameOverride,
    /// The `--config` file could not be read.
    #[error("failed to read config file {path}: {source}")]
    ReadConfigFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The `--config` file is not a decodable KubeProxyConfiguration.
    #[error("failed to decode config file {path}: {message}")]
    DecodeConfigFile { path: PathBuf, message: String },
    /// The merged configuration is invalid. Every entry names the field.
    #[error("{}", format_field_errors(.0))]
    Validate(Vec<FieldError>),
    /// `--write-config-to` could not write its file.
    #[error("failed to write config to {path}: {message}")]
    WriteConfig { path: PathBuf, message: String },
}

/// One invalid field, rendered like Kubernetes' `field.Error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field path in v1alpha1 spelling, e.g. `iptables.masqueradeBit` or `nodePortAddresses[1]`.
    pub field: String,
    /// The offending value as upstream prints it (strings quoted, numbers bare).
    pub value: String,
    /// What is wrong with it.
    pub detail: String,
    /// Upstream's error kind.
    pub kind: FieldErrorKind,
}

/// The kinds of field error used by kube-proxy's validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldErrorKind {
    /// `Invalid value`.
    Invalid,
    /// `Unsupported value` (value outside a fixed set).
    NotSupported,
}

impl FieldError {
    pub(crate) fn invalid(
        field: impl Into<String>,
        value: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        FieldError {
            field: field.into(),
            value: value.into(),
            detail: detail.into(),
            kind: FieldErrorKind::Invalid,
        }
    }

    pub(crate) fn not_supported(field: impl Into<String>, value: &str, supported: &[&str]) -> Self {
        let list: Vec<String> = supported.iter().map(|s| quote(s)).collect();
        FieldError {
            field: field.into(),
            value: quote(value),
            detail: format!("supported values: {}", list.join(", ")),
            kind: FieldErrorKind::NotSupported,
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            FieldErrorKind::Invalid => "Invalid value",
            FieldErrorKind::NotSupported => "Unsupported value",
        };
        write!(
            f,
            "{}: {}: {}: {}",
            self.field, kind, self.value, self.detail
        )
    }
}

/// Quotes a string the way Go's `%q` does for plain text.
pub(crate) fn quote(s: &str) -> String {
    format!("{s:?}")
}

fn format_field_errors(errs: &[FieldError]) -> String {
    match errs {
        [one] => one.to_string(),
        many => {
            let parts: Vec<String> = many.iter().map(ToString::to_string).collect();
            format!("[{}]", parts.join(", "))
        }
    }
}

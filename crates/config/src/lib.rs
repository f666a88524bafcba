//! kube-proxy-config: kube-proxy's command line and KubeProxyConfiguration file, compatible
//! with upstream kube-proxy (flag names, defaults, file keys, precedence, validation).
//!
//! - [`ProxyFlags`]: clap `Args` the binary flattens into its own parser and subcommands.
//! - [`load`] / [`resolve`]: command line → validated [`ProxyConfig`] plus the effective
//!   v1alpha1 [`KubeProxyConfiguration`] (for `/configz` and `--write-config-to`).
//! - Nothing here touches the kernel or the network.
#![forbid(unsafe_code)]

mod duration;
mod error;
mod file;
mod flags;
mod internal;
mod load;
mod typed;
mod v1alpha1;
mod validation;

pub use duration::{DurationParseError, GoDuration};
pub use error::{ConfigError, FieldError, FieldErrorKind};
pub use file::{decode_config, read_config_file, to_yaml, write_config_file, Decoded};
pub use flags::{parse_go_bool, IptablesBackend, ProxyFlags};
pub use load::{load, parse_flags, resolve, Loaded};
pub use typed::{
    ClientConnection, ConntrackConfig, DetectLocal, IpvsConfig, NodePortAddresses, ProxyConfig,
    ProxyMode,
};
pub use v1alpha1::{
    ClientConnection as RawClientConnection, Conntrack, DetectLocal as RawDetectLocal,
    IptablesSection, IpvsSection, KubeProxyConfiguration, Logging, NftablesSection, Winkernel,
    API_VERSION, HEALTHZ_PORT, KIND, METRICS_PORT,
};
pub use validation::{DETECT_LOCAL_MODES, VALID_MODES};

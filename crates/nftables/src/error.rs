//! The crate's error type: one variant per step that can fail.

/// Errors of the nftables dataplane.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// Opening or configuring the netlink socket failed.
    #[error("opening the nf_tables netlink socket: {0}")]
    OpenSocket(#[source] std::io::Error),
    /// Sending a batch failed.
    #[error("sending the nf_tables batch ({bytes} bytes): {source}")]
    SendBatch {
        bytes: usize,
        #[source]
        source: std::io::Error,
    },
    /// Receiving the kernel's answer failed.
    #[error("receiving the kernel's answer: {0}")]
    Receive(#[source] std::io::Error),
    /// The kernel rejected the transaction; nothing was applied.
    #[error("the kernel rejected the transaction: {op} failed with errno {errno}")]
    Rejected { op: String, errno: i32 },
    /// The kernel's answer could not be parsed.
    #[error("malformed netlink answer: {0}")]
    Malformed(String),
    /// The batch did not get the kernel's acknowledgement.
    #[error("no acknowledgement for the batch")]
    NoAck,
    /// Querying the table (tamper check) failed.
    #[error("querying table {table}: errno {errno}")]
    QueryTable { table: String, errno: i32 },
}

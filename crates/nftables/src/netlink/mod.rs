//! The native netlink encoder and transport: a [`crate::plan::Transaction`] becomes one nfnetlink batch of
//! nf_tables messages (attributes written here; netlink-packet-netfilter 0.4 lacks nat, numgen, ct, fib,
//! dynset, reject and masq), sent over netlink-sys. No `nft` process, no libnftnl, no unsafe code.

pub mod attr;
pub mod batch;
mod expr;
mod full;
mod sets;
pub mod transport;

pub use batch::{encode, Batch, Encoder};
pub use full::{encode_full, FullBatch};
pub use transport::{
    FakeKernel, FakeTransport, NetlinkTransport, NfTransport, SendFailure, TableInfo,
};

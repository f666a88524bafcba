//! The ipset seam. [`IpsetHandle`] creates sets, lists their elements, adds/deletes elements and destroys
//! sets; [`NetlinkIpset`] does it over nfnetlink (encoding in [`crate::ipset_wire`]), [`FakeIpset`] in
//! memory. [`sync_ipsets`] brings the kernel's sets to the desired [`IpSets`] by sending only the
//! difference, as the applier does for virtual servers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};

use crate::ipset_wire::{self as wire, ListedSet, Member, SetSpec, SetType};
use crate::ipsets::IpSets;
use crate::nla;
use crate::IpvsError;

/// Adding (`add`) or deleting one element of set `set`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Change {
    pub add: bool,
    pub set: String,
    pub member: Member,
}

/// Kernel ipset operations.
pub trait IpsetHandle: Send + Sync {
    /// Creates the sets that are missing. A set that exists with the same type and options is left as it
    /// is (`ipset create -exist`); one with another type is an error.
    fn ensure_sets(&self, specs: &[SetSpec]) -> Result<(), IpvsError>;
    /// Set `name` with its elements, None when there is no such set.
    fn list(&self, name: &str) -> Result<Option<ListedSet>, IpvsError>;
    /// Applies the changes in order (adding a present or deleting an absent element is no error).
    fn update(&self, changes: &[Change]) -> Result<(), IpvsError>;
    /// Destroys set `name`; a set that does not exist is not an error.
    fn destroy(&self, name: &str) -> Result<(), IpvsError>;
}

/// What [`sync_ipsets`] sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IpsetSyncCounts {
    pub added: usize,
    pub deleted: usize,
}

/// Brings every set of `sets` to its desired elements: creates missing sets, lists each set's elements and
/// sends one batch with the deletions (first) and additions that differ.
pub fn sync_ipsets(h: &dyn IpsetHandle, sets: &IpSets) -> Result<IpsetSyncCounts, IpvsError> {
    let specs: Vec<SetSpec> = sets.entries.keys().map(|n| n.spec(sets.family)).collect();
    h.ensure_sets(&specs)?;
    let (mut dels, mut adds) = (Vec::new(), Vec::new());
    for (spec, entries) in specs.iter().zip(sets.entries.values()) {
        let want = entries
            .iter()
            .map(|e| Member::parse(spec.set_type, e))
            .collect::<Result<BTreeSet<Member>, _>>()?;
        let have = h.list(&spec.name)?.unwrap_or_default();
        if have.set_type() != Some(spec.set_type) && !have.type_name.is_empty() {
            return Err(IpvsError::Ipset {
                op: format!(
                    "sync {} (exists as {}, want {})",
                    spec.name,
                    have.type_name,
                    spec.set_type.name()
                ),
                errno: 4103,
            });
        }
        let change = |add: bool, member: &Member| Change {
            add,
            set: spec.name.clone(),
            member: *member,
        };
        let have_members: BTreeSet<Member> = have.members.iter().copied().collect();
        // An element flagged nomatch is not ours: delete it (and add it back plainly when wanted).
        dels.extend(have.nomatch.iter().map(|m| change(false, m)));
        dels.extend(have_members.difference(&want).map(|m| change(false, m)));
        adds.extend(want.difference(&have_members).map(|m| change(true, m)));
    }
    let counts = IpsetSyncCounts {
        added: adds.len(),
        deleted: dels.len(),
    };
    dels.append(&mut adds);
    if !dels.is_empty() {
        h.update(&dels)?;
    }
    Ok(counts)
}

/// The revision we create sets of `t` with when the kernel offers it: the newest the `ipset` tool 7.17
/// (Debian 12) knows, which is what `ipset restore` created on a 6.x kernel, so `ipset list` shows the same
/// sets as before and older tools can still read them. Clamped to the kernel's range.
fn preferred_revision(t: SetType) -> u8 {
    match t {
        SetType::HashIp => 6,
        SetType::HashNet => 7,
        SetType::HashIpPort => 7,
        SetType::HashIpPortIp => 6,
        SetType::HashIpPortNet => 8,
        SetType::BitmapPort => 3,
    }
}

/// Messages per sendmsg: the acknowledgements of one batch must fit the socket's receive buffer.
const BATCH: usize = 64;

/// Counters of what a [`NetlinkIpset`] sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetlinkIpsetStats {
    /// `IPSET_CMD_ADD` messages.
    pub adds: u64,
    /// `IPSET_CMD_DEL` messages.
    pub dels: u64,
    /// `IPSET_CMD_CREATE` messages.
    pub creates: u64,
    /// sendmsg calls carrying element changes.
    pub update_batches: u64,
}

/// ipset over an nfnetlink socket (the socket belongs to the network namespace it was opened in).
pub struct NetlinkIpset {
    socket: Mutex<Socket>,
    seq: AtomicU32,
    revisions: Mutex<BTreeMap<(SetType, u8), u8>>,
    adds: AtomicU64,
    dels: AtomicU64,
    creates: AtomicU64,
    update_batches: AtomicU64,
}

/// Encodes one request given its sequence number.
type Encoder<'a> = Box<dyn Fn(u32) -> Vec<u8> + 'a>;
/// A request and its description for error messages.
type Request<'a> = (Encoder<'a>, String);

/// How one request of an exchange ended: its reply payloads and errno (0 = acknowledged).
struct Outcome {
    replies: Vec<Vec<u8>>,
    errno: i32,
}

impl NetlinkIpset {
    pub fn new() -> Result<NetlinkIpset, IpvsError> {
        let mut socket = Socket::new(NETLINK_NETFILTER).map_err(IpvsError::OpenSocket)?;
        socket.bind_auto().map_err(IpvsError::OpenSocket)?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(IpvsError::OpenSocket)?;
        // Room for a batch of acknowledgements; the kernel caps it at rmem_max, which is fine.
        let _ = socket.set_rx_buf_sz(1 << 20);
        Ok(NetlinkIpset {
            socket: Mutex::new(socket),
            seq: AtomicU32::new(1),
            revisions: Mutex::new(BTreeMap::new()),
            adds: AtomicU64::new(0),
            dels: AtomicU64::new(0),
            creates: AtomicU64::new(0),
            update_batches: AtomicU64::new(0),
        })
    }

    pub fn stats(&self) -> NetlinkIpsetStats {
        NetlinkIpsetStats {
            adds: self.adds.load(Ordering::Relaxed),
            dels: self.dels.load(Ordering::Relaxed),
            creates: self.creates.load(Ordering::Relaxed),
            update_batches: self.update_batches.load(Ordering::Relaxed),
        }
    }

    fn next_seq(&self) -> u32 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends `msgs` (already numbered `seqs`) in one sendmsg and reads until each has its
    /// acknowledgement, error or end of dump.
    fn exchange(&self, msgs: &[u8], seqs: &[u32]) -> Result<BTreeMap<u32, Outcome>, IpvsError> {
        let socket = self.socket.lock().unwrap();
        socket.send(msgs, 0).map_err(IpvsError::Send)?;
        let mut open: BTreeMap<u32, Vec<Vec<u8>>> = seqs.iter().map(|s| (*s, Vec::new())).collect();
        let mut done = BTreeMap::new();
        while !open.is_empty() {
            let (buf, _) = socket.recv_from_full().map_err(IpvsError::Receive)?;
            for m in nla::messages(&buf)? {
                let Some(replies) = open.get_mut(&m.seq) else {
                    continue;
                };
                match m.msg_type {
                    nla::NLMSG_ERROR | nla::NLMSG_DONE => {
                        let errno = nla::error_code(m.payload)?;
                        let replies = open.remove(&m.seq).unwrap_or_default();
                        done.insert(m.seq, Outcome { replies, errno });
                    }
                    _ => replies.push(m.payload.to_vec()),
                }
            }
        }
        Ok(done)
    }

    /// One request and how it ended.
    fn request(&self, build: impl FnOnce(u32) -> Vec<u8>) -> Result<Outcome, IpvsError> {
        let seq = self.next_seq();
        let mut out = self.exchange(&build(seq), &[seq])?;
        Ok(out
            .remove(&seq)
            .expect("exchange answers every sequence number"))
    }

    /// Sends `msgs` in batches; every message is acknowledged and checked. Errnos in `tolerate` count as
    /// success. Stops after the first batch with an error (whose remaining acknowledgements are read).
    fn send_batched(&self, msgs: Vec<Request<'_>>, tolerate: &[i32]) -> Result<(), IpvsError> {
        for chunk in msgs.chunks(BATCH) {
            let mut buf = Vec::new();
            let mut seqs = Vec::with_capacity(chunk.len());
            for (build, _) in chunk {
                let seq = self.next_seq();
                buf.extend_from_slice(&build(seq));
                seqs.push(seq);
            }
            let outcomes = self.exchange(&buf, &seqs)?;
            for (seq, (_, op)) in seqs.iter().zip(chunk) {
                let errno = outcomes[seq].errno;
                if errno != 0 && !tolerate.contains(&errno) {
                    return Err(IpvsError::Ipset {
                        op: op.clone(),
                        errno,
                    });
                }
            }
        }
        Ok(())
    }

    /// The revision to create sets of `t` in `family` with (asked from the kernel once).
    fn revision(&self, t: SetType, family: kube_proxy_model::IpFamily) -> Result<u8, IpvsError> {
        let key = (t, t.nfproto(family));
        if let Some(r) = self.revisions.lock().unwrap().get(&key) {
            return Ok(*r);
        }
        let op = format!("type query {}", t.name());
        let out = self.request(|seq| wire::type_query(seq, t, family))?;
        if out.errno != 0 {
            return Err(IpvsError::Ipset {
                op,
                errno: out.errno,
            });
        }
        let reply = out
            .replies
            .first()
            .ok_or_else(|| IpvsError::Decode(format!("no reply to the {op}")))?;
        let (min, max) = wire::decode_type_reply(reply)?;
        let r = preferred_revision(t).clamp(min, max.max(min));
        self.revisions.lock().unwrap().insert(key, r);
        Ok(r)
    }

    /// The kernel's ipset protocol range (min, max).
    pub fn protocol(&self) -> Result<(u8, u8), IpvsError> {
        let out = self.request(wire::protocol)?;
        if out.errno != 0 {
            return Err(IpvsError::Ipset {
                op: "protocol".into(),
                errno: out.errno,
            });
        }
        let reply = out
            .replies
            .first()
            .ok_or_else(|| IpvsError::Decode("no reply to the protocol query".into()))?;
        wire::decode_protocol_reply(reply)
    }

    /// Every set in the namespace with its elements (one dump).
    pub fn list_all(&self) -> Result<Vec<ListedSet>, IpvsError> {
        let out = self.request(|seq| wire::list(seq, None))?;
        if out.errno != 0 {
            return Err(IpvsError::Ipset {
                op: "list".into(),
                errno: out.errno,
            });
        }
        wire::decode_list(&out.replies)
    }
}

const ENOENT: i32 = 2;
const EEXIST: i32 = 17;

impl IpsetHandle for NetlinkIpset {
    fn ensure_sets(&self, specs: &[SetSpec]) -> Result<(), IpvsError> {
        let mut msgs: Vec<Request<'_>> = Vec::new();
        for spec in specs {
            let rev = self.revision(spec.set_type, spec.family)?;
            let s = spec.clone();
            let op = format!("create {} {}", spec.name, spec.set_type.name());
            msgs.push((Box::new(move |seq| wire::create(seq, &s, rev)), op));
        }
        self.creates.fetch_add(msgs.len() as u64, Ordering::Relaxed);
        self.send_batched(msgs, &[]).map_err(|e| match e {
            // The kernel's answer when the name is taken by a set of another type or with other options.
            IpvsError::Ipset { op, errno: EEXIST } => IpvsError::Ipset {
                op: format!("{op} (a set of this name exists with another type or options)"),
                errno: EEXIST,
            },
            e => e,
        })
    }

    fn list(&self, name: &str) -> Result<Option<ListedSet>, IpvsError> {
        let out = self.request(|seq| wire::list(seq, Some(name)))?;
        match out.errno {
            0 => {}
            ENOENT => return Ok(None),
            errno => {
                return Err(IpvsError::Ipset {
                    op: format!("list {name}"),
                    errno,
                })
            }
        }
        Ok(wire::decode_list(&out.replies)?
            .into_iter()
            .find(|s| s.name == name))
    }

    fn update(&self, changes: &[Change]) -> Result<(), IpvsError> {
        let msgs: Vec<Request<'_>> = changes
            .iter()
            .map(|c| {
                let fam =
                    wire::nfproto(c.member.family().unwrap_or(kube_proxy_model::IpFamily::V4));
                let op = format!(
                    "{} {} {}",
                    if c.add { "add" } else { "del" },
                    c.set,
                    c.member
                );
                let build: Encoder<'_> =
                    Box::new(move |seq| wire::add_del(seq, c.add, &c.set, fam, &c.member));
                (build, op)
            })
            .collect();
        let adds = changes.iter().filter(|c| c.add).count() as u64;
        self.adds.fetch_add(adds, Ordering::Relaxed);
        self.dels
            .fetch_add(changes.len() as u64 - adds, Ordering::Relaxed);
        self.update_batches
            .fetch_add(changes.len().div_ceil(BATCH) as u64, Ordering::Relaxed);
        self.send_batched(msgs, &[])
    }

    fn destroy(&self, name: &str) -> Result<(), IpvsError> {
        self.send_batched(
            vec![(
                Box::new(move |seq| wire::destroy(seq, name)),
                format!("destroy {name}"),
            )],
            &[ENOENT],
        )
    }
}

/// In-memory sets; every [`IpsetHandle::update`] batch is recorded.
#[derive(Default)]
pub struct FakeIpset {
    pub sets: Mutex<BTreeMap<String, (SetType, BTreeSet<Member>)>>,
    pub batches: Mutex<Vec<Vec<Change>>>,
    pub destroyed: Mutex<Vec<String>>,
}

impl FakeIpset {
    /// The elements of `name` as `ipset` prints them (empty when the set does not exist).
    pub fn members(&self, name: &str) -> Vec<String> {
        self.sets
            .lock()
            .unwrap()
            .get(name)
            .map(|(_, m)| m.iter().map(|m| m.to_string()).collect())
            .unwrap_or_default()
    }
}

impl IpsetHandle for FakeIpset {
    fn ensure_sets(&self, specs: &[SetSpec]) -> Result<(), IpvsError> {
        let mut sets = self.sets.lock().unwrap();
        for s in specs {
            let (t, _) = sets
                .entry(s.name.clone())
                .or_insert_with(|| (s.set_type, BTreeSet::new()));
            if *t != s.set_type {
                return Err(IpvsError::Ipset {
                    op: format!("create {} {}", s.name, s.set_type.name()),
                    errno: 4103,
                });
            }
        }
        Ok(())
    }

    fn list(&self, name: &str) -> Result<Option<ListedSet>, IpvsError> {
        Ok(self.sets.lock().unwrap().get(name).map(|(t, m)| ListedSet {
            name: name.to_string(),
            type_name: t.name().to_string(),
            members: m.iter().copied().collect(),
            ..ListedSet::default()
        }))
    }

    fn update(&self, changes: &[Change]) -> Result<(), IpvsError> {
        let mut sets = self.sets.lock().unwrap();
        for c in changes {
            let (_, members) = sets.get_mut(&c.set).ok_or_else(|| IpvsError::Ipset {
                op: format!("{} {}", if c.add { "add" } else { "del" }, c.set),
                errno: ENOENT,
            })?;
            if c.add {
                members.insert(c.member);
            } else {
                members.remove(&c.member);
            }
        }
        self.batches.lock().unwrap().push(changes.to_vec());
        Ok(())
    }

    fn destroy(&self, name: &str) -> Result<(), IpvsError> {
        self.sets.lock().unwrap().remove(name);
        self.destroyed.lock().unwrap().push(name.to_string());
        Ok(())
    }
}

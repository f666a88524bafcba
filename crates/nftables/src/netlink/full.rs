//! The full sync's lean route: [`encode_full`] streams the full transaction into the batch as the renderer
//! produces it (see `render::render_full_into`), so the typed [`crate::plan::Transaction`] of every
//! operation never exists. The service ports' elements, which must be de-duplicated ("later claim wins")
//! and grouped by set before they can be sent, wait already encoded in one compact buffer per set.
//! The bytes are those of `encode(&render_full_with(..))`.

use std::collections::BTreeMap;

use super::attr::AttrWriter;
use super::batch::{element_msg_overhead, encode_element, Batch, Encoder, MAX_ELEMS_BYTES};
use super::sets::written_elem_key;
use crate::config::RenderConfig;
use crate::plan::{Element, Family, Op, OpCounts};
use crate::render::{render_full_into, FullSink};
use crate::slots::Slots;
use kube_proxy_model::ProxyState;

/// A full sync's batch with what the typed transaction would have counted.
#[derive(Clone, Debug)]
pub struct FullBatch {
    pub batch: Batch,
    /// Number of plan operations (as `Transaction::len`).
    pub ops: usize,
    pub counts: OpCounts,
}

/// The claims on one set's elements.
#[derive(Debug, Default)]
struct SetClaims {
    /// The claimed elements, encoded (`NFTA_LIST_ELEM` each), in claim order.
    buf: AttrWriter,
    /// (claim number, offset in `buf`) of each claim.
    claims: Vec<(u32, u32)>,
}

/// The encoded element at `off` (its nested attribute length covers it, padding included).
fn elem_at(buf: &[u8], off: u32) -> &[u8] {
    let o = off as usize;
    let len = usize::from(u16::from_ne_bytes([buf[o], buf[o + 1]]));
    &buf[o..o + len]
}

struct StreamSink {
    enc: Encoder,
    sets: BTreeMap<String, SetClaims>,
    next_claim: u32,
}

impl FullSink for StreamSink {
    fn op(&mut self, op: Op) {
        self.enc.push(&op);
    }

    fn claim(&mut self, e: Element) {
        let s = match self.sets.get_mut(e.set.as_str()) {
            Some(s) => s,
            None => self.sets.entry(e.set.clone()).or_default(),
        };
        let off = u32::try_from(s.buf.buf.len()).unwrap_or(u32::MAX);
        encode_element(&mut s.buf, &e);
        s.claims.push((self.next_claim, off));
        self.next_claim += 1;
    }

    fn finish_claims(&mut self) {
        let sets = std::mem::take(&mut self.sets);
        // The rest of the batch is these elements plus their message headers: reserve it once instead of
        // letting the buffer double.
        let rest: usize = sets
            .iter()
            .map(|(name, s)| {
                s.buf.buf.len()
                    + element_msg_overhead(name) * (s.buf.buf.len() / MAX_ELEMS_BYTES + 2)
            })
            .sum();
        self.enc.reserve(rest + 20);
        // Ascending set names, as the typed route sorts them; each set's buffer is freed once sent.
        for (name, mut s) in sets {
            let buf = &s.buf.buf;
            let claims = &mut s.claims;
            claims.sort_unstable_by(|a, b| {
                written_elem_key(elem_at(buf, a.1))
                    .cmp(written_elem_key(elem_at(buf, b.1)))
                    .then(a.0.cmp(&b.0))
            });
            // One survivor per key: the first claim's place, the last claim's value.
            let mut kept = 0;
            let mut i = 0;
            while i < claims.len() {
                let key = written_elem_key(elem_at(buf, claims[i].1));
                let mut j = i + 1;
                while j < claims.len() && written_elem_key(elem_at(buf, claims[j].1)) == key {
                    j += 1;
                }
                claims[kept] = (claims[i].0, claims[j - 1].1);
                kept += 1;
                i = j;
            }
            claims.truncate(kept);
            claims.sort_unstable_by_key(|c| c.0);
            for &(_, off) in claims.iter() {
                self.enc.push_encoded_element(&name, elem_at(buf, off));
            }
        }
    }
}

/// The batch of a full sync of `state` (slot ranges `slots`), sequence numbers from `first_seq`: the same
/// bytes as `encode(&render_full_with(state, cfg, slots), first_seq)`, with a fraction of the peak memory.
pub fn encode_full(
    state: &ProxyState,
    cfg: &RenderConfig,
    slots: &Slots,
    first_seq: u32,
) -> FullBatch {
    let mut sink = StreamSink {
        enc: Encoder::new(Family::of(state.family), first_seq),
        sets: BTreeMap::new(),
        next_claim: 0,
    };
    render_full_into(state, cfg, slots, &mut sink);
    let (ops, counts) = (sink.enc.ops(), sink.enc.counts());
    FullBatch {
        batch: sink.enc.finish(),
        ops,
        counts,
    }
}

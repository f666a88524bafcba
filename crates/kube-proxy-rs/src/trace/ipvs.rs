use super::Ctx;
use kube_proxy_trace::Trace;
pub(super) fn trace(_ctx: &Ctx) -> anyhow::Result<Trace> {
    anyhow::bail!("not implemented yet")
}

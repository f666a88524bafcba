//! Text exposition formats: the OpenMetrics text prometheus-client writes, and its conversion to the classic
//! Prometheus 0.0.4 text format for scrapers that do not ask for OpenMetrics.

use std::collections::HashSet;

/// Content type of [`crate::Metrics::encode_openmetrics`] output.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Content type of [`crate::Metrics::encode_prometheus_text`] output.
pub const PROMETHEUS_TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Rewrites OpenMetrics text into Prometheus 0.0.4 text.
///
/// The samples are identical; only the metadata differs: in OpenMetrics a counter family `x` has samples
/// `x_total`, in 0.0.4 the HELP/TYPE lines name `x_total` itself. `# UNIT` and `# EOF` do not exist in 0.0.4,
/// and OpenMetrics' `unknown` type is 0.0.4's `untyped`.
pub(crate) fn openmetrics_to_prometheus(openmetrics: &str) -> String {
    let counters: HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                out.push_str(prefix);
                out.push_str(name);
                if counters.contains(name) {
                    out.push_str("_total");
                }
                out.push(' ');
                out.push_str(if prefix == "# TYPE " && tail == "unknown" {
                    "untyped"
                } else {
                    tail
                });
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_get_total_in_metadata_and_eof_is_dropped() {
        let om = "# HELP a_b Some help.\n# TYPE a_b counter\na_b_total 3\n\
                  # HELP g A gauge.\n# TYPE g gauge\ng 1\n# HELP u x\n# TYPE u unknown\nu 2\n# EOF\n";
        let want = "# HELP a_b_total Some help.\n# TYPE a_b_total counter\na_b_total 3\n\
                    # HELP g A gauge.\n# TYPE g gauge\ng 1\n# HELP u x\n# TYPE u untyped\nu 2\n";
        assert_eq!(openmetrics_to_prometheus(om), want);
    }
}

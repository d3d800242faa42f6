//! etcd's own count of the bytes it sent to clients
//! (`etcd_network_client_grpc_sent_bytes_total`, from each member's
//! `/metrics`), read before and after a scenario: the egress a protocol
//! costs, measured by etcd rather than estimated by us.
//!
//! A plain HTTP/1.0 GET over a TCP stream: the bench has no HTTP client and
//! needs none for one text page. `https` endpoints are not read (the figure
//! is then absent from the report).

use anyhow::{bail, Context as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The metric etcd counts its gRPC bytes sent to clients in.
const SENT: &str = "etcd_network_client_grpc_sent_bytes_total";

/// Bytes etcd has sent to clients, summed over `endpoints` (each member
/// counts its own); `None` when an endpoint is not plain `http://`.
pub async fn sent_bytes(endpoints: &[String]) -> anyhow::Result<Option<u64>> {
    let mut total = 0u64;
    for endpoint in endpoints {
        let Some(authority) = endpoint.strip_prefix("http://") else {
            return Ok(None);
        };
        let authority = authority.trim_end_matches('/');
        let page = get_metrics(authority)
            .await
            .with_context(|| format!("reading {endpoint}/metrics"))?;
        total += parse_sent(&page).with_context(|| format!("{endpoint}/metrics has no {SENT}"))?;
    }
    Ok(Some(total))
}

/// CPU seconds etcd has used (`process_cpu_seconds_total`), summed over
/// `endpoints`; `None` when an endpoint is not plain `http://`.
pub async fn cpu_seconds(endpoints: &[String]) -> anyhow::Result<Option<f64>> {
    let mut total = 0.0;
    for endpoint in endpoints {
        let Some(authority) = endpoint.strip_prefix("http://") else {
            return Ok(None);
        };
        let page = get_metrics(authority.trim_end_matches('/'))
            .await
            .with_context(|| format!("reading {endpoint}/metrics"))?;
        total += super::scrape::gauge(&page, "process_cpu_seconds_total")
            .with_context(|| format!("{endpoint}/metrics has no process_cpu_seconds_total"))?;
    }
    Ok(Some(total))
}

/// The `/metrics` page at `authority` (`host:port`), status line and
/// headers included (the parsers skip lines that are not samples).
pub(super) async fn get_metrics(authority: &str) -> anyhow::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(authority).await?;
    let request = format!("GET /metrics HTTP/1.0\r\nHost: {authority}\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut body = Vec::new();
    stream.read_to_end(&mut body).await?;
    let text = String::from_utf8_lossy(&body).into_owned();
    if !text.starts_with("HTTP/1.") || !text.lines().next().is_some_and(|l| l.contains(" 200")) {
        bail!(
            "unexpected answer: {}",
            text.lines().next().unwrap_or_default()
        );
    }
    Ok(text)
}

/// Sums every sample of [`SENT`] (etcd labels it by gRPC type).
fn parse_sent(page: &str) -> Option<u64> {
    let mut found = None;
    for line in page.lines() {
        let Some(rest) = line.strip_prefix(SENT) else {
            continue;
        };
        // `name value` or `name{labels} value`; not `name_other ...`.
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue;
        }
        let value = rest.rsplit(' ').next()?;
        let value: f64 = value.parse().ok()?;
        // Counters are exported as floats; bytes fit in u64.
        *found.get_or_insert(0u64) += value as u64;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_every_sample_of_the_sent_bytes_counter() {
        let page = "# HELP etcd_network_client_grpc_sent_bytes_total The total number of bytes sent to grpc clients.\n\
# TYPE etcd_network_client_grpc_sent_bytes_total counter\n\
etcd_network_client_grpc_sent_bytes_total 1.2345e+06\n\
etcd_network_client_grpc_sent_bytes_total_other 7\n\
etcd_network_client_grpc_received_bytes_total 99\n";
        assert_eq!(parse_sent(page), Some(1_234_500));
        let labelled = "etcd_network_client_grpc_sent_bytes_total{type=\"a\"} 10\netcd_network_client_grpc_sent_bytes_total{type=\"b\"} 5\n";
        assert_eq!(parse_sent(labelled), Some(15));
        assert_eq!(parse_sent("other 1\n"), None);
    }
}
